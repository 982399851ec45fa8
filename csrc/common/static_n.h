// with_n<MAX>(m, f): calls f(std::integral_constant<int, m>{}) for a runtime 1 <= m <= MAX, so the
// register tile of an edge block is exactly as large as the block (compile-time loop bounds, no
// multiply-adds for rows or vectors that are not stored).
//
// Internal linkage (anonymous namespace), as common/simd.h: each ISA file compiles its own copy.
#pragma once
#include <type_traits>

#include "common/portable.h"

namespace cnnfast {
namespace {

template <int MAX, class F>
CNNFAST_FORCE_INLINE void with_n(int m, F&& f) {
  if constexpr (MAX > 1) {
    if (m < MAX) return with_n<MAX - 1>(m, f);
  }
  f(std::integral_constant<int, MAX>{});
}

}  // namespace
}  // namespace cnnfast
