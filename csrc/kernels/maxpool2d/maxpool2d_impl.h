// Width-generic max_pool2d forward/backward (NCHW), written once and instantiated per ISA
// (maxpool2d_avx2.cpp, maxpool2d_avx512.cpp) with one of the small vector types below. Include
// only from a file compiled with the matching ISA flags. Semantics exactly as maxpool2d_ref.cpp:
// NaN propagates, the first maximum in row-major scan order wins, padding never wins (an
// all-padding window gives -inf and index -1), indices are flat h * W + w per plane.
//
// Forward, per output row (one task = one (plane, output row); threads split the N*C*OH rows):
//  1. vertical pass: rb[pw + w] = max over the window's valid input rows of x[ih][w], with the
//     flat index of the winner (rows scanned top-down with a strict "better" test, so the first
//     row wins ties). rb has -inf / "no index" padding on both sides.
//  2. phase split: for stride sw, rb is split into sw phase rows ph[r][q] = rb[q * sw + r]
//     (SIMD deinterleave for sw = 2, none for sw = 1), so the horizontal pass reads contiguously:
//     window column j of output ow is ph[(j*dw) % sw][ow + (j*dw) / sw].
//  3. horizontal pass: combine the kw columns. Two columns can tie with the later column holding
//     the earlier row, so ties are settled by comparing flat indices (smaller = first in scan
//     order), which makes the separable result identical to the scan of the reference.
// "Better" is `v > best || (isnan(v) && !isnan(best))`, as in the reference. Padding carries the
// index sentinel kNoIndex (larger than any real index, so a real element wins every tie with
// padding); it is stored as -1.
//
// Rows are software-pipelined (the vertical pass runs one row ahead of steps 2-3) so the row
// buffer stores have drained before steps 2-3 read them back; see the comment at the loop.
//
// Allocation: each thread allocates its row buffers (a few rows of W + padding elements, 64-byte
// aligned) once per call. Declines (returns false) when a plane has 2^31 - 1 or more elements in float32
// (indices are carried as int32 lanes next to the float lanes).
//
// Backward: threads own whole planes, so the scatter-add through (user-supplied, possibly
// repeated) indices never races; each plane is zeroed just before its scatter, while it is in
// cache, so gx is written to memory once.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <algorithm>
#include <vector>

#include "common/parallel.h"
#include "kernels/maxpool2d/maxpool2d.h"

namespace cnnfast {
namespace pool_simd {

// Vector interface: T (value), IT (index lane: int32 for float, int64 for double, same lane
// count N), V / I / M (value, index and mask vectors), and:
//   load/store/set1, iload/istore/iset1/iota/iadd, take(v, acc) ("v is better"),
//   take_tie(v, iv, acc, ia) (better, or equal/both-NaN with a smaller index), blend/iblend
//   (b where m), deint/ideint (even and odd lanes of a:b), store_idx (widen to int64, sentinel -> -1).
#if defined(__AVX2__)
struct Avx2F32 {
  using T = float;
  using IT = int32_t;
  using V = __m256;
  using I = __m256i;
  using M = __m256;
  static constexpr int N = 8;
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(T v) { return _mm256_set1_ps(v); }
  static I iload(const IT* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void istore(IT* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I iset1(IT v) { return _mm256_set1_epi32(v); }
  static I iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  // !(v <= acc) is "v > acc, or either is NaN"; masking out a NaN acc leaves exactly "better".
  static M take(V v, V acc) { return _mm256_andnot_ps(_mm256_cmp_ps(acc, acc, _CMP_UNORD_Q), _mm256_cmp_ps(v, acc, _CMP_NLE_UQ)); }
  // better, or "not worse" (v >= acc, or v NaN) with a smaller index: "not worse and not better"
  // is exactly "same", and where v is better the second term does not matter.
  static M take_tie(V v, I iv, V acc, I ia) {
    const M not_worse = _mm256_or_ps(_mm256_cmp_ps(v, acc, _CMP_GE_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_or_ps(take(v, acc), _mm256_and_ps(not_worse, _mm256_castsi256_ps(_mm256_cmpgt_epi32(ia, iv))));
  }
  static V blend(V a, V b, M m) { return _mm256_blendv_ps(a, b, m); }
  // Byte blend (m is all-ones or all-zeros per lane): a float blend of integers makes GCC 12
  // recompute the mask's sign with an extra compare.
  static I iblend(I a, I b, M m) { return _mm256_blendv_epi8(a, b, _mm256_castps_si256(m)); }
  // Even / odd lanes of the 2N-lane row a:b in a fixed lane order of the ISA's choosing (here
  // [a0 a2 b0 b2 | a4 a6 b4 b6]: one in-lane shuffle); lane-wise max / argmax work in any order,
  // and unzip_fix / iunzip_fix restore the natural order once per output vector.
  static V even(V a, V b) { return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); }
  static V odd(V a, V b) { return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)); }
  static I ieven(I a, I b) { return _mm256_castps_si256(even(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b))); }
  static I iodd(I a, I b) { return _mm256_castps_si256(odd(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b))); }
  static V unzip_fix(V v) { return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0))); }
  static I iunzip_fix(I v) { return _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0)); }
  static void stream(T* p, V v) { _mm256_stream_ps(p, v); }
  static M gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M unord(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_UNORD_Q); }  // a or b NaN
  static M isnan(V a) { return unord(a, a); }
  static bool any(M m) { return _mm256_movemask_ps(m) != 0; }
  static M mand(M a, M b) { return _mm256_and_ps(a, b); }
  static M mor(M a, M b) { return _mm256_or_ps(a, b); }
  static M ilt(I a, I b) { return _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, a)); }
  // Lanes lo <= k < hi (0 <= lo, hi <= N) of p, the others -inf; masked-off lanes are not read.
  static V load_clip(const T* p, int lo, int hi) {
    const I k = iota(), m = _mm256_and_si256(_mm256_cmpgt_epi32(k, iset1(lo - 1)), _mm256_cmpgt_epi32(iset1(hi), k));
    return _mm256_blendv_ps(set1(-std::numeric_limits<T>::infinity()), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  template <bool NT, bool Sentinel = true>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    if (Sentinel) i = _mm256_or_si256(i, _mm256_cmpeq_epi32(i, _mm256_set1_epi32(sentinel)));  // sentinel | ~0 = -1
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i)), hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i, 1));
    if (NT) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), lo);
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p + 4), hi);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), hi);
    }
  }
};

