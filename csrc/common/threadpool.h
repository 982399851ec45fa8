// cnnfast's own thread pool: persistent workers that spin briefly after each parallel region and
// then sleep. It replaces OpenMP so that cnnfast leaves its host process alone:
//   * no OpenMP runtime is loaded, so nothing depends on which libgomp.so.1 (the system's or
//     PyTorch's, same soname) the process bound first, and nothing reads or needs OMP_WAIT_POLICY;
//   * workers never busy-wait for long: a CNN step is a chain of millisecond kernels with Python,
//     NumPy's BLAS and possibly PyTorch's own threads running in between, and a worker spinning for
//     milliseconds (libgomp's default) steals a core from them. Ours spin for kSpinNanos, enough to
//     catch the next kernel of a layer sequence without a wake-up, then block on a condition variable.
// The scheme follows XNNPACK's pthreadpool (spin, then futex-wait); the code is our own.
//
// One region runs at a time. A region started while another is running (a second Python thread
// calling a kernel with the GIL released) runs on its caller alone: results are the same, and each
// caller then has a core of its own, which is what Dask's threaded scheduler wants.
#pragma once
#include <cstdint>

namespace cnnfast {
namespace pool {

// fn(ctx, chunk, nt) is called once for every chunk in [0, nt). The caller and up to nt - 1 workers
// claim chunks in turn, so a chunk runs on whichever thread gets there first (a worker the OS has
// not scheduled yet does not delay the region), and no two chunks run on one thread at once: a
// per-chunk workspace indexed by `chunk` is private while the chunk runs.
using RegionFn = void (*)(void* ctx, int chunk, int nt);

// Runs a region of nt chunks on up to nt threads (the pool grows to nt - 1 workers on first use).
// Returns after every chunk has finished. Inside a region, or while another thread's region runs,
// it calls fn(ctx, 0, 1): one chunk covering everything, on the caller.
void run(int nt, RegionFn fn, void* ctx);

// True on a thread that is executing a region (a worker, or the caller while it runs tid 0).
bool in_region();

// How long idle workers spin before they sleep (default 100 us; for measurements: _core._set_pool_spin_us).
void set_spin_time_us(int64_t us);
int64_t spin_time_us();

// Number of workers started so far (for tests and runtime_info).
int workers_started();

// Threads used when neither set_num_threads nor CNNFAST_NUM_THREADS chose: OMP_NUM_THREADS if set
// (the convention every numeric library honours; read, never written), else the CPUs this process
// may run on (its affinity mask).
int default_threads();

}  // namespace pool
}  // namespace cnnfast
