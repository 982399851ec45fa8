// cnnfast's thread pool: see threadpool.h for why it exists and how it behaves.
#include "common/threadpool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#define CNNFAST_POSIX 1
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define CNNFAST_PAUSE() _mm_pause()
#else
#define CNNFAST_PAUSE() std::this_thread::yield()
#endif

namespace cnnfast {
namespace pool {
namespace {

// How long an idle worker spins before it sleeps. Chosen because: the Python code between two
// kernels of a layer sequence (autograd bookkeeping, a NumPy bias add) takes 5-50 us, so 100 us of
// spinning catches the next kernel without a wake-up (a condition-variable wake-up costs 10-60 us
// on the 2-core dev VMs); and it is short against a millisecond Linear layer on NumPy's BLAS threads,
// which libgomp's default spin (hundreds of microseconds to milliseconds) starved (issue 9: a LeNet
// step 1.9x slower with PyTorch's libgomp bound first).
std::atomic<int64_t> g_spin_ns{100000};
// The caller waiting for its workers spins this many pauses, then yields its core on each check, so a
// worker descheduled on an oversubscribed machine is not kept from running by our own spinning.
constexpr int kCallerSpins = 4096;
// Upper bound on threads (a region packs nt into 16 bits of its state word).
constexpr int kMaxThreads = 4096;

thread_local bool tls_in_region = false;

struct Pool {
  // A region's state: (generation << 16) | nt, published in one atomic word so that a worker never
  // pairs one region's generation with another's thread count.
  std::atomic<uint64_t> state{0};
  RegionFn fn = nullptr;  // written before `state` is published (release), read after (acquire)
  void* ctx = nullptr;
  int nchunks = 0;
  // Chunks are claimed, not assigned: a worker that the OS has not scheduled yet (the cores busy
  // with PyTorch's or BLAS's spinning threads) does not hold the region up; whoever runs takes the
  // next chunk. The chunks themselves are fixed (nt of them), so results do not depend on timing.
  std::atomic<int> next_chunk{0};
  // Workers enter a region before touching it: (generation & 0xffffffff) << 32 | closed << 31 |
  // entered. The caller closes it once every chunk is claimed and waits only for those inside.
  std::atomic<uint64_t> entry{0};
  std::atomic<int> done{0};  // workers that entered and finished

  std::mutex region_mu;  // one region at a time
  std::mutex grow_mu;
  std::atomic<int> nworkers{0};

  std::mutex sleep_mu;
  std::condition_variable wake;
  std::atomic<int> sleepers{0};