struct Avx2F64 {
  using T = double;
  using IT = int64_t;
  using V = __m256d;
  using I = __m256i;
  using M = __m256d;
  static constexpr int N = 4;
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V set1(T v) { return _mm256_set1_pd(v); }
  static I iload(const IT* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void istore(IT* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I iset1(IT v) { return _mm256_set1_epi64x(v); }
  static I iota() { return _mm256_setr_epi64x(0, 1, 2, 3); }
  static I iadd(I a, I b) { return _mm256_add_epi64(a, b); }
  // !(v <= acc) is "v > acc, or either is NaN"; masking out a NaN acc leaves exactly "better".
  static M take(V v, V acc) { return _mm256_andnot_pd(_mm256_cmp_pd(acc, acc, _CMP_UNORD_Q), _mm256_cmp_pd(v, acc, _CMP_NLE_UQ)); }
  // better, or "not worse" (v >= acc, or v NaN) with a smaller index: "not worse and not better"
  // is exactly "same", and where v is better the second term does not matter.
  static M take_tie(V v, I iv, V acc, I ia) {
    const M not_worse = _mm256_or_pd(_mm256_cmp_pd(v, acc, _CMP_GE_OQ), _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
    return _mm256_or_pd(take(v, acc), _mm256_and_pd(not_worse, _mm256_castsi256_pd(_mm256_cmpgt_epi64(ia, iv))));
  }
  static V blend(V a, V b, M m) { return _mm256_blendv_pd(a, b, m); }
  static I iblend(I a, I b, M m) { return _mm256_blendv_epi8(a, b, _mm256_castpd_si256(m)); }  // as Avx2F32
  // as Avx2F32: unpacklo gives [a0 b0 | a2 b2], the fix reorders to [a0 a2 b0 b2]
  static V even(V a, V b) { return _mm256_unpacklo_pd(a, b); }
  static V odd(V a, V b) { return _mm256_unpackhi_pd(a, b); }
  static I ieven(I a, I b) { return _mm256_unpacklo_epi64(a, b); }
  static I iodd(I a, I b) { return _mm256_unpackhi_epi64(a, b); }
  static V unzip_fix(V v) { return _mm256_permute4x64_pd(v, _MM_SHUFFLE(3, 1, 2, 0)); }
  static I iunzip_fix(I v) { return _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0)); }
  static void stream(T* p, V v) { _mm256_stream_pd(p, v); }
  static M gt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static M unord(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_UNORD_Q); }
  static M isnan(V a) { return unord(a, a); }
  static bool any(M m) { return _mm256_movemask_pd(m) != 0; }
  static M mand(M a, M b) { return _mm256_and_pd(a, b); }
  static M mor(M a, M b) { return _mm256_or_pd(a, b); }
  static M ilt(I a, I b) { return _mm256_castsi256_pd(_mm256_cmpgt_epi64(b, a)); }
  static V load_clip(const T* p, int lo, int hi) {  // as Avx2F32
    const I k = iota(), m = _mm256_and_si256(_mm256_cmpgt_epi64(k, iset1(lo - 1)), _mm256_cmpgt_epi64(iset1(hi), k));
    return _mm256_blendv_pd(set1(-std::numeric_limits<T>::infinity()), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
  template <bool NT, bool Sentinel = true>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    if (Sentinel) i = _mm256_or_si256(i, _mm256_cmpeq_epi64(i, _mm256_set1_epi64x(sentinel)));
    if (NT) _mm256_stream_si256(reinterpret_cast<__m256i*>(p), i);
    else _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), i);
  }
};
#endif

#if defined(__AVX512F__)
struct Avx512F32 {
  using T = float;
  using IT = int32_t;
  using V = __m512;
  using I = __m512i;
  using M = __mmask16;
  static constexpr int N = 16;
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(T v) { return _mm512_set1_ps(v); }
  static I iload(const IT* p) { return _mm512_loadu_si512(p); }
  static void istore(IT* p, I v) { _mm512_storeu_si512(p, v); }
  static I iset1(IT v) { return _mm512_set1_epi32(v); }
  static I iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  // as the AVX2 versions, with mask registers
  static M take(V v, V acc) { return _mm512_cmp_ps_mask(v, acc, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(acc, acc, _CMP_ORD_Q); }
  static M take_tie(V v, I iv, V acc, I ia) {
    const M not_worse = _mm512_cmp_ps_mask(v, acc, _CMP_GE_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return take(v, acc) | (not_worse & _mm512_cmpgt_epi32_mask(ia, iv));
  }
  static V blend(V a, V b, M m) { return _mm512_mask_blend_ps(m, a, b); }
  static I iblend(I a, I b, M m) { return _mm512_mask_blend_epi32(m, a, b); }
  // Even / odd lanes of a:b, already in natural order (two-source permute): the fix is a no-op.
  static I even_lanes() { return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); }
  static V even(V a, V b) { return _mm512_permutex2var_ps(a, even_lanes(), b); }
  static V odd(V a, V b) { return _mm512_permutex2var_ps(a, _mm512_add_epi32(even_lanes(), _mm512_set1_epi32(1)), b); }
  static I ieven(I a, I b) { return _mm512_permutex2var_epi32(a, even_lanes(), b); }
  static I iodd(I a, I b) { return _mm512_permutex2var_epi32(a, _mm512_add_epi32(even_lanes(), _mm512_set1_epi32(1)), b); }
  static V unzip_fix(V v) { return v; }
  static I iunzip_fix(I v) { return v; }
  static void stream(T* p, V v) { _mm512_stream_ps(p, v); }
  static M gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M unord(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
  static M isnan(V a) { return unord(a, a); }
  static bool any(M m) { return m != 0; }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static M mor(M a, M b) { return static_cast<M>(a | b); }
  static M ilt(I a, I b) { return _mm512_cmplt_epi32_mask(a, b); }
  static V load_clip(const T* p, int lo, int hi) {  // as Avx2F32: bits lo..hi-1 of the mask
    const M m = static_cast<M>(((1u << hi) - 1) & ~((1u << lo) - 1));
    return _mm512_mask_loadu_ps(set1(-std::numeric_limits<T>::infinity()), m, p);
  }
  template <bool NT, bool Sentinel = true>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    if (Sentinel) i = _mm512_mask_mov_epi32(i, _mm512_cmpeq_epi32_mask(i, _mm512_set1_epi32(sentinel)), _mm512_set1_epi32(-1));
    const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i)), hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i, 1));
    if (NT) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p), lo);
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p + 8), hi);
    } else {
      _mm512_storeu_si512(p, lo);
      _mm512_storeu_si512(p + 8, hi);
    }
  }
};

