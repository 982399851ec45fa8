// A small vector abstraction over AVX2 / AVX-512 for float and double, so SIMD algorithms are
// written once (templated on the vector type) and instantiated per ISA file. Each struct wraps
// one register type: V::T (scalar), V::R (register), V::N (lanes), and static load/store/fma/...
// A block at the end of each struct adds lane masks (V::M: compares, blends), index lanes next to
// the values (V::I of V::IT: int32 beside float, int64 beside double) and even / odd lane
// shuffles in registers, for max_pool2d (argmax) and relu.
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
  // Sum of the lanes, a fixed pairwise tree: halves, then pairs of pairs, then the last pair.
  static T hsum(R v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
  }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  // First n lanes, 0 < n < N: 4-, 2- and 1-lane plain stores (n's bits). AVX2's masked store
  // (vmaskmovps) costs ~14 cycles on AMD Zen 3 (Intel: ~1), these ~2: every kernel's row tails.
  static void store_n(T* p, R v, int n) {
    __m128 lo = _mm256_castps256_ps128(v);
    if (n & 4) {
      _mm_storeu_ps(p, lo);
      lo = _mm256_extractf128_ps(v, 1);
      p += 4;
    }
    if (n & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), lo);
      lo = _mm_movehl_ps(lo, lo);
      p += 2;
    }
    if (n & 1) _mm_store_ss(p, lo);
  }
  // As store_n, but p[n, N) are read and written back unchanged with one full-width load and store:
  // p[0, N) must be this thread's own memory. vmaskmovps stores cost ~14 cycles on AMD Zen 3 (a
  // blend and a plain store ~1): for tails in a thread's private buffers.
  static void store_n_over(T* p, R v, int n) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_storeu_ps(p, _mm256_blendv_ps(_mm256_loadu_ps(p), v, _mm256_castsi256_ps(m)));
  }
  // max(0, v) keeping NaN and -0.0 exactly as `v < 0 ? 0 : v` does (vmaxps returns its second
  // operand when either is NaN or both are zeros).
  static R relu(R v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }
  // p[0, 2N) -> even[0, N) = p[0], p[2], ...; odd[0, N) = p[1], p[3], ...
  static void deinterleave2(const T* p, T* even, T* odd) {
    const R a = load(p), b = load(p + N);                                               // a0..a7, b0..b7
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
  // ---- masks, blends, index lanes, lane shuffles (max_pool2d, relu) ----
  // M: a lane mask, as compares return it (all-ones / all-zeros lanes). I: index lanes of
  // type IT, one per value lane (int32 next to float).
  using M = __m256;
  using IT = int32_t;
  using I = __m256i;
  static void stream(T* p, R v) { _mm256_stream_ps(p, v); }               // nontemporal; p 32-byte aligned
  static M gt(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }       // a > b (false if either is NaN)
  static M ge(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }       // a >= b (false if either is NaN)
  static M nle(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_NLE_UQ); }     // !(a <= b): a > b, or either is NaN
  static M unord(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_UNORD_Q); }  // a or b is NaN
  static M is_nan(R a) { return unord(a, a); }
  static M mand(M a, M b) { return _mm256_and_ps(a, b); }
  static M mor(M a, M b) { return _mm256_or_ps(a, b); }
  static M mandnot(M a, M b) { return _mm256_andnot_ps(a, b); }  // b and not a
  static bool any(M m) { return _mm256_movemask_ps(m) != 0; }
  static R blend(R a, R b, M m) { return _mm256_blendv_ps(a, b, m); }  // b where m, else a
  static R keep(R a, M m) { return _mm256_and_ps(m, a); }              // a where m, else 0
  // p[lo, hi) into lanes lo .. hi - 1 (0 <= lo <= hi <= N), fill in the others, which are not read.
  static R load_part(const T* p, int lo, int hi, T fill) {
    const I k = iota(), m = _mm256_and_si256(_mm256_cmpgt_epi32(k, iset1(lo - 1)), _mm256_cmpgt_epi32(iset1(hi), k));
    return _mm256_blendv_ps(set1(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  // Lane mask lo .. hi - 1 for loadz (0 <= lo <= hi <= N), and a masked load: the masked-off
  // lanes are zero and their memory is never touched (no fault past either end of a row).
  using LM = __m256i;
  static LM lmask(int lo, int hi) {
    const I k = iota();
    return _mm256_and_si256(_mm256_cmpgt_epi32(k, iset1(lo - 1)), _mm256_cmpgt_epi32(iset1(hi), k));
  }
  static R loadz(const T* p, LM m) { return _mm256_maskload_ps(p, m); }
  // Even / odd lanes of the 2N-lane row a:b in a fixed lane order of the ISA's choosing (here
  // [a0 a2 b0 b2 | a4 a6 b4 b6]: one in-lane shuffle). Lane-wise operations work in any order;
  // unzip_fix puts their result in natural order ([a0 a2 a4 a6 | b0 b2 b4 b6]).
  static R even(R a, R b) { return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); }
  static R odd(R a, R b) { return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)); }
  static R unzip_fix(R v) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static I iload(const IT* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void istore(IT* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I iset1(IT v) { return _mm256_set1_epi32(v); }
  static I iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  // Byte blend (m is all-ones or all-zeros per lane): a float blend of integers makes GCC 12
  // recompute the mask's sign with an extra compare.
  static I iblend(I a, I b, M m) { return _mm256_blendv_epi8(a, b, _mm256_castps_si256(m)); }
  static M ilt(I a, I b) { return _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, a)); }
  static M ieq(I a, I b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
  static I ieven(I a, I b) { return _mm256_castps_si256(even(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b))); }
  static I iodd(I a, I b) { return _mm256_castps_si256(odd(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b))); }
  static I iunzip_fix(I v) { return _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0)); }
  // The index lanes widened to int64 at p[0, N) (NT: nontemporal, p 32-byte aligned).
  template <bool NT>
  static void store_i64(int64_t* p, I i) {
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i)),
                  hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i, 1));
    if (NT) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), lo);
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p + 4), hi);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), hi);
    }
  }
  // ---- end of the max_pool2d / relu block ----
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
  static T hsum(R v) {  // fixed pairwise tree (Avx2F32::hsum)
    const __m128d x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
  }
  static R max(R a, R b) { return _mm256_max_pd(a, b); }
  static void store_n(T* p, R v, int n) {  // as Avx2F32: 2- and 1-lane plain stores
    __m128d lo = _mm256_castpd256_pd128(v);
    if (n & 2) {
      _mm_storeu_pd(p, lo);
      lo = _mm256_extractf128_pd(v, 1);
      p += 2;
    }
    if (n & 1) _mm_store_sd(p, lo);
  }
  static void store_n_over(T* p, R v, int n) {  // as Avx2F32
    const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    _mm256_storeu_pd(p, _mm256_blendv_pd(_mm256_loadu_pd(p), v, _mm256_castsi256_pd(m)));
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
  // ---- masks, blends, index lanes, lane shuffles (max_pool2d, relu) ----
  // M: a lane mask, as compares return it (all-ones / all-zeros lanes). I: index lanes of
  // type IT, one per value lane (int64 next to double).
  using M = __m256d;
  using IT = int64_t;
  using I = __m256i;
  static void stream(T* p, R v) { _mm256_stream_pd(p, v); }  // as Avx2F32
  static M gt(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static M nle(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_NLE_UQ); }
  static M unord(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_UNORD_Q); }
  static M is_nan(R a) { return unord(a, a); }
  static M mand(M a, M b) { return _mm256_and_pd(a, b); }
  static M mor(M a, M b) { return _mm256_or_pd(a, b); }
  static M mandnot(M a, M b) { return _mm256_andnot_pd(a, b); }
  static bool any(M m) { return _mm256_movemask_pd(m) != 0; }
  static R blend(R a, R b, M m) { return _mm256_blendv_pd(a, b, m); }
  static R keep(R a, M m) { return _mm256_and_pd(m, a); }
  static R load_part(const T* p, int lo, int hi, T fill) {
    const I k = iota(), m = _mm256_and_si256(_mm256_cmpgt_epi64(k, iset1(lo - 1)), _mm256_cmpgt_epi64(iset1(hi), k));
    return _mm256_blendv_pd(set1(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
  using LM = __m256i;  // as Avx2F32
  static LM lmask(int lo, int hi) {
    const I k = iota();
    return _mm256_and_si256(_mm256_cmpgt_epi64(k, iset1(lo - 1)), _mm256_cmpgt_epi64(iset1(hi), k));
  }
  static R loadz(const T* p, LM m) { return _mm256_maskload_pd(p, m); }
  // unpacklo gives [a0 b0 | a2 b2]; the fix reorders to [a0 a2 b0 b2]
  static R even(R a, R b) { return _mm256_unpacklo_pd(a, b); }
  static R odd(R a, R b) { return _mm256_unpackhi_pd(a, b); }
  static R unzip_fix(R v) { return _mm256_permute4x64_pd(v, _MM_SHUFFLE(3, 1, 2, 0)); }
  static I iload(const IT* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void istore(IT* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I iset1(IT v) { return _mm256_set1_epi64x(v); }
  static I iota() { return _mm256_setr_epi64x(0, 1, 2, 3); }
  static I iadd(I a, I b) { return _mm256_add_epi64(a, b); }
  static I iblend(I a, I b, M m) { return _mm256_blendv_epi8(a, b, _mm256_castpd_si256(m)); }
  static M ilt(I a, I b) { return _mm256_castsi256_pd(_mm256_cmpgt_epi64(b, a)); }
  static M ieq(I a, I b) { return _mm256_castsi256_pd(_mm256_cmpeq_epi64(a, b)); }
  static I ieven(I a, I b) { return _mm256_unpacklo_epi64(a, b); }
  static I iodd(I a, I b) { return _mm256_unpackhi_epi64(a, b); }
  static I iunzip_fix(I v) { return _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0)); }
  template <bool NT>
  static void store_i64(int64_t* p, I i) {
    if (NT)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), i);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), i);
  }
  // ---- end of the max_pool2d / relu block ----
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
  static T hsum(R v) {  // fixed pairwise tree: 256-bit halves, then Avx2F32::hsum's
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
  }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static void store_n(T* p, R v, int n) { _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v); }
  static void store_n_over(T* p, R v, int n) { store_n(p, v, n); }  // masked stores are cheap here
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
  // 16 x 16 in registers: unpack pairs, shuffle quads (both within 128-bit lanes), then two
  // rounds of 128-bit lane shuffles (the scalar loop it replaces was a quarter of bwd_weight's
  // time on a Xeon; tested through conv2d bwd_weight and Winograd on AVX-512 CPUs).
  static void transpose(const T* src, int64_t lds, T* dst, int64_t ldd) {
    R r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = load(src + i * lds);
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);      // per lane: a0 b0 a1 b1
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);  // a2 b2 a3 b3
    }
    for (int i = 0; i < 16; i += 4) {  // r[i + j], lane L: column 4L + j of rows i .. i + 3
      r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      const R v0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44), v1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
      const R v2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44),
              v3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
      store(dst + j * ldd, _mm512_shuffle_f32x4(v0, v2, 0x88));
      store(dst + (4 + j) * ldd, _mm512_shuffle_f32x4(v0, v2, 0xDD));
      store(dst + (8 + j) * ldd, _mm512_shuffle_f32x4(v1, v3, 0x88));
      store(dst + (12 + j) * ldd, _mm512_shuffle_f32x4(v1, v3, 0xDD));
    }
  }
  // Appended for the Winograd transforms (conv2d_winograd.h).
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }  // a - b
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  // ---- masks, blends, index lanes, lane shuffles (max_pool2d, relu) ----
  // M: a lane mask, as compares return it (a k-mask). I: index lanes of
  // type IT, one per value lane (int32 next to float).
  using M = __mmask16;
  using IT = int32_t;
  using I = __m512i;
  static void stream(T* p, R v) { _mm512_stream_ps(p, v); }  // as Avx2F32 (p 64-byte aligned)
  static M gt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M nle(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLE_UQ); }
  static M unord(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
  static M is_nan(R a) { return unord(a, a); }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static M mor(M a, M b) { return static_cast<M>(a | b); }
  static M mandnot(M a, M b) { return static_cast<M>(~a & b); }
  static bool any(M m) { return m != 0; }
  static R blend(R a, R b, M m) { return _mm512_mask_blend_ps(m, a, b); }
  static R keep(R a, M m) { return _mm512_maskz_mov_ps(m, a); }
  static R load_part(const T* p, int lo, int hi, T fill) {  // mask bits lo .. hi - 1
    return _mm512_mask_loadu_ps(set1(fill), static_cast<M>(((1u << hi) - 1) & ~((1u << lo) - 1)), p);
  }
  using LM = __mmask16;  // as Avx2F32 (masked-off lanes are fault-suppressed)
  static LM lmask(int lo, int hi) { return static_cast<LM>(((1u << hi) - 1) & ~((1u << lo) - 1)); }
  static R loadz(const T* p, LM m) { return _mm512_maskz_loadu_ps(m, p); }
  // Two-source permutes give the even / odd lanes in natural order: the fix is a no-op.
  static I even_lanes() { return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); }
  static R even(R a, R b) { return _mm512_permutex2var_ps(a, even_lanes(), b); }
  static R odd(R a, R b) { return _mm512_permutex2var_ps(a, _mm512_add_epi32(even_lanes(), iset1(1)), b); }
  static R unzip_fix(R v) { return v; }
  static I iload(const IT* p) { return _mm512_loadu_si512(p); }
  static void istore(IT* p, I v) { _mm512_storeu_si512(p, v); }
  static I iset1(IT v) { return _mm512_set1_epi32(v); }
  static I iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  static I iblend(I a, I b, M m) { return _mm512_mask_blend_epi32(m, a, b); }
  static M ilt(I a, I b) { return _mm512_cmplt_epi32_mask(a, b); }
  static M ieq(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static I ieven(I a, I b) { return _mm512_permutex2var_epi32(a, even_lanes(), b); }
  static I iodd(I a, I b) { return _mm512_permutex2var_epi32(a, _mm512_add_epi32(even_lanes(), iset1(1)), b); }
  static I iunzip_fix(I v) { return v; }
  template <bool NT>
  static void store_i64(int64_t* p, I i) {
    const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i)),
                  hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i, 1));
    if (NT) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p), lo);
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p + 8), hi);
    } else {
      _mm512_storeu_si512(p, lo);
      _mm512_storeu_si512(p + 8, hi);
    }
  }
  // ---- end of the max_pool2d / relu block ----
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
  static T hsum(R v) {  // fixed pairwise tree (Avx2F64::hsum after the 256-bit halves)
    const __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    const __m128d x = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
  }
  static R max(R a, R b) { return _mm512_max_pd(a, b); }
  static void store_n(T* p, R v, int n) { _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1u), v); }
  static void store_n_over(T* p, R v, int n) { store_n(p, v, n); }  // masked stores are cheap here
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
  // 8 x 8 in registers: unpack pairs within 128-bit lanes, then two rounds of lane shuffles.
  static void transpose(const T* src, int64_t lds, T* dst, int64_t ldd) {
    R r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = load(src + i * lds);
    for (int i = 0; i < 8; i += 2) {  // t[i + j], lane L: column 2L + j of rows i, i + 1
      t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int j = 0; j < 2; ++j) {
      const R v0 = _mm512_shuffle_f64x2(t[j], t[2 + j], 0x44), v1 = _mm512_shuffle_f64x2(t[j], t[2 + j], 0xEE);
      const R v2 = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0x44), v3 = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0xEE);
      store(dst + j * ldd, _mm512_shuffle_f64x2(v0, v2, 0x88));
      store(dst + (2 + j) * ldd, _mm512_shuffle_f64x2(v0, v2, 0xDD));
      store(dst + (4 + j) * ldd, _mm512_shuffle_f64x2(v1, v3, 0x88));
      store(dst + (6 + j) * ldd, _mm512_shuffle_f64x2(v1, v3, 0xDD));
    }
  }
  // Appended for the Winograd transforms (conv2d_winograd.h).
  static R sub(R a, R b) { return _mm512_sub_pd(a, b); }  // a - b
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  // ---- masks, blends, index lanes, lane shuffles (max_pool2d, relu) ----
  // M: a lane mask, as compares return it (a k-mask). I: index lanes of
  // type IT, one per value lane (int64 next to double).
  using M = __mmask8;
  using IT = int64_t;
  using I = __m512i;
  static void stream(T* p, R v) { _mm512_stream_pd(p, v); }  // as Avx2F32 (p 64-byte aligned)
  static M gt(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
  static M nle(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_NLE_UQ); }
  static M unord(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_UNORD_Q); }
  static M is_nan(R a) { return unord(a, a); }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static M mor(M a, M b) { return static_cast<M>(a | b); }
  static M mandnot(M a, M b) { return static_cast<M>(~a & b); }
  static bool any(M m) { return m != 0; }
  static R blend(R a, R b, M m) { return _mm512_mask_blend_pd(m, a, b); }
  static R keep(R a, M m) { return _mm512_maskz_mov_pd(m, a); }
  static R load_part(const T* p, int lo, int hi, T fill) {  // mask bits lo .. hi - 1
    return _mm512_mask_loadu_pd(set1(fill), static_cast<M>(((1u << hi) - 1) & ~((1u << lo) - 1)), p);
  }
  using LM = __mmask8;  // as Avx2F32
  static LM lmask(int lo, int hi) { return static_cast<LM>(((1u << hi) - 1) & ~((1u << lo) - 1)); }
  static R loadz(const T* p, LM m) { return _mm512_maskz_loadu_pd(m, p); }
  // Two-source permutes give the even / odd lanes in natural order: the fix is a no-op.
  static I even_lanes() { return _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14); }
  static R even(R a, R b) { return _mm512_permutex2var_pd(a, even_lanes(), b); }
  static R odd(R a, R b) { return _mm512_permutex2var_pd(a, _mm512_add_epi64(even_lanes(), iset1(1)), b); }
  static R unzip_fix(R v) { return v; }
  static I iload(const IT* p) { return _mm512_loadu_si512(p); }
  static void istore(IT* p, I v) { _mm512_storeu_si512(p, v); }
  static I iset1(IT v) { return _mm512_set1_epi64(v); }
  static I iota() { return _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7); }
  static I iadd(I a, I b) { return _mm512_add_epi64(a, b); }
  static I iblend(I a, I b, M m) { return _mm512_mask_blend_epi64(m, a, b); }
  static M ilt(I a, I b) { return _mm512_cmplt_epi64_mask(a, b); }
  static M ieq(I a, I b) { return _mm512_cmpeq_epi64_mask(a, b); }
  static I ieven(I a, I b) { return _mm512_permutex2var_epi64(a, even_lanes(), b); }
  static I iodd(I a, I b) { return _mm512_permutex2var_epi64(a, _mm512_add_epi64(even_lanes(), iset1(1)), b); }
  static I iunzip_fix(I v) { return v; }
  template <bool NT>
  static void store_i64(int64_t* p, I i) {
    if (NT)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p), i);
    else
      _mm512_storeu_si512(p, i);
  }
  // ---- end of the max_pool2d / relu block ----
};
#endif

