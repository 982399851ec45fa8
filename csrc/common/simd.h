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
