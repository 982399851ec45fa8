// A small vector abstraction over AVX2 / AVX-512 for float and double, so SIMD algorithms are
// written once (templated on the vector type) and instantiated per ISA file. Each struct wraps
// one register type: V::T (scalar), V::R (register), V::N (lanes), and static load/store/fma/...
//
// Everything here has internal linkage (anonymous namespace): the same header is compiled into
// *_avx2.cpp and *_avx512.cpp with different ISA flags, and an inline function with external
// linkage could be merged by the linker into the AVX-512 copy and then run on an AVX2-only CPU.
#pragma once
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
};
#endif

}  // namespace
}  // namespace cnnfast
