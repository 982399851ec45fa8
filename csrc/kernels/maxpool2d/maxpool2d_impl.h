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
  static M take(V v, V acc) {
    const M gt = _mm256_cmp_ps(v, acc, _CMP_GT_OQ);
    const M nan_v = _mm256_cmp_ps(v, v, _CMP_UNORD_Q), num_acc = _mm256_cmp_ps(acc, acc, _CMP_ORD_Q);
    return _mm256_or_ps(gt, _mm256_and_ps(nan_v, num_acc));
  }
  static M take_tie(V v, I iv, V acc, I ia) {
    const M nan_v = _mm256_cmp_ps(v, v, _CMP_UNORD_Q), nan_acc = _mm256_cmp_ps(acc, acc, _CMP_UNORD_Q);
    const M better = _mm256_or_ps(_mm256_cmp_ps(v, acc, _CMP_GT_OQ), _mm256_andnot_ps(nan_acc, nan_v));
    const M same = _mm256_or_ps(_mm256_cmp_ps(v, acc, _CMP_EQ_OQ), _mm256_and_ps(nan_v, nan_acc));
    const M earlier = _mm256_castsi256_ps(_mm256_cmpgt_epi32(ia, iv));
    return _mm256_or_ps(better, _mm256_and_ps(same, earlier));
  }
  static V blend(V a, V b, M m) { return _mm256_blendv_ps(a, b, m); }
  static I iblend(I a, I b, M m) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), m));
  }
  static void deint(V a, V b, V& even, V& odd) {
    // shuffle gives [a0 a2 b0 b2 | a4 a6 b4 b6]; the 64-bit permute puts the a pairs first.
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static void ideint(I a, I b, I& even, I& odd) {
    V e, o;
    deint(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), e, o);
    even = _mm256_castps_si256(e);
    odd = _mm256_castps_si256(o);
  }
  static void stream(T* p, V v) { _mm256_stream_ps(p, v); }
  template <bool NT>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    i = _mm256_or_si256(i, _mm256_cmpeq_epi32(i, _mm256_set1_epi32(sentinel)));  // sentinel | ~0 = -1
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
  static M take(V v, V acc) {
    const M gt = _mm256_cmp_pd(v, acc, _CMP_GT_OQ);
    const M nan_v = _mm256_cmp_pd(v, v, _CMP_UNORD_Q), num_acc = _mm256_cmp_pd(acc, acc, _CMP_ORD_Q);
    return _mm256_or_pd(gt, _mm256_and_pd(nan_v, num_acc));
  }
  static M take_tie(V v, I iv, V acc, I ia) {
    const M nan_v = _mm256_cmp_pd(v, v, _CMP_UNORD_Q), nan_acc = _mm256_cmp_pd(acc, acc, _CMP_UNORD_Q);
    const M better = _mm256_or_pd(_mm256_cmp_pd(v, acc, _CMP_GT_OQ), _mm256_andnot_pd(nan_acc, nan_v));
    const M same = _mm256_or_pd(_mm256_cmp_pd(v, acc, _CMP_EQ_OQ), _mm256_and_pd(nan_v, nan_acc));
    const M earlier = _mm256_castsi256_pd(_mm256_cmpgt_epi64(ia, iv));
    return _mm256_or_pd(better, _mm256_and_pd(same, earlier));
  }
  static V blend(V a, V b, M m) { return _mm256_blendv_pd(a, b, m); }
  static I iblend(I a, I b, M m) {
    return _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(a), _mm256_castsi256_pd(b), m));
  }
  static void deint(V a, V b, V& even, V& odd) {
    // unpacklo gives [a0 b0 | a2 b2]; the permute reorders to [a0 a2 b0 b2].
    even = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), _MM_SHUFFLE(3, 1, 2, 0));
    odd = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), _MM_SHUFFLE(3, 1, 2, 0));
  }
  static void ideint(I a, I b, I& even, I& odd) {
    V e, o;
    deint(_mm256_castsi256_pd(a), _mm256_castsi256_pd(b), e, o);
    even = _mm256_castpd_si256(e);
    odd = _mm256_castpd_si256(o);
  }
  static void stream(T* p, V v) { _mm256_stream_pd(p, v); }
  template <bool NT>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    i = _mm256_or_si256(i, _mm256_cmpeq_epi64(i, _mm256_set1_epi64x(sentinel)));
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
  static M take(V v, V acc) {
    return _mm512_cmp_ps_mask(v, acc, _CMP_GT_OQ) |
           (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(acc, acc, _CMP_ORD_Q));
  }
  static M take_tie(V v, I iv, V acc, I ia) {
    const M nan_v = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), nan_acc = _mm512_cmp_ps_mask(acc, acc, _CMP_UNORD_Q);
    const M better = _mm512_cmp_ps_mask(v, acc, _CMP_GT_OQ) | (nan_v & static_cast<M>(~nan_acc));
    const M same = _mm512_cmp_ps_mask(v, acc, _CMP_EQ_OQ) | (nan_v & nan_acc);
    return better | (same & _mm512_cmpgt_epi32_mask(ia, iv));
  }
  static V blend(V a, V b, M m) { return _mm512_mask_blend_ps(m, a, b); }
  static I iblend(I a, I b, M m) { return _mm512_mask_blend_epi32(m, a, b); }
  static void deint(V a, V b, V& even, V& odd) {
    const I ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    even = _mm512_permutex2var_ps(a, ie, b);
    odd = _mm512_permutex2var_ps(a, _mm512_add_epi32(ie, _mm512_set1_epi32(1)), b);
  }
  static void ideint(I a, I b, I& even, I& odd) {
    const I ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    even = _mm512_permutex2var_epi32(a, ie, b);
    odd = _mm512_permutex2var_epi32(a, _mm512_add_epi32(ie, _mm512_set1_epi32(1)), b);
  }
  static void stream(T* p, V v) { _mm512_stream_ps(p, v); }
  template <bool NT>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    i = _mm512_mask_mov_epi32(i, _mm512_cmpeq_epi32_mask(i, _mm512_set1_epi32(sentinel)), _mm512_set1_epi32(-1));
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
  static M take(V v, V acc) {
    return _mm512_cmp_pd_mask(v, acc, _CMP_GT_OQ) |
           (_mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_pd_mask(acc, acc, _CMP_ORD_Q));
  }
  static M take_tie(V v, I iv, V acc, I ia) {
    const M nan_v = _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q), nan_acc = _mm512_cmp_pd_mask(acc, acc, _CMP_UNORD_Q);
    const M better = _mm512_cmp_pd_mask(v, acc, _CMP_GT_OQ) | (nan_v & static_cast<M>(~nan_acc));
    const M same = _mm512_cmp_pd_mask(v, acc, _CMP_EQ_OQ) | (nan_v & nan_acc);
    return better | (same & _mm512_cmpgt_epi64_mask(ia, iv));
  }
  static V blend(V a, V b, M m) { return _mm512_mask_blend_pd(m, a, b); }
  static I iblend(I a, I b, M m) { return _mm512_mask_blend_epi64(m, a, b); }
  static void deint(V a, V b, V& even, V& odd) {
    const I ie = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    even = _mm512_permutex2var_pd(a, ie, b);
    odd = _mm512_permutex2var_pd(a, _mm512_add_epi64(ie, _mm512_set1_epi64(1)), b);
  }
  static void ideint(I a, I b, I& even, I& odd) {
    const I ie = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    even = _mm512_permutex2var_epi64(a, ie, b);
    odd = _mm512_permutex2var_epi64(a, _mm512_add_epi64(ie, _mm512_set1_epi64(1)), b);
  }
  static void stream(T* p, V v) { _mm512_stream_pd(p, v); }
  template <bool NT>
  static void store_idx(int64_t* p, I i, IT sentinel) {
    i = _mm512_mask_mov_epi64(i, _mm512_cmpeq_epi64_mask(i, _mm512_set1_epi64(sentinel)), _mm512_set1_epi64(-1));
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
    const size_t s_rb = seg(L, sizeof(T)), s_ph = sw == 1 ? 0 : seg(sw * P, sizeof(T));
    const size_t s_rbi = WithIdx ? seg(L, sizeof(IT)) : 0, s_phi = WithIdx && sw != 1 ? seg(sw * P, sizeof(IT)) : 0;
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
    if (sw != 1) {
      std::fill(ph, ph + sw * P, ninf);
      if (WithIdx) std::fill(phi, phi + sw * P, kNoIndex);
    }
    const typename S::I iota = S::iota();
    int64_t rows[64];
    std::vector<int64_t> rows_big(p.kh > 64 ? static_cast<size_t>(p.kh) : 0);
    int64_t* rowlist = p.kh > 64 ? rows_big.data() : rows;
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
        if (ih >= 0 && ih < H) rowlist[nr++] = ih;
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
        int64_t w = 0;
        for (; w + N <= W; w += N) {
          auto acc = S::load(xp + rowlist[0] * W + w);
          auto ia = S::iadd(iota, S::iset1(static_cast<IT>(rowlist[0] * W + w)));
          for (int64_t r = 1; r < nr; ++r) {
            const auto v = S::load(xp + rowlist[r] * W + w);
            const auto m = S::take(v, acc);
            acc = S::blend(acc, v, m);
            if (WithIdx) ia = S::iblend(ia, S::iadd(iota, S::iset1(static_cast<IT>(rowlist[r] * W + w))), m);
          }
          S::store(rv + w, acc);
          if (WithIdx) S::istore(ri + w, ia);
        }
        for (; w < W; ++w) {
          T best = xp[rowlist[0] * W + w];
          IT bi = static_cast<IT>(rowlist[0] * W + w);
          for (int64_t r = 1; r < nr; ++r) {
            const T v = xp[rowlist[r] * W + w];
            if (better(v, best)) { best = v; bi = static_cast<IT>(rowlist[r] * W + w); }
          }
          rv[w] = best;
          if (WithIdx) ri[w] = bi;
        }
      }
     }
     if (t > b) {
      const int64_t tp = t - 1;
      const T* const rb = rbs[(tp - b) & 1];
      const IT* const rbi = WithIdx ? rbis[(tp - b) & 1] : nullptr;
      const T* const pv = sw == 1 ? rb : ph;
      const IT* const pi = WithIdx ? (sw == 1 ? rbi : phi) : nullptr;
      // 2. phase split
      if (sw == 2) {
        for (int64_t k = 0; k < L; k += 2 * N) {
          typename S::V ev, od;
          S::deint(S::load(rb + k), S::load(rb + k + N), ev, od);
          S::store(ph + k / 2, ev);
          S::store(ph + P + k / 2, od);
          if (WithIdx) {
            typename S::I ei, oi;
            S::ideint(S::iload(rbi + k), S::iload(rbi + k + N), ei, oi);
            S::istore(phi + k / 2, ei);
            S::istore(phi + P + k / 2, oi);
          }
        }
      } else if (sw > 2) {
        for (int64_t r = 0; r < sw; ++r)
          for (int64_t q = 0; q < P && q * sw + r < L; ++q) {
            ph[r * P + q] = rb[q * sw + r];
            if (WithIdx) phi[r * P + q] = rbi[q * sw + r];
          }
      }
      // 3. horizontal pass
      T* yr = y + tp * OW;
      int64_t* ir = WithIdx ? idx + tp * OW : nullptr;
      for (int64_t ow = 0; ow < OW; ow += N) {
        auto acc = S::load(pv + ow + coff[0]);
        typename S::I ia{};
        if (WithIdx) ia = S::iload(pi + ow + coff[0]);
        for (int64_t j = 1; j < p.kw; ++j) {
          const auto v = S::load(pv + ow + coff[j]);
          if (WithIdx) {
            const auto iv = S::iload(pi + ow + coff[j]);
            const auto m = S::take_tie(v, iv, acc, ia);
            acc = S::blend(acc, v, m);
            ia = S::iblend(ia, iv, m);
          } else {
            acc = S::blend(acc, v, S::take(v, acc));
          }
        }
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
      }
     }
    }
    if (stream) _mm_sfence();  // order the streaming stores before the parallel region's join
  });
}

template <class S>
bool fwd(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  if (p.H * p.W >= static_cast<int64_t>(std::numeric_limits<typename S::IT>::max())) return false;  // index lanes too narrow
  if (idx) fwd_impl<S, true>(p, x, y, idx);
  else fwd_impl<S, false>(p, x, y, idx);
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