struct Avx512F64 {
  using T = double;
  using IT = int64_t;
  using V = __m512d;
  using I = __m512i;
  using M = __mmask8;
  static constexpr int N = 8;
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static V set1(T v) { return _mm512_set1_pd(v); }
  static I iload(const IT* p) { return _mm512_loadu_si512(p); }
  static void istore(IT* p, I v) { _mm512_storeu_si512(p, v); }
  static I iset1(IT v) { return _mm512_set1_epi64(v); }
  static I iota() { return _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7); }
  static I iadd(I a, I b) { return _mm512_add_epi64(a, b); }
  // as the AVX2 versions, with mask registers
  static M take(V v, V acc) { return _mm512_cmp_pd_mask(v, acc, _CMP_NLE_UQ) & _mm512_cmp_pd_mask(acc, acc, _CMP_ORD_Q); }
  static M take_tie(V v, I iv, V acc, I ia) {
    const M not_worse = _mm512_cmp_pd_mask(v, acc, _CMP_GE_OQ) | _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
    return take(v, acc) | (not_worse & _mm512_cmpgt_epi64_mask(ia, iv));
  }
  static V blend(V a, V b, M m) { return _mm512_mask_blend_pd(m, a, b); }
  static I iblend(I a, I b, M m) { return _mm512_mask_blend_epi64(m, a, b); }
  static I even_lanes() { return _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14); }
  static V even(V a, V b) { return _mm512_permutex2var_pd(a, even_lanes(), b); }
  static V odd(V a, V b) { return _mm512_permutex2var_pd(a, _mm512_add_epi64(even_lanes(), _mm512_set1_epi64(1)), b); }
  static I ieven(I a, I b) { return _mm512_permutex2var_epi64(a, even_lanes(), b); }
  static I iodd(I a, I b) { return _mm512_permutex2var_epi64(a, _mm512_add_epi64(even_lanes(), _mm512_set1_epi64(1)), b); }
  static V unzip_fix(V v) { return v; }
  static I iunzip_fix(I v) { return v; }
  static void stream(T* p, V v) { _mm512_stream_pd(p, v); }
  static M gt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
  static M unord(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_UNORD_Q); }
  static M isnan(V a) { return unord(a, a); }
  static bool any(M m) { return m != 0; }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static M mor(M a, M b) { return static_cast<M>(a | b); }
  static M ilt(I a, I b) { return _mm512_cmplt_epi64_mask(a, b); }
  static V load_clip(const T* p, int lo, int hi) {  // as Avx2F32: bits lo..hi-1 of the mask
    const M m = static_cast<M>(((1u << hi) - 1) & ~((1u << lo) - 1));
    return _mm512_mask_loadu_pd(set1(-std::numeric_limits<T>::infinity()), m, p);
  }
  template <bool NT, bool Sentinel = true>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    if (Sentinel) i = _mm512_mask_mov_epi64(i, _mm512_cmpeq_epi64_mask(i, _mm512_set1_epi64(sentinel)), _mm512_set1_epi64(-1));
    if (NT) _mm512_stream_si512(reinterpret_cast<__m512i*>(p), i);
    else _mm512_storeu_si512(p, i);
  }
};
#endif

// Scalar "v is better than best" (the reference's test) and its tie-aware form.
template <typename T>
inline bool better(T v, T best) { return v > best || (std::isnan(v) && !std::isnan(best)); }
template <typename T, typename IT>
inline bool better_tie(T v, IT iv, T best, IT ib) {
  const bool same = v == best || (std::isnan(v) && std::isnan(best));
  return better(v, best) || (same && iv < ib);
}

// Output rows between a row's input prefetch and its use (chosen from bench/: 2-4 all hide the
// DRAM latency for VGG-sized rows; more only evicts useful lines for small planes).
constexpr int64_t kPrefetchRows = 3;
// Outputs (values + indices) at least this large are written with nontemporal stores: they do
// not stay in cache for the next layer anyway, and streaming skips the read-for-ownership of
// each output line (same reasoning and threshold as relu_impl.h).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

