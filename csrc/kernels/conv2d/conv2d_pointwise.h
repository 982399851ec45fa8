// Direct pointwise (1x1, stride 1, no padding, groups 1) forward conv, written once for any vector
// type V of common/simd.h and instantiated in conv2d_pointwise_avx2.cpp / conv2d_pointwise_avx512.cpp.
//
// Per image, y[k][p] = bias[k] + sum_c w[k][c] * x[c][p] (p = pixels, contiguous in NCHW) is a
// GEMM whose operands are already in a usable layout: the register tile is MR output channels x
// NV pixel vectors, the weights are broadcast from their natural [k][c] rows and the NV x vectors
// of channel c are loaded in place, so in general nothing is packed (the general GEMM path copies x into
// panels and, on AVX-512, packs the weights on every call, which costs as much as the multiply-
// adds when K is small -- MobileNetV2's 144->24 56x56: each input value feeds 24 outputs -- or the
// plane is). Bias, ReLU and the fused activation (Conv2dShape::act) are applied at the store.
// Blocking (fwd): strips of pixels that stay in L1 while every row block of a work unit reads them,
// so the input is read from memory once; on planes whose channel rows would collide in a few L1
// sets (16x16, 32x32, ...) the strip is first copied to a contiguous per-thread buffer (see
// kPackMinRowBlocks).
//
// Pixel tails (196 = 12 x 16 + 4 floats, ...): lanes never mix, so a tail vector may read past the
// plane into the next channel's pixels (its extra lanes are computed and dropped); only the very
// last channel of the last image, where that would leave the buffer, uses a masked load. A tail of
// at most V::N / 8 pixels (7x7 = 3 x 16 + 1) goes to dot products instead (tail_pixels).
//
// Every output is reduced over c in order by one register tile (tail pixels: one dot product), so
// results do not depend on the thread count or the blocking (packed or not). The packing buffer is
// optional: without scratch memory the strip is read in place, nothing is declined.
//
// Internal linkage (anonymous namespace): see common/simd.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/parallel.h"
#include "common/portable.h"
#include "common/scratch.h"
#include "common/simd.h"
#include "common/static_n.h"
#include "dispatch/heuristics.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/conv2d_epilogue.h"
#include "kernels/conv2d/conv2d_gemm.h"