  void worker_main(int tid, uint64_t seen);
  void ensure_workers(int n);
  void run_chunks();
  bool enter(uint64_t gen32);
};

constexpr uint64_t kClosed = uint64_t{1} << 31;

void Pool::run_chunks() {
  for (int c; (c = next_chunk.fetch_add(1, std::memory_order_relaxed)) < nchunks;) {
    fn(ctx, c, nchunks);
  }
}

bool Pool::enter(uint64_t gen32) {
  uint64_t e = entry.load(std::memory_order_acquire);
  for (;;) {
    if ((e >> 32) != gen32 || (e & kClosed)) return false;
    if (entry.compare_exchange_weak(e, e + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
  }
}

void Pool::worker_main(int tid, uint64_t seen) {
#ifdef CNNFAST_POSIX
  // Signals go to the Python thread, never to a worker (the pool's threads run only kernels).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
#endif
  for (;;) {
    uint64_t s = state.load(std::memory_order_acquire);
    if (s == seen) {
      const auto t0 = std::chrono::steady_clock::now();
      int spins = 0;
      while ((s = state.load(std::memory_order_acquire)) == seen) {
        CNNFAST_PAUSE();
        if ((++spins & 63) == 0 && std::chrono::steady_clock::now() - t0 >
                                       std::chrono::nanoseconds(g_spin_ns.load(std::memory_order_relaxed))) {
          // Sleep. sleepers is raised before the state is re-checked, and the caller publishes the
          // state before it reads sleepers (both sequentially consistent): either this thread sees
          // the new region, or the caller sees a sleeper and notifies under the mutex.
          std::unique_lock<std::mutex> lk(sleep_mu);
          sleepers.fetch_add(1, std::memory_order_seq_cst);
          wake.wait(lk, [&] { return state.load(std::memory_order_seq_cst) != seen; });
          sleepers.fetch_sub(1, std::memory_order_relaxed);
          s = state.load(std::memory_order_acquire);
          break;
        }
      }
    }
    seen = s;
    const int nt = static_cast<int>(s & 0xffff);
    if (tid < nt && enter((s >> 16) & 0xffffffff)) {
      tls_in_region = true;
      run_chunks();
      tls_in_region = false;
      done.fetch_add(1, std::memory_order_release);
    }
  }
}

void Pool::ensure_workers(int n) {
  if (nworkers.load(std::memory_order_acquire) >= n) return;
  std::lock_guard<std::mutex> lk(grow_mu);
  for (int w = nworkers.load(std::memory_order_relaxed); w < n; ++w) {
    // The new worker waits for the first region published after this one's state.
    std::thread(&Pool::worker_main, this, w + 1, state.load(std::memory_order_acquire)).detach();
    nworkers.store(w + 1, std::memory_order_release);
  }
}

// The process's pool, created on the first parallel region. It is never destroyed: its workers are
// detached and sleep when idle, and the process exit ends them (no static destructor races them).
std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_mu;

#ifdef CNNFAST_POSIX
// After fork() the child has none of the parent's workers (and maybe a mutex held by a thread that
// no longer exists): it starts a fresh pool on first use. The old one is leaked, deliberately.
void forget_pool_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }
#endif

Pool& get_pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
  std::lock_guard<std::mutex> lk(g_pool_mu);
  p = g_pool.load(std::memory_order_relaxed);
  if (!p) {
#ifdef CNNFAST_POSIX
    static const int registered = pthread_atfork(nullptr, nullptr, forget_pool_in_child);
    (void)registered;
#endif
    p = new Pool();
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

int parse_positive(const char* s) {
  if (!s || !*s) return 0;
  char* end = nullptr;
  const long n = std::strtol(s, &end, 10);
  // OMP_NUM_THREADS may be a list ("4,2" for nested levels): the first entry is the outer level.
  if (end == s || (*end != '\0' && *end != ',') || n < 1) return 0;
  return n > kMaxThreads ? kMaxThreads : static_cast<int>(n);
}

int affinity_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(h) : 1;
}

}  // namespace

void run(int nt, RegionFn fn, void* ctx) {
  if (nt > kMaxThreads) nt = kMaxThreads;
  if (nt <= 1 || tls_in_region) {
    fn(ctx, 0, 1);
    return;
  }
  Pool& p = get_pool();
  std::unique_lock<std::mutex> region(p.region_mu, std::try_to_lock);
  if (!region.owns_lock()) {  // another thread's region is running: this one runs on its caller
    fn(ctx, 0, 1);
    return;
  }
  p.ensure_workers(nt - 1);
  p.fn = fn;
  p.ctx = ctx;
  p.nchunks = nt;
  p.next_chunk.store(0, std::memory_order_relaxed);
  p.done.store(0, std::memory_order_relaxed);
  const uint64_t gen = (p.state.load(std::memory_order_relaxed) >> 16) + 1;
  p.entry.store((gen & 0xffffffff) << 32, std::memory_order_relaxed);
  p.state.store(gen << 16 | static_cast<uint64_t>(nt), std::memory_order_seq_cst);
  if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
    {
      std::lock_guard<std::mutex> lk(p.sleep_mu);
    }
    p.wake.notify_all();
  }
  tls_in_region = true;
  p.run_chunks();
  tls_in_region = false;
  // Every chunk is claimed: close the region to late workers and wait for those inside.
  const int entered = static_cast<int>(p.entry.fetch_or(kClosed, std::memory_order_acq_rel) & (kClosed - 1));
  for (int spins = 0; p.done.load(std::memory_order_acquire) != entered; ++spins) {
    if (spins < kCallerSpins)
      CNNFAST_PAUSE();
    else
      std::this_thread::yield();
  }
}

bool in_region() { return tls_in_region; }

void set_spin_time_us(int64_t us) { g_spin_ns.store(us * 1000, std::memory_order_relaxed); }
int64_t spin_time_us() { return g_spin_ns.load(std::memory_order_relaxed) / 1000; }

int workers_started() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  return p ? p->nworkers.load(std::memory_order_acquire) : 0;
}

int default_threads() {
  static const int n = [] {
    const int omp = parse_positive(std::getenv("OMP_NUM_THREADS"));
    return omp > 0 ? omp : affinity_cpus();
  }();
  return n;
}

}  // namespace pool
}  // namespace cnnfast
