// Parallel loops on cnnfast's own thread pool (common/threadpool.h; no OpenMP). One function
// decides how many threads a region uses; small work runs inline on the caller.
#pragma once
#include <atomic>
#include <cstdint>

#include "common/threadpool.h"

namespace cnnfast {

// Thread count set by cnnfast.set_num_threads (or CNNFAST_NUM_THREADS); 0 = not set. Process-wide.
inline std::atomic<int>& num_threads_override() {
  static std::atomic<int> n{0};
  return n;
}

// The one function deciding how many threads a parallel region uses: set_num_threads() if
// called, else OMP_NUM_THREADS if set, else the CPUs this process may run on.
inline int max_threads() {
  const int o = num_threads_override().load(std::memory_order_relaxed);
  return o > 0 ? o : pool::default_threads();
}

// True inside a parallel region: nested loops run serially on the thread that reached them.
inline bool in_parallel() { return pool::in_region(); }

// Below this many scalar operations a loop is not worth the fork/join cost (~2-5 us on the
// 2-core dev machines; 32k multiply-adds take about that long on one core).
constexpr int64_t kMinParallelWork = 32768;

// run_region(nt, f): calls f(chunk, T) for every chunk in [0, T), T = nt, claimed by up to T threads
// (common/threadpool.h); T = 1 when the pool is busy with another caller's region or this is a
// nested region. A chunk index is private while its chunk runs (per-chunk workspaces).
template <typename F>
inline void run_region(int nt, const F& f) {
  pool::run(
      nt, [](void* ctx, int tid, int T) { (*static_cast<const F*>(ctx))(tid, T); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// Threads a region over `units` work items would use: as parallel_for decides (max_threads(),
// at most one per unit, serial below kMinParallelWork or inside another parallel region).
inline int plan_threads(int64_t units, int64_t total_work) {
  if (in_parallel() || total_work < kMinParallelWork || units < 2) return 1;
  const int64_t m = max_threads();
  return static_cast<int>(m < units ? m : units);
}

// run_parallel(nt, units, f): f(begin, end, tid) on nt contiguous chunks of [0, units) (fixed
// boundaries, so results do not depend on which thread ran which); tid < nt is the chunk's index,
// private while it runs (for per-thread workspaces).
template <typename F>
inline void run_parallel(int nt, int64_t units, const F& f) {
  if (units <= 0) return;
  if (nt <= 1) {
    f(int64_t{0}, units, 0);
    return;
  }
  run_region(nt, [&](int t, int T) {
    const int64_t chunk = (units + T - 1) / T;
    const int64_t b = t * chunk;
    const int64_t e = b + chunk < units ? b + chunk : units;
    if (b < e) f(b, e, t);
  });
}

// parallel_for(n, work_per_item, f): calls f(begin, end) on contiguous chunks of [0, n),
// one chunk per thread, statically scheduled. Runs inline when the total work is small.
template <typename F>
inline void parallel_for(int64_t n, int64_t work_per_item, const F& f) {
  if (n <= 0) return;
  const int nt = plan_threads(n, n * (work_per_item > 0 ? work_per_item : 1));
  run_parallel(nt, n, [&](int64_t b, int64_t e, int) { f(b, e); });
}

}  // namespace cnnfast