namespace cnnfast {
namespace {
namespace pointwise {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The shapes this kernel takes: plain 1x1, groups 1 (any plane, any batch).
inline bool applies(const Conv2dShape& p) {
  return p.R == 1 && p.S == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0 && p.groups == 1 && p.OH == p.H &&
         p.OW == p.W;
}

// The shapes left to the general GEMM path (its packed weights, 14 rows x 32 columns on AVX-512,
// reuse each input value for more output channels once both C and K are large), per ISA; skipped
// while relax_heuristics() (the autotuner) is on. chosen because (Xeon, 1 thread, CPU time,
// median of 3 alternating fresh-process rounds, bench/pointwise_layers.py, ResNet-50 and mobile
// 1x1 layers at batch 1 and 8) the direct kernel ran 0.80-0.82x of the GEMM on 64->256 and
// 256->64 56x56 at batch 8 and 0.90-0.94x with C >= 1024 (AVX-512), 0.83-0.96x with min(C, K) >=
// 256 at batch 8 (AVX2), and 0.94-1.87x on every other layer measured. The C >= 1024 rule holds
// from 392 columns: below (ResNet-50's 1024 -> 256 on 14x14 and 2048 -> 512 on 7x7 at batch 1) the
// direct kernel ran 1.20x and 1.26x the GEMM (Xeon, AVX-512, 2 threads, wall, median of 5 fresh-
// process rounds, bench/pointwise_layers.py --core ... --only r50 --batch 1,8; 1 thread 1.13-1.15x),
// at batch 8 0.84x (2048 -> 512, 1 thread) to 1.04x.
// Expanding layers (K >= 4C) whose output exceeds 16 MB also stay on the GEMM: 16 -> 96 on
// 112 x 112 at batch 8 (38.5 MB out) ran 0.78x of it, at batch 1 (4.8 MB) 1.17x, 24 -> 144 on
// 56 x 56 at batch 8 (14.4 MB) 1.12x (same method, bench/ab_builds.py pw16_96_112_n8,
// pw16_96_112_n1, pw24_144_56_n8).
inline bool prefers_gemm_avx512(const Conv2dShape& p) {
  const int64_t lo = std::min(p.C, p.K), hi = std::max(p.C, p.K), cols = p.N * p.OH * p.OW;
  return (lo >= 64 && hi >= 256 && cols >= 8192) || (p.C >= 1024 && p.K >= 256 && cols >= 392) ||
         (p.K >= 4 * p.C && p.K * cols * 4 > (int64_t{16} << 20));
}
inline bool prefers_gemm_avx2(const Conv2dShape& p) { return std::min(p.C, p.K) >= 256 && p.N * p.OH * p.OW >= 392; }

// One M x NVv tile: rows k0..k0+M of y[n], pixels p0..p0+nvalid (nvalid <= NVv * V::N), reduced
// over the input channels c0..c1; xt points at the tile's first pixel of channel c0 (channel planes
// P values apart in x, Py in y). `first`: the sums start at zero (else
// from the partial sums the previous channel block left in y); `last`: bias and the epilogue epi (a functor on a
// vector, e.g. MaybeRelu) are applied (else the partial sums are stored). A float32/64 partial sum stored and reloaded
// is exact, so the result is the same multiply-add chain over c = 0..C-1 for any blocking. `guard`: the last vector
// must not read past x's buffer on channel C-1 (masked load). `pf`: if not null, the same tile's pixels of the next
// strip (channel c0; pf - xt pixels further), prefetched one line per vector per channel.
template <class V, int M, int NVv, class Epi>
CNNFAST_FORCE_INLINE void tile(int64_t C, int64_t P, int64_t Py, const typename V::T* xt, const typename V::T* w,
                               const typename V::T* bias, typename V::T* yn, int64_t k0, int64_t p0, int64_t nvalid,
                               int64_t c0, int64_t c1, bool first, bool last, bool guard, const typename V::T* pf,
                               const Epi& epi) {
  using T = typename V::T;
  using R = typename V::R;
  R acc[M][NVv];
  if (first) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) acc[i][v] = V::zero();
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const T* yr = yn + (k0 + i) * Py + p0;
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) {
        const int64_t left = nvalid - v * V::N;
        acc[i][v] = left >= V::N ? V::load(yr + v * V::N) : V::load_part(yr + v * V::N, 0, int(left), T(0));
      }
    }
  }
  const T* wk = w + k0 * C;
  const bool guarded = guard && c1 == C;
  const int64_t cend = guarded ? C - 1 : c1;
  if (pf) {
    for (int64_t c = c0; c < cend; ++c) {
      R xv[NVv];
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) xv[v] = V::load(xt + (c - c0) * P + v * V::N);
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) __builtin_prefetch(pf + (c - c0) * P + v * V::N);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const R wv = V::set1(wk[i * C + c]);
#pragma GCC unroll 4
        for (int v = 0; v < NVv; ++v) acc[i][v] = V::fma(wv, xv[v], acc[i][v]);
      }
    }
  } else {
    for (int64_t c = c0; c < cend; ++c) {
      R xv[NVv];
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) xv[v] = V::load(xt + (c - c0) * P + v * V::N);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const R wv = V::set1(wk[i * C + c]);
#pragma GCC unroll 4
        for (int v = 0; v < NVv; ++v) acc[i][v] = V::fma(wv, xv[v], acc[i][v]);
      }
    }
  }
  if (guarded) {  // last channel: vectors reaching past the plane are masked
    const int64_t c = C - 1;
    R xv[NVv];
#pragma GCC unroll 4
    for (int v = 0; v < NVv; ++v) {
      const int64_t left = nvalid - v * V::N;
      xv[v] = left >= V::N ? V::load(xt + (c - c0) * P + v * V::N)
                           : V::load_part(xt + (c - c0) * P + v * V::N, 0, int(left), T(0));
    }
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const R wv = V::set1(wk[i * C + c]);
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) acc[i][v] = V::fma(wv, xv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    const R b = V::set1(last && bias ? bias[k0 + i] : T(0));
    T* yr = yn + (k0 + i) * Py + p0;
#pragma GCC unroll 4
    for (int v = 0; v < NVv; ++v) {
      R c = acc[i][v];
      if (last) {
        c = V::add(c, b);
        c = epi(c);
      }
      const int64_t left = nvalid - v * V::N;
      if (left >= V::N)
        V::store(yr + v * V::N, c);
      else
        V::store_n(yr + v * V::N, c, int(left));
    }
  }
}