// The epilogue of a register tile that only may apply ReLU (a kernel's `relu` flag), for the
// microkernels that take any epilogue functor (conv2d_pointwise.h tile, conv2d_dw_rows.h blocks).
template <class V>
struct MaybeRelu {
  bool on;
  typename V::R operator()(typename V::R v) const { return on ? V::relu(v) : v; }  // max(0, NaN) = NaN
};

// Adds x[0 .. n) into four lane-wise partial sums a[0 .. 4) (four vectors in flight hide the add
// latency), the ragged end as one masked load into a[1]: the plane sums of grad_bias
// (conv2d_ukernel.h) and of global average pooling (se_impl.h). Finish with sum_of(a).
template <class V>
inline void add_run(const typename V::T* x, int64_t n, typename V::R (&a)[4]) {
  int64_t i = 0;
  for (; i + 4 * V::N <= n; i += 4 * V::N) {
    a[0] = V::add(a[0], V::load(x + i));
    a[1] = V::add(a[1], V::load(x + i + V::N));
    a[2] = V::add(a[2], V::load(x + i + 2 * V::N));
    a[3] = V::add(a[3], V::load(x + i + 3 * V::N));
  }
  for (; i + V::N <= n; i += V::N) a[0] = V::add(a[0], V::load(x + i));
  if (i < n) a[1] = V::add(a[1], V::load_part(x + i, 0, static_cast<int>(n - i), typename V::T(0)));
}
template <class V>
inline typename V::T sum_of(const typename V::R (&a)[4]) {  // a fixed order: pairs, then V::hsum
  return V::hsum(V::add(V::add(a[0], a[1]), V::add(a[2], a[3])));
}

}  // namespace
}  // namespace cnnfast