template <class S, bool WithIdx>
void fwd_impl(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  using T = typename S::T;
  using IT = typename S::IT;
  constexpr int N = S::N;
  constexpr IT kNoIndex = std::numeric_limits<IT>::max();
  const T ninf = -std::numeric_limits<T>::infinity();
  const int64_t H = p.H, W = p.W, OH = p.OH, OW = p.OW, sw = p.sw;
  // Buffer geometry (see the header comment): phase rows of length P cover every horizontal load.
  const int64_t owv = (OW + N - 1) / N * N, qmax = (p.kw - 1) * p.dw / sw;
  int64_t L = (owv + qmax + 1) * sw;
  if (L < p.pw + W) L = p.pw + W;
  L = (L + 2 * N - 1) / (2 * N) * (2 * N);
  const int64_t P = (L + sw - 1) / sw;  // phase row length
  // Offsets of window column j in the phase buffer: phase (j*dw) % sw, shift (j*dw) / sw.
  std::vector<int64_t> coff(static_cast<size_t>(p.kw));
  for (int64_t j = 0; j < p.kw; ++j) coff[j] = (j * p.dw) % sw * P + (j * p.dw) / sw;

  const int64_t out_bytes = p.N * p.C * OH * OW * static_cast<int64_t>(sizeof(T) + (WithIdx ? sizeof(int64_t) : 0));
  const bool stream = out_bytes >= kStreamBytes;

  parallel_for(p.N * p.C * OH, OW * p.kh * p.kw, [&](int64_t b, int64_t e) {
    // Row buffers: two vertical-pass rows (rows are software-pipelined, see below) and the phase
    // rows, in one block with every buffer 64-byte aligned.
    auto seg = [](int64_t elems, size_t sz) { return (static_cast<size_t>(elems) * sz + 63) / 64 * 64; };
    const size_t s_rb = seg(L, sizeof(T)), s_ph = sw <= 2 ? 0 : seg(sw * P, sizeof(T));
    const size_t s_rbi = WithIdx ? seg(L, sizeof(IT)) : 0, s_phi = WithIdx && sw > 2 ? seg(sw * P, sizeof(IT)) : 0;
    std::vector<unsigned char> block(2 * s_rb + s_ph + 2 * s_rbi + s_phi + 64);
    unsigned char* const base = block.data() + (64 - reinterpret_cast<std::uintptr_t>(block.data()) % 64) % 64;
    T* const rbs[2] = {reinterpret_cast<T*>(base), reinterpret_cast<T*>(base + s_rb)};
    T* const ph = reinterpret_cast<T*>(base + 2 * s_rb);
    IT* const rbis[2] = {reinterpret_cast<IT*>(base + 2 * s_rb + s_ph), reinterpret_cast<IT*>(base + 2 * s_rb + s_ph + s_rbi)};
    IT* const phi = reinterpret_cast<IT*>(base + 2 * s_rb + s_ph + 2 * s_rbi);
    for (int u = 0; u < 2; ++u) {
      std::fill(rbs[u], rbs[u] + L, ninf);
      if (WithIdx) std::fill(rbis[u], rbis[u] + L, kNoIndex);
    }
    if (sw > 2) {
      std::fill(ph, ph + sw * P, ninf);
      if (WithIdx) std::fill(phi, phi + sw * P, kNoIndex);
    }
    const typename S::I iota = S::iota();
    // the window's valid input rows: pointers and flat offsets (row * W) of their first elements
    std::vector<const T*> rowp(static_cast<size_t>(p.kh));
    std::vector<IT> rowoff(static_cast<size_t>(p.kh));
    T tv[N];
    int64_t ti[N];

    // Software pipeline: iteration t runs the vertical pass of row t and then the phase split and
    // horizontal pass of row t - 1. The vertical pass's loads miss cache and hold up retirement,
    // so its row-buffer stores sit in the store queue for long; a later load that only partly
    // overlaps one of them (the phase split after padding pw = 1, the horizontal shifts) cannot
    // be forwarded and must wait for it. One row of lag lets those stores drain first.
    for (int64_t t = b; t <= e; ++t) {
     if (t < e) {
      T* const rv = rbs[(t - b) & 1] + p.pw;  // rv[w] = column w of the input row
      IT* const ri = WithIdx ? rbis[(t - b) & 1] + p.pw : nullptr;
      const int64_t nc = t / OH, oh = t % OH;
      const T* xp = x + nc * H * W;
      // 1. vertical pass over the window's valid rows (top-down: first row wins ties)
      int64_t nr = 0;
      for (int64_t i = 0; i < p.kh; ++i) {
        const int64_t ih = oh * p.sh - p.ph + i * p.dh;
        if (ih >= 0 && ih < H) {
          rowp[nr] = xp + ih * W;
          rowoff[nr++] = static_cast<IT>(ih * W);
        }
      }
      // Prefetch the input rows of the output row kPrefetchRows ahead: each output row reads
      // only a few short row segments, too little for the hardware prefetcher to ramp up.
      if (t + kPrefetchRows < e) {
        const int64_t t2 = t + kPrefetchRows, oh2 = t2 % OH;
        const char* x2 = reinterpret_cast<const char*>(x + t2 / OH * H * W);
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh2 * p.sh - p.ph + i * p.dh;
          if (ih < 0 || ih >= H) continue;
          // every line the row touches, from the one holding its first byte to the one holding its last
          const std::uintptr_t r0 = reinterpret_cast<std::uintptr_t>(x2 + ih * W * static_cast<int64_t>(sizeof(T)));
          const std::uintptr_t r1 = r0 + static_cast<std::uintptr_t>(W) * sizeof(T);
          for (std::uintptr_t a = r0 & ~std::uintptr_t(63); a < r1; a += 64) _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
        }
      }
      if (nr == 0) {
        std::fill(rv, rv + W, ninf);
        if (WithIdx) std::fill(ri, ri + W, kNoIndex);
      } else {
        // The lanes track the winning row's offset; adding the column vector col = w + iota
        // at the store gives the flat index.
        int64_t w = 0;
        auto col = iota;
        for (; w + N <= W; w += N) {
          auto acc = S::load(rowp[0] + w);
          auto ia = S::iset1(rowoff[0]);
          for (int64_t r = 1; r < nr; ++r) {
            const auto v = S::load(rowp[r] + w);
            const auto m = S::take(v, acc);
            acc = S::blend(acc, v, m);
            if (WithIdx) ia = S::iblend(ia, S::iset1(rowoff[r]), m);
          }
          S::store(rv + w, acc);
          if (WithIdx) S::istore(ri + w, S::iadd(ia, col));
          col = S::iadd(col, S::iset1(N));
        }
        for (; w < W; ++w) {
          T best = rowp[0][w];
          IT bi = rowoff[0];
          for (int64_t r = 1; r < nr; ++r) {
            const T v = rowp[r][w];
            if (better(v, best)) { best = v; bi = rowoff[r]; }
          }
          rv[w] = best;
          if (WithIdx) ri[w] = static_cast<IT>(bi + w);
        }
      }
     }
     if (t > b) {
      const int64_t tp = t - 1;
      const T* const rb = rbs[(tp - b) & 1];
      const IT* const rbi = WithIdx ? rbis[(tp - b) & 1] : nullptr;
      T* const yr = y + tp * OW;
      int64_t* const ir = WithIdx ? idx + tp * OW : nullptr;
      // Writes output columns [ow, ow + N) of the row (clipped at OW).
      auto emit = [&](int64_t ow, typename S::V acc, typename S::I ia) {
        if (ow + N <= OW) {
          // streaming only where the store is vector-aligned (rows of odd byte length are not)
          if (stream && reinterpret_cast<std::uintptr_t>(yr + ow) % sizeof(typename S::V) == 0) S::stream(yr + ow, acc);
          else S::store(yr + ow, acc);
          if (WithIdx) {
            if (stream && reinterpret_cast<std::uintptr_t>(ir + ow) % sizeof(typename S::V) == 0) S::template store_idx<true>(ir + ow, ia, kNoIndex);
            else S::template store_idx<false>(ir + ow, ia, kNoIndex);
          }
        } else {
          S::store(tv, acc);
          std::memcpy(yr + ow, tv, static_cast<size_t>(OW - ow) * sizeof(T));
          if (WithIdx) {
            S::template store_idx<false>(ti, ia, kNoIndex);
            std::memcpy(ir + ow, ti, static_cast<size_t>(OW - ow) * sizeof(int64_t));
          }
        }
      };
      // Folds window column v (indices iv) into the running maximum.
      auto fold = [](typename S::V v, typename S::I iv, typename S::V& acc, typename S::I& ia) {
        if (WithIdx) {
          const auto m = S::take_tie(v, iv, acc, ia);
          acc = S::blend(acc, v, m);
          ia = S::iblend(ia, iv, m);
        } else {
          acc = S::blend(acc, v, S::take(v, acc));
        }
      };
      if (sw == 2) {
        // 2-3. stride 2: window column j of outputs [ow, ow + N) is the even (j*dw even) or odd
        // lanes of rb[2 * (ow + j*dw/2) ...], deinterleaved in registers. (Going through a phase
        // buffer stored just before costs a store-forwarding stall on every shifted load.)
        for (int64_t ow = 0; ow < OW; ow += N) {
          typename S::V acc{};
          typename S::I ia{};
          for (int64_t j = 0; j < p.kw; ++j) {
            const int64_t jd = j * p.dw, o = 2 * (ow + jd / 2);
            const auto va = S::load(rb + o), vb = S::load(rb + o + N);
            const auto v = jd & 1 ? S::odd(va, vb) : S::even(va, vb);
            typename S::I iv{};
            if (WithIdx) {
              const auto ja = S::iload(rbi + o), jb = S::iload(rbi + o + N);
              iv = jd & 1 ? S::iodd(ja, jb) : S::ieven(ja, jb);
            }
            if (j == 0) {
              acc = v;
              ia = iv;
            } else {
              fold(v, iv, acc, ia);
            }
          }
          emit(ow, S::unzip_fix(acc), WithIdx ? S::iunzip_fix(ia) : ia);
        }
      } else {
        const T* const pv = sw == 1 ? rb : ph;
        const IT* const pi = WithIdx ? (sw == 1 ? rbi : phi) : nullptr;
        // 2. phase split (strides above 2: scalar, rare)
        if (sw > 2) {
          for (int64_t r = 0; r < sw; ++r)
            for (int64_t q = 0; q < P && q * sw + r < L; ++q) {
              ph[r * P + q] = rb[q * sw + r];
              if (WithIdx) phi[r * P + q] = rbi[q * sw + r];
            }
        }
        // 3. horizontal pass
        for (int64_t ow = 0; ow < OW; ow += N) {
          auto acc = S::load(pv + ow + coff[0]);
          typename S::I ia{};
          if (WithIdx) ia = S::iload(pi + ow + coff[0]);
          for (int64_t j = 1; j < p.kw; ++j) fold(S::load(pv + ow + coff[j]), WithIdx ? S::iload(pi + ow + coff[j]) : ia, acc, ia);
          emit(ow, acc, ia);
        }
      }
     }
    }
    if (stream) _mm_sfence();  // order the streaming stores before the parallel region's join
  });
}