// Tail pixels: a plane of P = nfull * V::N + r pixels with a short remainder r (7x7 floats on
// AVX-512: 48 + 1) would spend a whole masked vector column on r pixels (49 of 64 lanes used).
// Instead each tail pixel's outputs are dot products over the channels, vectorised along c: the
// channel column xcol[c] = x[c][p] (gathered once) against the contiguous weight rows, lane-wise
// partial sums over c = l (mod V::N) added up at the end by V::hsum's tree (a different order from
// the tiles' chain over c, but fixed by the shape). Rows k0..k1 of pixels pt..pt+nt of image xn.
constexpr int64_t kTailMaxValues = 8192;  // gathered tail columns, r x C values (32 KB of floats)
template <class V>
void tail_pixels(int64_t C, int64_t P, const typename V::T* xn, const typename V::T* w, const typename V::T* bias,
                 typename V::T* yn, int64_t k0, int64_t k1, int64_t pt, int nt, bool relu, const ConvAct& act) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int KB = 4;  // weight rows per step: KB x (up to 4) accumulators
  alignas(64) T xcol[kTailMaxValues];
  for (int j = 0; j < nt; ++j)
    for (int64_t c = 0; c < C; ++c) xcol[j * C + c] = xn[c * P + pt + j];
  const int64_t cfull = C / V::N * V::N;
  const int crem = int(C - cfull);
  auto rows = [&](auto kbc, auto ntc, int64_t k) {
    constexpr int MB = decltype(kbc)::value, NT = decltype(ntc)::value;
    R acc[MB][NT];
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NT; ++j) acc[i][j] = V::zero();
    const T* wk = w + k * C;
    for (int64_t c = 0; c < cfull; c += V::N) {
      R xv[NT];
#pragma GCC unroll 4
      for (int j = 0; j < NT; ++j) xv[j] = V::load(xcol + j * C + c);
#pragma GCC unroll 4
      for (int i = 0; i < MB; ++i) {
        const R wv = V::load(wk + i * C + c);
#pragma GCC unroll 4
        for (int j = 0; j < NT; ++j) acc[i][j] = V::fma(wv, xv[j], acc[i][j]);
      }
    }
    if (crem) {
      R xv[NT];
#pragma GCC unroll 4
      for (int j = 0; j < NT; ++j) xv[j] = V::load_part(xcol + j * C + cfull, 0, crem, T(0));
#pragma GCC unroll 4
      for (int i = 0; i < MB; ++i) {
        const R wv = V::load_part(wk + i * C + cfull, 0, crem, T(0));
#pragma GCC unroll 4
        for (int j = 0; j < NT; ++j) acc[i][j] = V::fma(wv, xv[j], acc[i][j]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NT; ++j) {
        T sum = V::hsum(acc[i][j]);  // a fixed tree over the lanes (a scalar chain was 16 dependent adds)
        sum += bias ? bias[k + i] : T(0);
        sum = act_scalar(relu, act, sum);  // NaN stays NaN, as in ref
        yn[(k + i) * P + pt + j] = sum;
      }
  };
  with_n<4>(nt, [&](auto ntc) {
    int64_t k = k0;
    for (; k + KB <= k1; k += KB) rows(std::integral_constant<int, KB>{}, ntc, k);
    for (; k < k1; ++k) rows(std::integral_constant<int, 1>{}, ntc, k);
  });
}

