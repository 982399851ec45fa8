// What differs between compilers and operating systems, in one place: forced inlining, no-alias
// pointers, aligned allocation, CPU feature queries. GCC and Clang (Linux, macOS) take the first
// branch of each, which is exactly what the code used before this header existed; MSVC (Windows)
// the second.
#pragma once
#include <cstddef>
#include <cstdlib>

#if defined(_MSC_VER)
#include <intrin.h>
#include <malloc.h>
#define CNNFAST_FORCE_INLINE __forceinline
#define CNNFAST_RESTRICT __restrict
#else
#define CNNFAST_FORCE_INLINE inline __attribute__((always_inline))
#define CNNFAST_RESTRICT __restrict__
#endif

namespace cnnfast {

// `bytes` of memory aligned to `align` (a power of two); nullptr on failure. Free with aligned_free.
inline void* aligned_malloc(std::size_t align, std::size_t bytes) noexcept {
#if defined(_WIN32)
  return _aligned_malloc(bytes, align);
#else
  // std::aligned_alloc wants a size that is a multiple of the alignment.
  return std::aligned_alloc(align, (bytes + align - 1) / align * align);
#endif
}

inline void aligned_free(void* p) noexcept {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

}  // namespace cnnfast