// Stride-2 forward, horizontal pass first (the ResNet / VGG downsampling pools). Each input row
// is reduced across the window columns once, into a ring of row results (slot ih % span), and an
// output row is the vertical fold of its kh rows' results. In this order the first maximum of a
// row is the leftmost (columns are folded left to right) and the first row wins across rows, which
// is the scan order of the reference with plain "better" tests: no index comparisons, unlike the
// vertical-first order of fwd_impl, whose column fold must break ties between rows by index.
// Window column j of N outputs is the even lanes of the 2N inputs from column 2*ow - pw + j*dw,
// loaded straight from x (S::even: one in-lane shuffle; row results stay in its lane order until
// the output store). Blocks reaching past either end of the row load with S::load_clip: outside
// columns read as -inf with index kNoIndex, and a padding accumulator is replaced by the next
// column whatever its value, so padding never wins.

// The stride-2 passes below have a fast form for rows without NaN: "better" is then one ordered
// compare (v > acc). The horizontal pass checks the columns it loads for NaN (one unordered compare
// per pair of vectors) and redoes a row that has one with the NaN-aware test; the vertical pass
// uses the NaN-aware test when any of its rows had NaN. Plain compare, as take() for NaN-free input.
template <class S, bool NanSafe>
inline typename S::M take_s2(typename S::V v, typename S::V acc) {
  if (NanSafe) return S::take(v, acc);
  return S::gt(v, acc);
}

