// Per-thread scratch memory for kernels: one buffer per (slot, thread), 64-byte aligned, grown on
// demand and kept for reuse by later calls, so steady-state calls allocate nothing.
// Returns nullptr if the allocation fails; kernels then decline (return false) and ref runs.
//
// Every buffer is listed in one process-wide registry (scratch_registry.cpp) so that
// cnnfast.empty_cache() can give the memory back between calls (a Winograd 512-channel layer
// keeps ~30 MB here). Kernels run inside a KernelScope (dispatch.h), and the registry frees
// buffers only while no kernel is running, so a buffer never disappears under a kernel.
//
// Internal linkage on purpose (anonymous namespace): each translation unit that includes this,
// e.g. each ISA file, gets its own buffers and its own copy of the code built with its own flags.
#pragma once
#include <cstddef>
#include <cstdlib>
#include "common/portable.h"

namespace cnnfast {

// The registry (external linkage, one per process; compiled without ISA flags).
namespace scratch_registry {
struct Entry {
  void** ptr;             // the owning thread's buffer pointer ...
  std::size_t* capacity;  // ... and its capacity, both reset to empty by release_all
};
void add(Entry e);        // called by the owning thread on its first allocation
void remove(void** ptr);  // called by the owning thread when it exits
// Frees every registered buffer if no kernel is running (returns the bytes freed), else frees
// nothing and returns 0.
std::size_t release_all();
// Held (shared) by every kernel call; release_all takes it exclusively.
struct KernelScope {
  KernelScope();
  ~KernelScope();
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;
};
}  // namespace scratch_registry

namespace {

template <int Slot = 0>
inline void* thread_scratch(std::size_t bytes) noexcept {
  struct Buffer {
    void* ptr = nullptr;
    std::size_t capacity = 0;
    bool registered = false;
    ~Buffer() {
      if (registered) scratch_registry::remove(&ptr);
      aligned_free(ptr);
    }
  };
  thread_local Buffer buf;
  if (bytes == 0) bytes = 64;
  if (bytes > buf.capacity) {
    if (!buf.registered) {
      scratch_registry::add({&buf.ptr, &buf.capacity});
      buf.registered = true;
    }
    aligned_free(buf.ptr);
    // 25% headroom so a slowly growing sequence of requests does not reallocate on every call.
    const std::size_t cap = (bytes + bytes / 4 + 63) / 64 * 64;
    buf.ptr = aligned_malloc(64, cap);
    buf.capacity = buf.ptr ? cap : 0;
  }
  return buf.ptr;
}

// Typed view: `count` elements of T.
template <typename T, int Slot = 0>
inline T* thread_scratch_of(std::size_t count) noexcept {
  return static_cast<T*>(thread_scratch<Slot>(count * sizeof(T)));
}

}  // namespace
}  // namespace cnnfast