// Packing: a tile's rows of consecutive channels lie a plane apart in x, and on planes whose byte
// size is a multiple of a large power of two (16x16 floats: 1 KB, 32x32: 4 KB) they fall into a
// few L1 sets and evict each other before the next row block reads them. Then a unit with at least
// kPackMinRowBlocks row blocks first copies its strip's input, tile by tile, into a contiguous
// buffer [tile][channel][PB] (the tail vector zero-filled), which every row block reads instead.
// chosen because (AMD EPYC Zen 3, AVX2, 1 thread, process CPU time, CPU=1 T=1 bench/ab_builds.py
// pw64_32_n4,pw256_16_n1,pw96_16_n1,pw256_n1,pw144_24_56_n8,... fwd,bwd_input) packing ran 1.22-1.43x
// on 32x32 planes, 1.0-1.19x on 16x16, but 0.74x on 144 -> 24 at 56x56 (6 row blocks: the copy is
// not amortised; hence kPackMinRowBlocks) and 0.9-1.04x (noise level) on 7x7, 12x12, 14x14 and 28x28
// planes, whose rows spread over the L1 sets (at most kL1Ways lines per set) and are left in place.
constexpr int64_t kPackMinRowBlocks = 8;
constexpr int64_t kL1Sets = 64, kL1Ways = 8;  // 64-byte lines; Zen 3/4: 32 KB 8-way (Sapphire Rapids 48 KB 12-way)

// The most distinct 64-byte lines that one L1 set receives from `rows` rows of `row_bytes` bytes,
// `stride` bytes apart (the first at a line boundary).
inline int64_t max_lines_per_set(int64_t stride, int64_t row_bytes, int64_t rows) {
  int64_t cnt[kL1Sets] = {};
  int64_t most = 0, next = 0;  // next: the first line not yet counted (rows ascend)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t a = r * stride;
    for (int64_t l = std::max(next, a / 64); l <= (a + row_bytes - 1) / 64; ++l)
      most = std::max(most, ++cnt[l % kL1Sets]);
    next = std::max(next, (a + row_bytes - 1) / 64 + 1);
  }
  return most;
}

// Copies tiles t0..t1 (PB pixels each, the last one ending at Pm) of channels c0..c1 of image xn
// (planes P apart) to xs[(t - t0) * (c1 - c0) * PB + (c - c0) * PB + j], whole vectors; the last
// vector's lanes past the tile's valid pixels are zero (vectors wholly past them are never read).
// Reads nothing outside the tile's valid pixels.
template <class V>
void pack_strip(const typename V::T* xn, int64_t P, int64_t Pm, int64_t PB, int64_t c0, int64_t c1, int64_t t0,
                int64_t t1, typename V::T* xs) {
  using T = typename V::T;
  const int64_t cn = c1 - c0;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t p0 = t * PB, nvalid = std::min(PB, Pm - p0);
    const int64_t nfull = nvalid / V::N, rem = nvalid - nfull * V::N;
    T* dst = xs + (t - t0) * cn * PB;
    for (int64_t c = c0; c < c1; ++c) {
      const T* src = xn + c * P + p0;
      T* d = dst + (c - c0) * PB;
      for (int64_t v = 0; v < nfull; ++v) V::store(d + v * V::N, V::load(src + v * V::N));
      if (rem) V::store(d + nfull * V::N, V::load_part(src + nfull * V::N, 0, int(rem), T(0)));
    }
  }
}

// Bytes of the input a strip (all channels of a channel block x the strip's pixels) may take, so
// it stays in L1 while every output-channel block of the work unit reads it (Zen 4: 32 KB L1d,
// Sapphire Rapids: 48 KB; the weights stream past it).
constexpr int64_t kStripBytes = 20 * 1024;