// One block of N outputs of the horizontal pass for kw = 2 or 3, dw = 1, from the 2N (+ 2)
// input columns starting at c0 = 2 * ow - pw: window columns 0 and 1 are the even and odd lanes
// of the pair at c0, column 2 the even lanes of the pair at c0 + 2. Edge: 0 = every loaded column
// in the row (but maybe the last, unused); 1 = the block reaches past the row but not past x: plain
// loads, columns >= W then set to -inf; 2 = it reaches past x: loads through S::load_clip. Left:
// pw = 1 and this is block 0, so lane 0's column 0 is padding: the fold starts from column 1 and
// column 0 then wins ties in the other lanes (it comes first). Without NanSafe, "better" is
// v > acc and nanm collects NaN in the loads (columns past the row too: a false alarm only costs
// the NaN-aware redo).
template <class S, bool WithIdx, int KW, bool NanSafe, bool Left, int Edge>
inline __attribute__((always_inline)) void hblock_s2(const typename S::T* row, int64_t c0, int64_t W, typename S::I first,
                                                     typename S::T* hvs, typename S::IT* his, typename S::M& nanm) {
  using T = typename S::T;
  using V = typename S::V;
  using I = typename S::I;
  using M = typename S::M;
  constexpr int N = S::N;
  constexpr bool Clip = Edge == 2;
  auto ld = [&](int64_t c) {
    if (!Clip) return S::load(row + c);
    const int64_t lo = c < 0 ? -c : 0, hi = W - c;  // lanes [lo, hi) lie in the row
    const int l = static_cast<int>(lo < N ? lo : N), h = static_cast<int>(hi < l ? l : hi < N ? hi : N);
    // address arithmetic in integers: c may lie before the row (those lanes are not read)
    return S::load_clip(reinterpret_cast<const T*>(reinterpret_cast<std::uintptr_t>(row) + c * static_cast<int64_t>(sizeof(T))), l, h);
  };
  const V a = ld(c0), b = ld(c0 + N);
  V v0 = S::even(a, b), v1 = S::odd(a, b);
  // NaN check of columns [c0, c0 + 2N): the blocks together cover the row but for the column
  // after the last block's pair, which hrow_s2 checks
  if (!NanSafe) nanm = S::mor(nanm, S::unord(a, b));
  const I col = Edge == 1 ? S::iadd(S::ieven(S::iota(), S::iadd(S::iota(), S::iset1(N))), S::iset1(static_cast<typename S::IT>(c0))) : I{};
  const V ninf = S::set1(-std::numeric_limits<T>::infinity());
  auto past = [&](int j) { return S::ilt(S::iset1(static_cast<typename S::IT>(W - 1 - j)), col); };  // lanes whose column j is >= W
  if (Edge == 1) {
    v0 = S::blend(v0, ninf, past(0));
    v1 = S::blend(v1, ninf, past(1));
  }
  const I zero = S::iset1(0), one = S::iset1(1);
  V acc;
  I code{};  // the winner's window column
  if (Left) {
    acc = v1;
    const M m = S::mand(S::mor(S::ge(v0, acc), S::isnan(v0)), S::ilt(zero, S::iota()));  // not worse, lanes >= 1
    acc = S::blend(acc, v0, m);
    if (WithIdx) code = S::iblend(one, zero, m);
  } else {
    acc = v0;
    const M m = take_s2<S, NanSafe>(v1, acc);
    acc = S::blend(acc, v1, m);
    if (WithIdx) code = S::iblend(zero, one, m);
  }
  if (KW == 3) {
    V v2 = S::even(ld(c0 + 2), ld(c0 + 2 + N));
    if (Edge == 1) v2 = S::blend(v2, ninf, past(2));
    const M m = take_s2<S, NanSafe>(v2, acc);
    acc = S::blend(acc, v2, m);
    if (WithIdx) code = S::iblend(code, S::iset1(2), m);
  }
  if (NanSafe) nanm = S::mor(nanm, S::isnan(acc));
  S::store(hvs, acc);
  if (WithIdx) S::istore(his, S::iadd(first, code));
}

// Horizontal pass of one input row (flat offset ihW of its first element) into hvs / his:
// hblock_s2 over the row, interior blocks [0 or N, oe) loaded directly. Returns whether the row
// result may hold NaN: without NanSafe, whether the row must be redone with it; with it, whether
// the vertical pass must be NaN-aware.
template <class S, bool WithIdx, int KW, bool NanSafe>
bool hrow_s2(const typename S::T* row, const typename S::T* x, const typename S::T* x_end, int64_t ihW, int64_t W, int64_t owv,
             int64_t oe, int64_t pw, typename S::T* hvs, typename S::IT* his) {
  using T = typename S::T;
  using IT = typename S::IT;
  using I = typename S::I;
  using M = typename S::M;
  constexpr int N = S::N;
  constexpr int64_t reach = (KW - 1) + 2 * N;  // a block loads columns [c0, c0 + reach), c0 = 2 * ow - pw
  const I lane2 = S::ieven(S::iota(), S::iadd(S::iota(), S::iset1(N)));  // 2 * lane, in S::even's lane order
  const I step = S::iset1(2 * N);
  I first = S::iadd(lane2, S::iset1(static_cast<IT>(ihW - pw)));  // flat index of window column 0, per lane
  M nanm = S::gt(S::set1(0), S::set1(0));                         // all false
  // the Edge of a block that is not interior (see hblock_s2); addresses compared as integers (the
  // block's may lie outside x)
  auto edge = [&](int64_t c0) {
    const std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(row) + c0 * static_cast<int64_t>(sizeof(T));
    return lo >= reinterpret_cast<std::uintptr_t>(x) && lo + reach * sizeof(T) <= reinterpret_cast<std::uintptr_t>(x_end) ? 1 : 2;
  };
  int64_t ow = 0;
  if (pw > 0) {  // block 0 holds the left padding (pw = 1); its loads start one before the row
    const int e0 = edge(-pw) == 1 && -pw + reach - 1 <= W ? 0 : edge(-pw);
    if (e0 == 0) hblock_s2<S, WithIdx, KW, NanSafe, true, 0>(row, -pw, W, first, hvs, his, nanm);
    else if (e0 == 1) hblock_s2<S, WithIdx, KW, NanSafe, true, 1>(row, -pw, W, first, hvs, his, nanm);
    else hblock_s2<S, WithIdx, KW, NanSafe, true, 2>(row, -pw, W, first, hvs, his, nanm);
    ow = N;
    first = S::iadd(first, step);
  }
  for (; ow < oe; ow += N, first = S::iadd(first, step))
    hblock_s2<S, WithIdx, KW, NanSafe, false, 0>(row, 2 * ow - pw, W, first, hvs + ow, his + ow, nanm);
  for (; ow < owv; ow += N, first = S::iadd(first, step)) {
    if (edge(2 * ow - pw) == 1) hblock_s2<S, WithIdx, KW, NanSafe, false, 1>(row, 2 * ow - pw, W, first, hvs + ow, his + ow, nanm);
    else hblock_s2<S, WithIdx, KW, NanSafe, false, 2>(row, 2 * ow - pw, W, first, hvs + ow, his + ow, nanm);
  }
  const int64_t c_last = 2 * owv - pw;  // used by the last block (kw = 3), after its checked pair
  return S::any(nanm) || (!NanSafe && KW == 3 && c_last < W && std::isnan(row[c_last]));
}

