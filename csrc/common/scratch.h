// Per-thread scratch memory for kernels: one buffer per (slot, thread), 64-byte aligned, grown on
// demand and kept for reuse by later calls (never shrunk), so steady-state calls allocate nothing.
// Returns nullptr if the allocation fails; kernels then decline (return false) and ref runs.
//
// Internal linkage on purpose (anonymous namespace): each translation unit that includes this,
// e.g. each ISA file, gets its own buffers and its own copy of the code built with its own flags.
#pragma once
#include <cstddef>
#include <cstdlib>

namespace cnnfast {
namespace {

template <int Slot = 0>
inline void* thread_scratch(std::size_t bytes) noexcept {
  struct Buffer {
    void* ptr = nullptr;
    std::size_t capacity = 0;
    ~Buffer() { std::free(ptr); }
  };
  thread_local Buffer buf;
  if (bytes == 0) bytes = 64;
  if (bytes > buf.capacity) {
    std::free(buf.ptr);
    // 25% headroom so a slowly growing sequence of requests does not reallocate on every call.
    const std::size_t cap = (bytes + bytes / 4 + 63) / 64 * 64;
    buf.ptr = std::aligned_alloc(64, cap);
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