// Work units are (image, output-channel chunk, pixel strip), strips fastest. A strip is a run of
// whole tiles (NV vectors each; the plane's tail vector may be partial) and, per channel block,
// holds at most kStripBytes of the input, so the unit's MR-row blocks all read it from L1 and
// the input is read from memory once per chunk; the next strip is prefetched during the first
// row block. Channel blocks (only when even one tile's NV vectors of all C channels overflow
// ChannelBlockBytes: C > 170 on AVX-512, C > 213 on AVX2) leave partial sums in y. Chunks of
// output channels split the work when the image has too few strips for the threads (batch 1,
// small planes).
template <class V, int MR, int NV, int64_t ChannelBlockBytes = kStripBytes>
bool fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
         typename V::T* y, bool relu, bool (*prefers_gemm)(const Conv2dShape&)) {
  if (!applies(p) || (!relax_heuristics() && prefers_gemm(p))) return false;
  const int64_t N = p.N, C = p.C, K = p.K, P = p.OH * p.OW;
  if (N == 0 || K == 0 || P == 0) return true;
  if (C == 0) return false;  // bias-only output: leave to the general path
  // A plane narrower than one vector: a tail load of channel c would run past channel c + 1 (and,
  // near the end, past the input buffer). Leave such planes (1x1 heads, SE blocks) to the GEMM.
  if (P < V::N) return false;
  using T = typename V::T;
  constexpr int64_t TB = NV * V::N * int64_t(sizeof(T));  // bytes of one tile's pixels of a channel
  // A remainder of at most an eighth of a vector (a quarter from 192 channels, where the dot
  // products' lane sums are amortised) goes to tail_pixels, if its columns fit kTailMaxValues.
  // chosen because (Xeon, AVX-512, 1 thread, CPU time, bench/pointwise_layers.py) it ran the 7x7
  // layers (48 + 1 floats) 1.15-1.23x faster than a masked vector, the 14x14 ones (192 + 4) 1.03-
  // 1.06x faster from C = 192 up, and 0.91-0.97x at C = 64-96.
  const int64_t rtail = P % V::N;
  const int64_t ntail =
      rtail > 0 && (8 * rtail <= V::N || (4 * rtail <= V::N && C >= 192)) && rtail * C <= kTailMaxValues ? rtail : 0;
  const int64_t Pm = P - ntail;  // pixels of the register tiles (whole vectors if ntail > 0)
  const int64_t nvec = ceil_div(Pm, V::N);
  // Channel blocks: as few as keep one tile width of them within ChannelBlockBytes (a larger
  // L1 than Zen 4's 32 KB holds more: AVX-512 passes 32 KB, see conv2d_pointwise_avx512.cpp).
  const int64_t ncb = ceil_div(C * TB, ChannelBlockBytes), cb = ceil_div(C, ncb);
  // Tiles: pixel blocks of whole vectors, balanced (49 floats on AVX-512: 4 vectors, 2 + 2 with
  // NV = 3, not 3 + 1, whose last tile would do a full tile's loads and broadcasts for one pixel).
  const int64_t ntile = ceil_div(nvec, NV);
  const int64_t PB = ceil_div(nvec, ntile) * V::N;  // pixels per tile, at most NV vectors
  const int64_t ntp = ceil_div(Pm, PB);             // tiles per plane
  // Strips: as many tiles as fit kStripBytes per channel block.
  const int64_t tps = std::clamp<int64_t>(kStripBytes / (cb * PB * int64_t(sizeof(T))), 1, ntp);
  const int64_t nstrip = ceil_div(ntp, tps);
  const int64_t nkb = ceil_div(K, MR);
  // Output-channel chunks: enough units for 4 per thread, else one (the input read once).
  const int64_t want = 4 * int64_t(max_threads());
  // Chunk kc holds row blocks [kc * nkb / nkc, (kc + 1) * nkb / nkc): sizes differ by one at most
  // (960 -> 160 on 7x7: 20 blocks in 8 chunks of 2-3, 10 per thread of 2, not 3+3+3+3 vs 3+3+2).
  const int64_t nkc = N * nstrip >= want ? 1 : std::min(nkb, ceil_div(want, N * nstrip));
  const int64_t units = N * nkc * nstrip;
  const bool pack = max_lines_per_set(P * int64_t(sizeof(T)), PB * int64_t(sizeof(T)), cb) > kL1Ways;
  // bias, then ReLU and the fused activation, at the store: SiLU (float32) as an epilogue type of
  // its own, so that the other activations' tiles are the same code as without it
  auto run = [&](const auto& epi) {
    parallel_for(units, ceil_div(nkb, nkc) * MR * tps * PB * C, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t s = u % nstrip, kc = (u / nstrip) % nkc, n = u / (nstrip * nkc);
        const int64_t t0 = s * tps, t1 = std::min(ntp, t0 + tps);
        const int64_t kb0 = kc * nkb / nkc, kb1 = (kc + 1) * nkb / nkc;
        const auto* xn = x + n * C * P;
        auto* yn = y + n * K * P;
        // The next unit's strip (same chunk), if this thread computes it next and it exists.
        const bool pf_next = u + 1 < e && s + 1 < nstrip;
        // The strip's input, packed tile by tile into this thread's scratch (see kPackMinRowBlocks);
        // unpacked if the scratch cannot be allocated.
        T* xs = pack && kb1 - kb0 >= kPackMinRowBlocks ? thread_scratch_of<T>(static_cast<size_t>(cb * (t1 - t0) * PB))
                                                       : nullptr;
        for (int64_t c0 = 0; c0 < C; c0 += cb) {
          const int64_t c1 = std::min(C, c0 + cb), cn = c1 - c0;
          if (xs) pack_strip<V>(xn, P, Pm, PB, c0, c1, t0, t1, xs);
          for (int64_t kb = kb0; kb < kb1; ++kb) {
            const int64_t k0 = kb * MR;
            const int mrows = int(K - k0 < MR ? K - k0 : MR);
            for (int64_t t = t0; t < t1; ++t) {
              const int64_t p0 = t * PB;
              const int64_t nvalid = Pm - p0 < PB ? Pm - p0 : PB;
              const int nv = int(ceil_div(nvalid, V::N));
              // Reading nv whole vectors past the plane's end stays inside x except on the last image.
              const bool guard = n == N - 1 && p0 + nv * V::N > P;
              // Prefetch the next strip's tile at the same place (its first row block's input),
              // during this strip's first row block, if that tile lies inside the plane.
              const int64_t pnext = p0 + tps * PB;
              const T* pf = !xs && pf_next && kb == kb0 && pnext + NV * V::N <= Pm ? xn + c0 * P + pnext : nullptr;
              with_n<MR>(mrows, [&](auto mc) {
                constexpr int M = decltype(mc)::value;
                with_n<NV>(nv, [&](auto vc) {
                  constexpr int NVv = decltype(vc)::value;
                  tile<V, M, NVv>(C, xs ? PB : P, P, xs ? xs + (t - t0) * cn * PB : xn + c0 * P + p0, w, bias, yn, k0,
                                  p0, nvalid, c0, c1, c0 == 0, c1 == C, guard && !xs, pf, epi);
                });
              });
            }
          }
        }
        if (ntail && s == nstrip - 1)
          tail_pixels<V>(C, P, xn, w, bias, yn, kb0 * MR, std::min(K, kb1 * MR), Pm, int(ntail), relu, p.act);
      }
    });
  };
  if constexpr (std::is_same_v<T, float>) {
    if (p.act.kind == kActSilu) {
      run(SiluEpi<V>{relu});
      p.act_done = true;
      return true;
    }
  }
  run(ActEpi<V>(relu, p.act));
  p.act_done = true;  // (the epilogue and the tail pixels applied p.act)
  return true;
}