template <class S, bool WithIdx, int KW>
void fwd_s2_impl(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  using T = typename S::T;
  using IT = typename S::IT;
  using V = typename S::V;
  using I = typename S::I;
  using M = typename S::M;
  constexpr int N = S::N;
  constexpr IT kNoIndex = std::numeric_limits<IT>::max();
  static_assert(KW == 2 || KW == 3, "kw = 2 or 3 (dw = 1)");
  const int64_t H = p.H, W = p.W, OH = p.OH, OW = p.OW, kh = p.kh, sh = p.sh, ph = p.ph, pw = p.pw, dh = p.dh;
  const T* const x_end = x + p.N * p.C * H * W;
  const int64_t owv = (OW + N - 1) / N * N;  // row result length (whole vectors)
  const int64_t span = (kh - 1) * dh + 1;    // input rows one window spans
  int64_t ring = 1;                          // ring slots: a power of two >= span (slot = row & (ring - 1))
  while (ring < span) ring *= 2;
  const int64_t out_bytes = p.N * p.C * OH * OW * static_cast<int64_t>(sizeof(T) + (WithIdx ? sizeof(int64_t) : 0));
  const bool stream = out_bytes >= kStreamBytes;
  // Interior blocks of a row end at oe: every used column (the even lanes) inside the row, every
  // loaded one inside x. A block loads columns [c0, c0 + reach), c0 = 2 * ow - pw, and uses all but
  // the last; that one may be the next row's first element, except after the last row of x (oe1).
  const int64_t reach = (KW - 1) + 2 * N;
  int64_t oe = 0, oe1 = 0;
  for (int64_t ow = 0; ow < owv; ow += N) {
    if (2 * ow - pw >= 0 && 2 * ow - pw + reach - 1 <= W) oe = ow + N;
    if (2 * ow - pw >= 0 && 2 * ow - pw + reach <= W) oe1 = ow + N;
  }

  parallel_for(p.N * p.C * OH, OW * kh * KW, [=](int64_t b, int64_t e) {
    // ring slot s: values hv + s * owv, indices hi + s * owv (64-byte aligned block)
    const size_t s_hv = (static_cast<size_t>(ring * owv) * sizeof(T) + 63) / 64 * 64;
    const size_t s_hi = WithIdx ? static_cast<size_t>(ring * owv) * sizeof(IT) : 0;
    std::vector<unsigned char> block(s_hv + s_hi + 64);
    unsigned char* const base = block.data() + (64 - reinterpret_cast<std::uintptr_t>(block.data()) % 64) % 64;
    T* const hv = reinterpret_cast<T*>(base);
    IT* const hi = reinterpret_cast<IT*>(base + s_hv);
    std::vector<int64_t> tag(static_cast<size_t>(ring), -1);  // plane * H + input row held by each slot
    std::vector<char> rnan(static_cast<size_t>(ring), 0);     // whether that row result holds NaN
    std::vector<const T*> rv(static_cast<size_t>(kh));        // row results of the window's valid rows
    std::vector<const IT*> ri(static_cast<size_t>(kh));
    T tv[N];
    int64_t ti[N];

    int64_t nc = b / OH, oh = b % OH, nc2 = (b + kPrefetchRows) / OH, oh2 = (b + kPrefetchRows) % OH;
    for (int64_t t = b; t < e; ++t, ++oh, ++oh2) {
      if (oh == OH) oh = 0, ++nc;
      if (oh2 == OH) oh2 = 0, ++nc2;
      const T* const xp = x + nc * H * W;
      // Prefetch the input rows of the output row kPrefetchRows ahead (see fwd_impl), only those
      // that the row before it (prefetched one iteration earlier) does not read.
      if (t + kPrefetchRows < e) {
        const char* x2 = reinterpret_cast<const char*>(x + nc2 * H * W);
        const int64_t seen = oh2 > 0 && t > b ? (oh2 - 1) * sh - ph + (kh - 1) * dh : -1;  // its last row
        for (int64_t i = 0; i < kh; ++i) {
          const int64_t ih = oh2 * sh - ph + i * dh;
          if (ih < 0 || ih >= H || (ih <= seen && dh == 1)) continue;
          const std::uintptr_t r0 = reinterpret_cast<std::uintptr_t>(x2 + ih * W * static_cast<int64_t>(sizeof(T)));
          const std::uintptr_t r1 = r0 + static_cast<std::uintptr_t>(W) * sizeof(T);
          for (std::uintptr_t a = r0 & ~std::uintptr_t(63); a < r1; a += 64) _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
        }
      }
      // horizontal pass of the window's valid rows not already in the ring
      int64_t nr = 0;
      bool nan = false;
      for (int64_t i = 0; i < kh; ++i) {
        const int64_t ih = oh * sh - ph + i * dh;
        if (ih < 0 || ih >= H) continue;
        const int64_t s = ih & (ring - 1);
        T* const hvs = hv + s * owv;
        IT* const his = WithIdx ? hi + s * owv : nullptr;
        if (tag[s] != nc * H + ih) {
          const T* row = xp + ih * W;
          const int64_t oer = row + W < x_end ? oe : oe1;
          bool rn = hrow_s2<S, WithIdx, KW, false>(row, x, x_end, ih * W, W, owv, oer, pw, hvs, his);
          if (rn) rn = hrow_s2<S, WithIdx, KW, true>(row, x, x_end, ih * W, W, owv, oer, pw, hvs, his);
          tag[s] = nc * H + ih;
          rnan[s] = rn;
        }
        nan |= rnan[s] != 0;
        rv[nr] = hvs;
        ri[nr] = his;
        ++nr;
      }
      // vertical pass (top-down: the first row wins ties) and the output row
      T* const yr = y + t * OW;
      int64_t* const ir = WithIdx ? idx + t * OW : nullptr;
      // whole-vector stores stay aligned along the row when its start is
      const bool ys = stream && reinterpret_cast<std::uintptr_t>(yr) % sizeof(V) == 0;
      const bool is = stream && WithIdx && reinterpret_cast<std::uintptr_t>(ir) % sizeof(V) == 0;
      if (nr == 0) {  // the window misses every input row (dilation): -inf, index -1
        std::fill(yr, yr + OW, -std::numeric_limits<T>::infinity());
        if (WithIdx) std::fill(ir, ir + OW, int64_t(-1));
        continue;
      }
      // dw = 1 and pw <= kw / 2: every output has a real column, no kNoIndex to map to -1
      constexpr bool kSentinel = false;
      // NR: the number of rows when fixed at compile time (unrolled), 0 = nr
      // A row's last, partial vector may be stored whole when the next row is this thread's too
      // and wide enough to take the excess (it overwrites it later).
      const bool spill = t + 1 < e && OW >= N;
      auto vpass = [&](auto safe, auto nrc) {
        constexpr bool Safe = decltype(safe)::value;
        constexpr int NR = decltype(nrc)::value;
        const T* const v0 = rv[0];
        const T* const v1 = NR >= 2 ? rv[1] : nullptr;
        const T* const v2 = NR >= 3 ? rv[2] : nullptr;
        const IT* const i0 = ri[0];
        const IT* const i1 = NR >= 2 ? ri[1] : nullptr;
        const IT* const i2 = NR >= 3 ? ri[2] : nullptr;
        auto fold = [&](const T* vr, const IT* ir_, int64_t ow, V& acc, I& ia) {
          const V v = S::load(vr + ow);
          const M m = take_s2<S, Safe>(v, acc);
          acc = S::blend(acc, v, m);
          if (WithIdx) ia = S::iblend(ia, S::iload(ir_ + ow), m);
        };
        for (int64_t ow = 0; ow < OW; ow += N) {
          V acc = S::load(v0 + ow);
          I ia{};
          if (WithIdx) ia = S::iload(i0 + ow);
          if (NR >= 2) fold(v1, i1, ow, acc, ia);
          if (NR >= 3) fold(v2, i2, ow, acc, ia);
          if (NR == 0)
            for (int64_t r = 1; r < nr; ++r) fold(rv[r], ri[r], ow, acc, ia);
          acc = S::unzip_fix(acc);
          if (WithIdx) ia = S::iunzip_fix(ia);
          if (ow + N <= OW) {
            if (ys) S::stream(yr + ow, acc);
            else S::store(yr + ow, acc);
            if (WithIdx) {
              if (is) S::template store_idx<true, kSentinel>(ir + ow, ia, kNoIndex);
              else S::template store_idx<false, kSentinel>(ir + ow, ia, kNoIndex);
            }
          } else if (spill) {  // the lanes past the row land in the next row, written after this one
            S::store(yr + ow, acc);
            if (WithIdx) S::template store_idx<false, kSentinel>(ir + ow, ia, kNoIndex);
          } else {
            S::store(tv, acc);
            std::memcpy(yr + ow, tv, static_cast<size_t>(OW - ow) * sizeof(T));
            if (WithIdx) {
              S::template store_idx<false, kSentinel>(ti, ia, kNoIndex);
              std::memcpy(ir + ow, ti, static_cast<size_t>(OW - ow) * sizeof(int64_t));
            }
          }
        }
      };
      using C3 = std::integral_constant<int, 3>;
      using C2 = std::integral_constant<int, 2>;
      using C0 = std::integral_constant<int, 0>;
      if (nan) vpass(std::true_type{}, C0{});
      else if (nr == 3) vpass(std::false_type{}, C3{});
      else if (nr == 2) vpass(std::false_type{}, C2{});
      else vpass(std::false_type{}, C0{});
    }
    if (stream) _mm_sfence();  // order the streaming stores before the parallel region's join
  });
}

