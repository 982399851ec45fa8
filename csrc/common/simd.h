// A small vector abstraction over AVX2 / AVX-512 for float and double, so SIMD algorithms are
// written once (templated on the vector type) and instantiated per ISA file. Each struct wraps
// one register type: V::T (scalar), V::R (register), V::N (lanes), and static load/store/fma/...
//
// Everything here has internal linkage (anonymous namespace): the same header is compiled into
// *_avx2.cpp and *_avx512.cpp with different ISA flags, and an inline function with external
// linkage could be merged by the linker into the AVX-512 copy and then run on an AVX2-only CPU.
#pragma once
#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace cnnfast {
namespace {

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2F32 {
  using T = float;
  using R = __m256;
  static constexpr int N = 8;
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(T v) { return _mm256_set1_ps(v); }
  static R zero() { return _mm256_setzero_ps(); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }  // a * b + c
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static void store_n(T* p, R v, int n) {  // first n lanes, 0 < n < N
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(p, m, v);
  }
  // max(0, v) keeping NaN and -0.0 exactly as `v < 0 ? 0 : v` does (vmaxps returns its second
  // operand when either is NaN or both are zeros).
  static R relu(R v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }
  // p[0, 2N) -> even[0, N) = p[0], p[2], ...; odd[0, N) = p[1], p[3], ...
  static void deinterleave2(const T* p, T* even, T* odd) {
    const R a = load(p), b = load(p + N);  // a0..a7, b0..b7
    const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);  // a0 a2 b0 b2 | a4 a6 b4 b6
    store(even, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
    store(odd, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
  }
  // The inverse: p[0, 2N) = even[0], odd[0], even[1], odd[1], ...
  static void interleave2(const T* even, const T* odd, T* p) {
    const R e = load(even), o = load(odd);
    const R lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);  // e0 o0 e1 o1 | e4 o4 e5 o5 ...
    store(p, _mm256_permute2f128_ps(lo, hi, 0x20));
    store(p + N, _mm256_permute2f128_ps(lo, hi, 0x31));
  }
  // dst[j * ldd + i] = src[i * lds + j] for an N x N block (8 x 8: unpack, shuffle, lane swap).
  static void transpose(const T* src, int64_t lds, T* dst, int64_t ldd) {
    R r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = load(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
    }
    for (int i = 0; i < 8; i += 4) {
      r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);      // a0 b0 c0 d0 | a4 b4 c4 d4
      r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);  // a1 b1 c1 d1 | a5 ..
      r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      store(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
      store(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
  }
  // Appended for the Winograd transforms (conv2d_winograd.h).
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }  // a - b
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
};

struct Avx2F64 {
  using T = double;
  using R = __m256d;
  static constexpr int N = 4;
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, R v) { _mm256_storeu_pd(p, v); }
  static R set1(T v) { return _mm256_set1_pd(v); }
  static R zero() { return _mm256_setzero_pd(); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R max(R a, R b) { return _mm256_max_pd(a, b); }
  static void store_n(T* p, R v, int n) {
    const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    _mm256_maskstore_pd(p, m, v);
  }
  static R relu(R v) { return _mm256_max_pd(_mm256_setzero_pd(), v); }
  static void deinterleave2(const T* p, T* even, T* odd) {
    const R a = load(p), b = load(p + N);
    store(even, _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8));  // a0 b0 a2 b2 -> a0 a2 b0 b2
    store(odd, _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8));
  }
  static void interleave2(const T* even, const T* odd, T* p) {
    const R e = load(even), o = load(odd);
    const R lo = _mm256_unpacklo_pd(e, o), hi = _mm256_unpackhi_pd(e, o);  // e0 o0 e2 o2, e1 o1 e3 o3
    store(p, _mm256_permute2f128_pd(lo, hi, 0x20));
    store(p + N, _mm256_permute2f128_pd(lo, hi, 0x31));
  }
  static void transpose(const T* src, int64_t lds, T* dst, int64_t ldd) {  // as Avx2F32, 4 x 4
    const R r0 = load(src), r1 = load(src + lds), r2 = load(src + 2 * lds), r3 = load(src + 3 * lds);
    const R t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);  // a0 b0 | a2 b2; a1 b1 | a3 b3
    const R t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    store(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
    store(dst + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    store(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    store(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
  }
  // Appended for the Winograd transforms (conv2d_winograd.h).
  static R sub(R a, R b) { return _mm256_sub_pd(a, b); }  // a - b
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
};
#endif

#if defined(__AVX512F__)
struct Avx512F32 {
  using T = float;
  using R = __m512;
  static constexpr int N = 16;
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(T v) { return _mm512_set1_ps(v); }
  static R zero() { return _mm512_setzero_ps(); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static void store_n(T* p, R v, int n) { _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v); }
  static R relu(R v) { return _mm512_max_ps(_mm512_setzero_ps(), v); }
  static void deinterleave2(const T* p, T* even, T* odd) {
    const R a = load(p), b = load(p + N);
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    store(even, _mm512_permutex2var_ps(a, ie, b));
    store(odd, _mm512_permutex2var_ps(a, _mm512_add_epi32(ie, _mm512_set1_epi32(1)), b));
  }
  static void interleave2(const T* even, const T* odd, T* p) {
    const R e = load(even), o = load(odd);
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    store(p, _mm512_permutex2var_ps(e, lo, o));
    store(p + N, _mm512_permutex2var_ps(e, _mm512_add_epi32(lo, _mm512_set1_epi32(8)), o));
  }
  // Plain loop: this path cannot be tested on the development CPU (no AVX-512), so it stays
  // obviously correct rather than shuffle-optimised; the compiler vectorises the stores.
  static void transpose(const T* src, int64_t lds, T* dst, int64_t ldd) {
    for (int j = 0; j < N; ++j)
      for (int i = 0; i < N; ++i) dst[j * ldd + i] = src[i * lds + j];
  }
  // Appended for the Winograd transforms (conv2d_winograd.h).
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }  // a - b
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
};

struct Avx512F64 {
  using T = double;
  using R = __m512d;
  static constexpr int N = 8;
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, R v) { _mm512_storeu_pd(p, v); }
  static R set1(T v) { return _mm512_set1_pd(v); }
  static R zero() { return _mm512_setzero_pd(); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R max(R a, R b) { return _mm512_max_pd(a, b); }
  static void store_n(T* p, R v, int n) { _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1u), v); }
  static R relu(R v) { return _mm512_max_pd(_mm512_setzero_pd(), v); }
  static void deinterleave2(const T* p, T* even, T* odd) {
    const R a = load(p), b = load(p + N);
    const __m512i ie = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    store(even, _mm512_permutex2var_pd(a, ie, b));
    store(odd, _mm512_permutex2var_pd(a, _mm512_add_epi64(ie, _mm512_set1_epi64(1)), b));
  }
  static void interleave2(const T* even, const T* odd, T* p) {
    const R e = load(even), o = load(odd);
    const __m512i lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    store(p, _mm512_permutex2var_pd(e, lo, o));
    store(p + N, _mm512_permutex2var_pd(e, _mm512_add_epi64(lo, _mm512_set1_epi64(4)), o));
  }
  // Plain loop: this path cannot be tested on the development CPU (no AVX-512), so it stays
  // obviously correct rather than shuffle-optimised; the compiler vectorises the stores.
  static void transpose(const T* src, int64_t lds, T* dst, int64_t ldd) {
    for (int j = 0; j < N; ++j)
      for (int i = 0; i < N; ++i) dst[j * ldd + i] = src[i * lds + j];
  }
  // Appended for the Winograd transforms (conv2d_winograd.h).
  static R sub(R a, R b) { return _mm512_sub_pd(a, b); }  // a - b
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
};
#endif

}  // namespace
}  // namespace cnnfast
