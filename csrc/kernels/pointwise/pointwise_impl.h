// Width-generic pointwise activations (pointwise.h), written once and instantiated per ISA
// (pointwise_avx2.cpp, pointwise_avx512.cpp) with a vector type of common/simd.h. Include only from
// a file compiled with the matching ISA flags. Semantics as pointwise_ref.cpp: max/min in the
// order of the scalar code, so a NaN x propagates (MAXPS/MINPS return their second operand when
// either is NaN). SiLU, GELU and erf: float32 only (exp and erf of pointwise.h), float64 declines.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

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

// float32 only: round to nearest, 2^n of an integral float n in [-126, 128] (128 -> inf), x / y
inline __m256 vround(__m256 v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline __m256 vpow2(__m256 n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
inline __m256 vdiv(__m256 a, __m256 b) { return _mm256_div_ps(a, b); }
#ifdef __AVX512F__
inline __m512 vround(__m512 v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline __m512 vpow2(__m512 n) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
inline __m512 vdiv(__m512 a, __m512 b) { return _mm512_div_ps(a, b); }
#endif

// exp(v), float32 (Cephes expf: v = n ln2 + r, |r| <= ln2 / 2, ln2 in two parts, degree-6
// polynomial, times 2^n). v is first clamped to [-87.3, 88.3763]: below, exp(-87.3); above,
// inf (n = 128). NaN stays NaN (MAXPS/MINPS keep their second operand).
template <class S>
inline typename S::R vexp(typename S::R v) {
  using R = typename S::R;
  v = vmin(S::set1(88.3762626647949f), vmax(S::set1(-87.3f), v));
  const R n = vround(S::mul(v, S::set1(1.44269504088896341f)));
  R r = S::fma(n, S::set1(-0.693359375f), v);
  r = S::fma(n, S::set1(2.12194440e-4f), r);
  R p = S::set1(1.9875691500e-4f);
  p = S::fma(p, r, S::set1(1.3981999507e-3f));
  p = S::fma(p, r, S::set1(8.3334519073e-3f));
  p = S::fma(p, r, S::set1(4.1665795894e-2f));
  p = S::fma(p, r, S::set1(1.6666665459e-1f));
  p = S::fma(p, r, S::set1(5.0000001201e-1f));
  p = S::fma(p, S::mul(r, r), S::add(r, S::set1(1.0f)));
  return S::mul(p, vpow2(n));
}

// SiLU v / (1 + exp(-v)) and sigmoid 1 / (1 + exp(-v)), float32
template <class S>
inline typename S::R vsilu(typename S::R v) {
  return vdiv(v, S::add(S::set1(1.0f), vexp<S>(S::sub(S::zero(), v))));
}
template <class S>
inline typename S::R vsigmoid(typename S::R v) {
  return vdiv(S::set1(1.0f), S::add(S::set1(1.0f), vexp<S>(S::sub(S::zero(), v))));
}

// erf(v), float32: v clamped to [-4, 4] (erf(4) rounds to 1), then v P(v^2) / Q(v^2) with the
// coefficients of Eigen's / XLA's float erf; within 4e-7 of the exact erf (the tests' bound).
template <class S>
inline typename S::R verf(typename S::R v) {
  using R = typename S::R;
  v = vmin(S::set1(4.0f), vmax(S::set1(-4.0f), v));
  const R v2 = S::mul(v, v);
  R p = S::set1(-2.72614225801306e-10f);
  p = S::fma(p, v2, S::set1(2.77068142495902e-08f));
  p = S::fma(p, v2, S::set1(-2.10102402082508e-06f));
  p = S::fma(p, v2, S::set1(-5.69250639462346e-05f));
  p = S::fma(p, v2, S::set1(-7.34990630326855e-04f));
  p = S::fma(p, v2, S::set1(-2.95459980854025e-03f));
  p = S::fma(p, v2, S::set1(-1.60960333262415e-02f));
  R q = S::set1(-1.45660718464996e-05f);
  q = S::fma(q, v2, S::set1(-2.13374055278905e-04f));
  q = S::fma(q, v2, S::set1(-1.68282697438203e-03f));
  q = S::fma(q, v2, S::set1(-7.37332916720468e-03f));
  q = S::fma(q, v2, S::set1(-1.42647390514189e-02f));
  return vdiv(S::mul(p, v), q);
}

// scalar tails of the transcendental kinds: the same vector code on one broadcast lane
template <class S, class F>
inline typename S::T lane1(F f, typename S::T v) {
  typename S::T out[S::N];
  S::store(out, f(S::set1(v)));
  return out[0];
}

// SiLU of one float32 value, bitwise what the vector code gives each lane (the same operations;
// AVX2 and AVX-512 round alike): the conv kernels' scalar tails (conv2d_epilogue.h act_scalar)
inline float silu1(float v) {
  return lane1<Avx2F32>([](__m256 r) { return vsilu<Avx2F32>(r); }, v);
}

// y[i] = f(x[i]) over [s, e): whole vectors two at a time, then one, then the scalar tail tail(i)
template <class S, class F, class G>
inline void sweep(int64_t s, int64_t e, const typename S::T* x, typename S::T* y, F f, G tail) {
  int64_t i = s;
  for (; i + 2 * S::N <= e; i += 2 * S::N) {
    const typename S::R v0 = S::load(x + i), v1 = S::load(x + i + S::N);
    S::store(y + i, f(v0));
    S::store(y + i + S::N, f(v1));
  }
  for (; i + S::N <= e; i += S::N) S::store(y + i, f(S::load(x + i)));
  for (; i < e; ++i) y[i] = tail(i);
}

// kinds 2-5 (float32): SiLU x / (1 + exp(-x)), GELU b x (1 + erf(a x)), erf(a x), sigmoid 1 / (1 + exp(-x))
template <class S>
inline void run_transcendental(int64_t s, int64_t e, const float* x, float* y, int kind, float a, float b) {
  using R = typename S::R;
  const R va = S::set1(a), vb = S::set1(b);
  auto f = [&](R v) -> R {
    if (kind == kPointwiseSilu) return vsilu<S>(v);
    if (kind == kPointwiseSigmoid) return vsigmoid<S>(v);
    const R er = verf<S>(S::mul(v, va));
    if (kind == kPointwiseErf) return er;
    const R h = S::mul(v, vb);
    return S::fma(h, er, h);
  };
  sweep<S>(s, e, x, y, f, [&](int64_t i) { return lane1<S>(f, x[i]); });
}

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

// LeakyReLU: x where x > 0, else a * x (NaN: a * NaN)
template <class S>
inline void run_leaky(int64_t s, int64_t e, const typename S::T* x, typename S::T* y, typename S::T a) {
  using R = typename S::R;
  const R va = S::set1(a), zero = S::zero();
  auto f = [&](R v) { return S::blend(S::mul(v, va), v, S::gt(v, zero)); };
  sweep<S>(s, e, x, y, f, [&](int64_t i) { return x[i] > 0 ? x[i] : a * x[i]; });
}

// fn(s, e) on aligned chunks of [0, n) in parallel; cost: operations an element
template <class Fn>
inline void for_chunks(int64_t n, int64_t cost, const Fn& fn) {
  parallel_for((n + kAlign - 1) / kAlign, cost * kAlign,
               [&](int64_t ub, int64_t ue) { fn(ub * kAlign, ue * kAlign < n ? ue * kAlign : n); });
}

template <class S>
bool fwd(int64_t n, const typename S::T* x, typename S::T* y, int kind, typename S::T a, typename S::T b,
         typename S::T lo, typename S::T hi) {
  if (kind == kPointwiseLeaky) {
    for_chunks(n, 2, [&](int64_t s, int64_t e) { run_leaky<S>(s, e, x, y, a); });
    return true;
  }
  const bool transcendental =
      kind == kPointwiseSilu || kind == kPointwiseSigmoid || kind == kPointwiseGelu || kind == kPointwiseErf;
  if (!transcendental && kind != kPointwiseClamp && kind != kPointwiseHardswish) return false;
  if (transcendental) {
    if constexpr (!std::is_same_v<typename S::T, float>) {
      return false;
    } else {
      // ~20-30 operations an element (a division among them)
      for_chunks(n, 25, [&](int64_t s, int64_t e) { run_transcendental<S>(s, e, x, y, kind, a, b); });
      return true;
    }
  }
  // ~4 operations an element; small arrays (an SE block's 1x1 plane) run inline on the caller
  for_chunks(n, 4, [&](int64_t s, int64_t e) {
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