template <class S>
bool fwd(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  if (p.H * p.W >= static_cast<int64_t>(std::numeric_limits<typename S::IT>::max())) return false;  // index lanes too narrow
  // fwd_s2_impl: stride 2, kw = 2 or 3 (dw = 1), rows of 3 or more vectors (chosen from bench/:
  // below that its per-row work outweighs the vertical-first pass of fwd_impl)
  const bool s2 = p.sw == 2 && p.dw == 1 && (p.kw == 2 || p.kw == 3) && p.OW > 2 * S::N;
  if (s2 && p.kw == 3) {
    if (idx) fwd_s2_impl<S, true, 3>(p, x, y, idx);
    else fwd_s2_impl<S, false, 3>(p, x, y, idx);
  } else if (s2) {
    if (idx) fwd_s2_impl<S, true, 2>(p, x, y, idx);
    else fwd_s2_impl<S, false, 2>(p, x, y, idx);
  } else if (idx) {
    fwd_impl<S, true>(p, x, y, idx);
  } else {
    fwd_impl<S, false>(p, x, y, idx);
  }
  return true;
}

template <typename T>
bool bwd(const Pool2dShape& p, const T* gy, const int64_t* idx, T* gx) {
  const int64_t plane = p.H * p.W, oplane = p.OH * p.OW;
  parallel_for(p.N * p.C, plane + oplane, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      T* g = gx + nc * plane;
      std::memset(g, 0, static_cast<size_t>(plane) * sizeof(T));  // plane stays in cache for the scatter
      const T* gyp = gy + nc * oplane;
      const int64_t* ip = idx + nc * oplane;
      for (int64_t o = 0; o < oplane; ++o) g[ip[o]] += gyp[o];
    }
  });
  return true;
}

}  // namespace pool_simd
}  // namespace cnnfast