// grad_input of a plain 1x1 conv: gx[c][p] = sum_k w[k][c] * gy[k][p] is the forward of the
// K -> C 1x1 conv of grad_output with the transposed weights (a C x K copy in this thread's scratch,
// written by the GEMM path's rotate_transpose_weights), so the same kernel and the same GEMM
// preference (asked of the swapped shape) apply. `fwd_kernel` is the ISA's forward entry (its
// register tile choice included). Planes under kBwdInputMinPlane pixels stay on the GEMM path
// (skipped while relax_heuristics()): chosen because (AMD EPYC Zen 3, AVX2, 1 thread, process CPU
// time, CPU=1 T=1 bench/ab_builds.py pw..., against the GEMM path) it ran 1.06-1.40x on 28x28 and
// larger planes (pw16_96_112_n1/_n8, pw32_16_112_n8, pw24_144_56_n8, pw32_192_28_n1; r50_64to256
// 0.99x) but 0.44-0.79x on 7x7 and 14x14 planes at batch 1 (pw512_7_n1, pw256_n1, pw960_7_n1,
// ...), where the weight transpose and the short rows cost more than the GEMM's packing.
constexpr int64_t kBwdInputMinPlane = 28 * 28;
template <class V, class Fwd>
bool bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx,
               const Fwd& fwd_kernel) {
  using T = typename V::T;
  if (!applies(p) || (!relax_heuristics() && p.H * p.W < kBwdInputMinPlane)) return false;
  Conv2dShape q = no_act(p);
  q.C = p.K, q.K = p.C;
  T* wt = thread_scratch_of<T, 1>(static_cast<size_t>(p.K * p.C));
  if (!wt) return false;
  convgemm::rotate_transpose_weights(p, w, wt);  // (a 1x1 filter: the rotation is the identity)
  return fwd_kernel(q, gy, wt, static_cast<const T*>(nullptr), gx, false);
}

}  // namespace pointwise
}  // namespace
}  // namespace cnnfast
