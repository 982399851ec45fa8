// Width-generic pointwise activations (pointwise.h), written once and instantiated per ISA
// (pointwise_avx2.cpp, pointwise_avx512.cpp) with a vector type of common/simd.h. Include only from
// a file compiled with the matching ISA flags. Semantics as pointwise_ref.cpp: max/min in the
// order of the scalar code, so a NaN x propagates (MAXPS/MINPS return their second operand when
// either is NaN). SiLU has no vector exp here: the SIMD kernels decline it (ref runs).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "common/parallel.h"
#include "common/simd.h"
#include "kernels/pointwise/pointwise.h"

namespace cnnfast {
namespace pointwise_simd {
namespace {

inline __m256 vmin(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
inline __m256d vmin(__m256d a, __m256d b) { return _mm256_min_pd(a, b); }
inline __m256 vmax(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
inline __m256d vmax(__m256d a, __m256d b) { return _mm256_max_pd(a, b); }
#ifdef __AVX512F__
inline __m512 vmin(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
inline __m512d vmin(__m512d a, __m512d b) { return _mm512_min_pd(a, b); }
inline __m512 vmax(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
inline __m512d vmax(__m512d a, __m512d b) { return _mm512_max_pd(a, b); }
#endif

constexpr int64_t kAlign = 64;  // elements per parallel unit: chunk boundaries stay cache-line aligned

template <typename T>
inline T clamp1(T t, T lo, T hi) {
  t = lo > t ? lo : t;
  return hi < t ? hi : t;
}

template <class S, bool Swish>
inline void run(int64_t s, int64_t e, const typename S::T* x, typename S::T* y, typename S::T a, typename S::T b,
                typename S::T lo, typename S::T hi) {
  using T = typename S::T;
  using R = typename S::R;
  const R va = S::set1(a), vb = S::set1(b), vlo = S::set1(lo), vhi = S::set1(hi);
  auto f = [&](R v) {
    R t = vmin(vhi, vmax(vlo, S::fma(v, va, vb)));
    return Swish ? S::mul(v, t) : t;
  };
  int64_t i = s;
  for (; i + 4 * S::N <= e; i += 4 * S::N) {
    const R v0 = S::load(x + i), v1 = S::load(x + i + S::N), v2 = S::load(x + i + 2 * S::N),
            v3 = S::load(x + i + 3 * S::N);
    S::store(y + i, f(v0));
    S::store(y + i + S::N, f(v1));
    S::store(y + i + 2 * S::N, f(v2));
    S::store(y + i + 3 * S::N, f(v3));
  }
  for (; i + S::N <= e; i += S::N) S::store(y + i, f(S::load(x + i)));
  for (; i < e; ++i) {
    const T t = clamp1<T>(x[i] * a + b, lo, hi);
    y[i] = Swish ? x[i] * t : t;
  }
}

template <class S>
bool fwd(int64_t n, const typename S::T* x, typename S::T* y, int kind, typename S::T a, typename S::T b,
         typename S::T lo, typename S::T hi) {
  if (kind != kPointwiseClamp && kind != kPointwiseHardswish) return false;
  const int64_t units = (n + kAlign - 1) / kAlign;
  // ~4 operations an element; small arrays (an SE block's 1x1 plane) run inline on the caller
  parallel_for(units, 4 * kAlign, [&](int64_t ub, int64_t ue) {
    const int64_t s = ub * kAlign, e = ue * kAlign < n ? ue * kAlign : n;
    if (kind == kPointwiseHardswish)
      run<S, true>(s, e, x, y, a, b, lo, hi);
    else
      run<S, false>(s, e, x, y, a, b, lo, hi);
  });
  return true;
}

}  // namespace
}  // namespace pointwise_simd
}  // namespace cnnfast
