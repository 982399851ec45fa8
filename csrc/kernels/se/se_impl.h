// Width-generic gap_fwd / chscale_fwd (se.h), instantiated per ISA (se_avx2.cpp, se_avx512.cpp)
// with a vector type of common/simd.h. Include only from a file compiled with the matching ISA
// flags. A plane's sum runs in 4 vector accumulators (4 N lanes), added in a fixed order, then the
// scalar tail: the order depends on hw only.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "common/parallel.h"
#include "common/simd.h"

namespace cnnfast {
namespace se_simd {
namespace {

template <class S>
inline typename S::T plane_sum(int64_t hw, const typename S::T* x) {
  typename S::R a[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
  add_run<S>(x, hw, a);
  return sum_of<S>(a);
}

template <class S>
bool gap(int64_t planes, int64_t hw, const typename S::T* x, typename S::T* mean) {
  using T = typename S::T;
  if (hw < S::N) return false;  // small planes: the scalar loop (ref) is as fast
  parallel_for(planes, hw, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) mean[p] = plane_sum<S>(hw, x + p * hw) / T(hw);
  });
  return true;
}

template <class S>
bool chscale(int64_t planes, int64_t hw, const typename S::T* x, const typename S::T* s, typename S::T* y) {
  using R = typename S::R;
  if (hw < S::N) return false;
  parallel_for(planes, hw, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const auto* xp = x + p * hw;
      auto* yp = y + p * hw;
      const auto c = s[p];
      const R v = S::set1(c);
      int64_t i = 0;
      for (; i + 2 * S::N <= hw; i += 2 * S::N) {
        const R x0 = S::load(xp + i), x1 = S::load(xp + i + S::N);
        S::store(yp + i, S::mul(x0, v));
        S::store(yp + i + S::N, S::mul(x1, v));
      }
      for (; i + S::N <= hw; i += S::N) S::store(yp + i, S::mul(S::load(xp + i), v));
      for (; i < hw; ++i) yp[i] = xp[i] * c;
    }
  });
  return true;
}

}  // namespace
}  // namespace se_simd
}  // namespace cnnfast
