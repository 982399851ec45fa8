// Output-buffer cache for the ops layer.
//
// A freshly allocated large output costs more than the kernel that fills it: the kernel touches
// every 4 KiB page for the first time and each touch is a page fault plus the kernel zeroing the
// page (a 51 MB relu output: ~14 ms of faults against ~3 ms of actual work on the dev machine).
// So outputs of at least kCacheMinBytes (128 KiB) come from here: when the NumPy array owning a block dies,
// the block goes back into a small cache keyed by size class and the next output of that class
// reuses it, already mapped. Fresh blocks are 2 MiB aligned and, on Linux, madvise(MADV_HUGEPAGE)
// so that even first touches fault once per 2 MiB rather than once per 4 KiB.
//
// Bound: the cache keeps at most cache_limit() bytes of *free* blocks (default 256 MiB, or
// CNNFAST_CACHE_MB, read and validated at import; set_cache_limit() changes it, 0 disables
// caching). Blocks held by live arrays are not counted: they belong to their arrays. When the
// cache would exceed the bound, the oldest free blocks are returned to the OS. empty_cache()
// returns them all. Thread-safe (one mutex; it is taken once per allocation and per free).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cnnfast {

// Outputs smaller than this come from NumPy's own allocator (malloc), which recycles small blocks
// well. From glibc's initial mmap threshold (128 KiB) up, malloc hands out fresh mmaps or heap
// memory it trimmed back to the OS, and every use faults its pages in again: a LeNet-5 training
// step (batch 64, 221 KB..884 KB activations) took 582 minor page faults per step with a 1 MiB
// threshold and none with this one (the relu and max-pool backward passes ran 4-5x faster).
constexpr std::size_t kCacheMinBytes = std::size_t(128) << 10;

// A block of at least `bytes` bytes, 64-byte aligned (2 MiB aligned when >= 2 MiB); its usable
// size is written to *capacity (pass that back to cache_release). Returns null when out of memory.
void* cache_acquire(std::size_t bytes, std::size_t* capacity);
// Gives a block from cache_acquire back: kept for reuse if it fits the bound, else unmapped.
void cache_release(void* p, std::size_t capacity);
// Frees every cached block; returns the number of bytes given back to the OS.
std::size_t empty_cache();
// Sets the bound on cached free bytes (evicting as needed); returns the previous bound.
std::size_t set_cache_limit(std::size_t bytes);
std::size_t cache_limit();

struct CacheStats {
  std::size_t cached_bytes = 0, cached_blocks = 0;  // free blocks held now
  std::size_t hits = 0, misses = 0;                 // acquisitions served from the cache / fresh
};
CacheStats cache_stats();

namespace detail {
// Capsule payload: the block and its capacity, so the destructor can give it back.
struct CachedBlock {
  void* p;
  std::size_t capacity;
};
pybind11::capsule block_owner(void* p, std::size_t capacity);
}  // namespace detail

// An uninitialised C-contiguous array of `shape`, from the cache when it is large enough.
// Must be called with the GIL held (it creates Python objects).
template <typename T>
pybind11::array_t<T, pybind11::array::c_style | pybind11::array::forcecast> new_array(
    const std::vector<int64_t>& shape) {
  using Arr = pybind11::array_t<T, pybind11::array::c_style | pybind11::array::forcecast>;
  std::size_t n = 1;
  for (int64_t s : shape) n *= static_cast<std::size_t>(s);
  const std::size_t bytes = n * sizeof(T);
  if (bytes < kCacheMinBytes) return Arr(shape);
  std::size_t cap = 0;
  void* p = cache_acquire(bytes, &cap);
  if (!p) throw std::bad_alloc();
  pybind11::capsule owner = detail::block_owner(p, cap);  // owns p from here on, even if Arr() throws
  return Arr(shape, static_cast<T*>(p), owner);
}

}  // namespace cnnfast
