// OpenMP wrappers. OpenMP is optional at build time: without it every loop runs serially and
// the thread functions report 1. One function decides how many threads a region uses.
#pragma once
#include <atomic>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnfast {

// Thread count set by cnnfast.set_num_threads (or CNNFAST_NUM_THREADS); 0 = not set. It is
// process-wide, unlike omp_set_num_threads, which only affects the calling thread.
inline std::atomic<int>& num_threads_override() {
  static std::atomic<int> n{0};
  return n;
}

// The one function deciding how many threads a parallel region uses: set_num_threads() if
// called, else OpenMP's own setting (OMP_NUM_THREADS, or a threadpoolctl limit).
// Every kernel's parallel region uses this (parallel_for, or an explicit num_threads clause).
inline int max_threads() {
#ifdef _OPENMP
  const int o = num_threads_override().load(std::memory_order_relaxed);
  return o > 0 ? o : omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Below this many scalar operations a loop is not worth the fork/join cost (~2-5 us on the
// 2-core EPYC dev machine; 32k multiply-adds take about that long on one core).
constexpr int64_t kMinParallelWork = 32768;

// parallel_for(n, work_per_item, f): calls f(begin, end) on contiguous chunks of [0, n),
// one chunk per thread, statically scheduled. Runs inline when the total work is small.
template <typename F>
inline void parallel_for(int64_t n, int64_t work_per_item, const F& f) {
  if (n <= 0) return;
#ifdef _OPENMP
  const int64_t total = n * (work_per_item > 0 ? work_per_item : 1);
  int nt = max_threads();
  if (nt > n) nt = static_cast<int>(n);
  if (nt > 1 && total >= kMinParallelWork && !omp_in_parallel()) {
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      const int T = omp_get_num_threads();
      const int64_t chunk = (n + T - 1) / T;
      const int64_t b = t * chunk;
      const int64_t e = b + chunk < n ? b + chunk : n;
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  f(0, n);
}

}  // namespace cnnfast
