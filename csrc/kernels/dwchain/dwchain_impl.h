// The depthwise-separable chain (dwchain.h) written once for any vector type V of common/simd.h and
// instantiated in dwchain_avx2.cpp / dwchain_avx512.cpp.
//
// A work unit is a run of output rows of one image. Its depthwise stage needs, for each block of RB
// output rows, (RB - 1) * stride + R input rows of the E-channel intermediate; those rows live in
// a ring of `slots` rows per channel (a multiple of the G = RB * stride rows each block advances),
// filled G rows at a time by the expand stage: a 1x1 conv over G whole input rows, which are
// contiguous pixels of every channel plane (pointwise::tile with a ring-sized output stride).
// Stride 2 splits each ring row into even and odd padded phases as it is filled, so the depthwise
// blocks (direct::dw_rows_block, the layer-wise kernel's register blocks) do only whole loads;
// stride 1 reads the ring rows in place with masked loads at the edges. The block's depthwise
// output (E x RB rows) goes to a small buffer, which the project stage (1x1) turns into RB output
// rows of y. The E-channel tensors never leave the caches: per image they cost a ring of E x slots
// rows and E x RB output rows instead of two passes over E x H x W values in memory. Rows of the
// ring are expanded once (a unit recomputes nothing but the R - stride rows above its first row).
//
// Activations run in the register epilogues. Every output is a sum in a fixed order, whatever the thread count.
#pragma once
#include <cstring>
#include <limits>
#include <vector>

#include "common/parallel.h"
#include "common/scratch.h"
#include "common/simd.h"
#include "kernels/conv2d/conv2d_dw_rows.h"
#include "kernels/conv2d/conv2d_epilogue.h"
#include "kernels/conv2d/conv2d_pointwise.h"
#include "kernels/dwchain/dwchain.h"
#include "kernels/pointwise/pointwise_impl.h"

namespace cnnfast {
namespace dwchain {
namespace {

using direct::ceil_div;
using direct::imax;
using direct::imin;
using direct::round_up;

// A stage's activation as a register-tile epilogue (conv2d_epilogue.h's functor, no ReLU before
// it; a, b, lo, hi broadcast once). NaN propagates as in ref.
// Calls whose input and output together exceed kChainPrefetchMinBytes (more than the L2 caches of
// two cores hold: their rows come from L3 or memory) prefetch in software while the depthwise
// stage runs: the input rows of the next block's fill, and the output rows of this block where a
// channel's run of them is at most kChainPrefetchMaxRun bytes (longer runs the hardware prefetchers
// follow: with it the 16 -> 32 chain on 112 x 112, 1.8 KB runs, ran 0.95x on AVX-512 and 0.85x on
// AVX2). chosen because (Xeon, 1 thread, CPU=1 T=1 bench/ab_builds.py lc112,lc56,lc112s2,lc28,
// mb112,mb56 chain base@avx512,new@avx512,base@avx2,new@avx2 7) PP-LCNet's chains at batch 16
// (13-38 MB): 32 -> 64 stride 2 on 112 x 112 1.50x (AVX-512) / 1.42x (AVX2), 64 -> 64 on 56 x 56
// 1.13x / 1.04x, the 112 x 112 and 28 x 28 ones 0.97x-1.02x; MobileNetV2's at batch 1 (0.2-1.2 MB,
// in cache) take none of it.
constexpr int64_t kChainPrefetchMinBytes = int64_t{4} << 20, kChainPrefetchMaxRun = 1024;
template <class V>
struct ChainEpi : ActEpi<V> {
  explicit ChainEpi(const ChainAct& c) : ActEpi<V>(false, c) {}
};

// y[k][i] = epi(sum_c w[k][c] * x[c][i] + bias[k]) for k < K, i < P; channel planes sx apart in x
// and sy in y. guard: x ends at channel C - 1's pixel P (the last vector is masked). Per pixel tile
// (its C x NV vectors stay in L1), every block of MR output channels.
template <class V, int MR, int NV>
void pw_run(int64_t C, int64_t K, const typename V::T* x, int64_t sx, const typename V::T* w, const typename V::T* bias,
            typename V::T* y, int64_t sy, int64_t P, const ChainEpi<V>& epi, bool guard) {
  constexpr int64_t PB = NV * V::N;
  const int64_t kfull = K / MR * MR;
  for (int64_t p0 = 0; p0 < P; p0 += PB) {
    const int64_t nvalid = imin(PB, P - p0);
    const int nv = static_cast<int>(ceil_div(nvalid, V::N));
    const bool g = guard && p0 + nv * V::N > P;
    with_n<NV>(nv, [&](auto vc) {
      constexpr int NVv = decltype(vc)::value;
      for (int64_t k0 = 0; k0 < kfull; k0 += MR)
        pointwise::tile<V, MR, NVv>(C, sx, sy, x + p0, w, bias, y, k0, p0, nvalid, 0, C, true, true, g, nullptr, epi);
      if (kfull < K)
        with_n<MR>(static_cast<int>(K - kfull), [&](auto mc) {
          pointwise::tile<V, decltype(mc)::value, NVv>(C, sx, sy, x + p0, w, bias, y, kfull, p0, nvalid, 0, C, true,
                                                       true, g, nullptr, epi);
        });
    });
  }
}

// A stride-1 depthwise block whose zero rows (bits of zrows) are skipped: the one block of a plane
// of at most RB rows (the rapidocr text classifier's 5x5 chains on 2-3 rows of 96 read 6 of 8 and 5
// of 8 rows as zeros). Out of line, so that the other chains keep their code as it was (inlined,
// and applied to the top and bottom blocks of every plane, MobileNetV2's chains ran 0.91x-0.95x).
template <class V, int R, int RB, int CV>
[[gnu::noinline]] void dw_block_zero_rows(const typename V::T* const* rows, const typename V::R* wv, typename V::R b,
                                          const typename V::LM* msk, const ChainEpi<V>& epi, typename V::T* yr,
                                          int64_t OW, int64_t rb, int64_t cols0, uint32_t zrows) {
  direct::dw_rows_block<V, R, R, RB, CV, false>(rows, 0, wv, b, msk, epi, yr, OW, rb, cols0, zrows);
}

// R x R depthwise filter, RB output rows per block, CV column vectors per stride-1 register block;
// MR x NV register tiles for the 1x1 stages.
template <class V, int R, int RB, int CV, int MR, int NV, bool s1k>
bool chain(const DwChain& p, const typename V::T* x, const typename V::T* we, const typename V::T* be,
           const typename V::T* wd, const typename V::T* bd, const typename V::T* wp, const typename V::T* bp,
           typename V::T* y) {
  using T = typename V::T;
  using RV = typename V::R;
  constexpr int N = V::N;
  const int64_t s = s1k ? 1 : 2, H = p.H, W = p.W, C = p.C, E = p.E, K = p.K, OH = p.OH, OW = p.OW, pad = p.pad;
  const int64_t nvec = ceil_div(OW, N);
  const int64_t span = (RB - 1) * s + R, G = RB * s;  // rows under a block; rows a block advances
  const int64_t slots = round_up(span + G - 1, G);    // ring rows: a block's rows stay while G more arrive
  const int64_t plen = s == 2 ? round_up(imax(nvec * N + R, ceil_div(W + 2 * pad, 2)), N) : 0;  // one phase
  const bool ring_used = p.expand || s == 2;  // stride 1 without expand reads x in place
  const int64_t rowlen = s == 1 ? W : 2 * plen;
  // Per-thread scratch (elements), 64-byte aligned parts with room for a vector read past each:
  // [ring E x slots x rowlen][expanded rows before the phase split, E x G x W][depthwise rows, E x RB x OW]
  // [zero row]
  const int64_t pad_el = round_up(4 * N, 64 / static_cast<int64_t>(sizeof(T)));
  const int64_t n_ring = ring_used ? round_up(E * slots * rowlen, N) + pad_el : 0;
  const int64_t n_tmp = p.expand && s == 2 ? round_up(E * G * W, N) + pad_el : 0;
  const int64_t n_dw = p.project ? round_up(E * RB * OW, N) + pad_el : 0;
  const int64_t n_zero = round_up(imax(2 * plen, pad + round_up(OW, N) + R + N), N) + pad_el;
  const int64_t per_thread = pad_el + n_ring + n_tmp + n_dw + n_zero;
  const int64_t nblk = ceil_div(OH, RB);
  // (dwchain.h's block rows; stride 1 onto at most 2 rows: blocks of 2, the plane's one block)
  static_assert(RB == (s1k ? kDwChainRowsS1 : kDwChainRowsS2) || (s1k && RB == 2), "dwchain.h's block rows");
  const int64_t rc = dwchain_row_chunks(p, max_threads());  // row chunks per image
  const int64_t units = p.N * rc;
  const int64_t work = E * (C * H * W + R * R * OH * OW) + K * E * OH * OW;
  const int nt = plan_threads(units, p.N * work);
  // Stride 1: per column vector j and tap column t, the lanes inside the row (input columns
  // j * N - pad + t + lane in [0, W)); full1[j]: all of them, for every tap.
  using LM = typename V::LM;
  LM* msk1 = static_cast<LM*>(aligned_malloc(64, static_cast<size_t>(imax(1, nvec * R)) * sizeof(LM)));
  std::vector<char> full1(s1k ? static_cast<size_t>(nvec) : 0);
  if (!msk1) return false;
  for (int64_t j = 0; s1k && j < nvec; ++j) {
    bool full = true;
    for (int t = 0; t < R; ++t) {
      const int64_t c0 = j * N + t - pad;
      const int64_t lo = imin(N, imax(0, -c0)), hi = imax(lo, imin(N, W - c0));
      msk1[j * R + t] = V::lmask(static_cast<int>(lo), static_cast<int>(hi));
      full = full && lo == 0 && hi == N;
    }
    full1[j] = full;
  }
  std::atomic<bool> failed{false};
  const ChainEpi<V> eepi(p.ea), depi(p.da), pepi(p.pa);
  const bool prefetch = p.N * (C * H * W + K * OH * OW) * int64_t(sizeof(T)) > kChainPrefetchMinBytes;
  run_parallel(nt, units, [&](int64_t ub, int64_t ue, int) {
    T* buf = thread_scratch_of<T>(static_cast<size_t>(per_thread));
    if (!buf) {
      failed.store(true, std::memory_order_relaxed);
      return;
    }
    T* ring = buf + pad_el;
    T* tmp = ring + n_ring;
    T* dwb = tmp + n_tmp;
    T* zbuf = dwb + n_dw;
    std::memset(zbuf, 0, static_cast<size_t>(n_zero) * sizeof(T));
    const T* zrow1 = zbuf + pad;  // stride 1: addressable from column -pad
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t n = u / rc, chunk = u % rc;
      const int64_t oa = chunk * nblk / rc * RB, ob = imin(OH, (chunk + 1) * nblk / rc * RB);
      if (oa >= ob) continue;
      const T* xn = x + n * C * H * W;
      T* yn = y + n * K * OH * OW;
      if (s == 2) std::memset(ring, 0, static_cast<size_t>(n_ring) * sizeof(T));  // phase margins stay zero
      const int64_t base = imax(0, oa * s - pad);                   // first input row of the unit; ring slot of row ih:
      auto slot = [&](int64_t ih) { return (ih - base) % slots; };  // groups never wrap (slots % G == 0)
      int64_t next = base;                                          // next input row to fill
      auto fill = [&](int64_t g0, int64_t g1) {                     // ring rows [g0, g1), g1 - g0 <= G
        const int64_t rows = g1 - g0;
        if (s == 1) {  // expand straight into the ring
          T* dst = ring + slot(g0) * W;
          pw_run<V, MR, NV>(C, E, xn + g0 * W, H * W, we, be, dst, slots * W, rows * W, eepi, n == p.N - 1 && g1 == H);
          return;
        }
        const T* src = xn;  // stride 2: rows of each channel (expanded or the input), then phase-split
        int64_t cs = H * W;
        if (p.expand) {
          pw_run<V, MR, NV>(C, E, xn + g0 * W, H * W, we, be, tmp, G * W, rows * W, eepi, n == p.N - 1 && g1 == H);
          src = tmp - g0 * W, cs = G * W;
        }
        for (int64_t e = 0; e < E; ++e)
          for (int64_t ih = g0; ih < g1; ++ih) {
            T* d = ring + (e * slots + slot(ih)) * 2 * plen;
            direct::deinterleave_row<V>(d, d + plen, src + e * cs + ih * W, W, pad, plen);
          }
      };
      for (int64_t oh = oa; oh < ob; oh += RB) {
        const int64_t rb = imin(RB, ob - oh);
        const int64_t hi = imin(H, (oh + rb - 1) * s - pad + R);  // input rows [.., hi) under the block
        if (ring_used)
          for (; next < hi; next += G) fill(next, imin(H, next + G));
        // The block's input rows, as offsets from the channel's ring (or input plane) start; -1:
        // outside the image (the zero row). Stride 1 reads RB + R - 1 rows, stride 2 (RB - 1) * 2 + R.
        constexpr int NR = (RB - 1) * (s1k ? 1 : 2) + R;
        int64_t roff[NR];
        // Planes of at most RB rows (one block, most of its rows padding): the zero rows' taps are
        // skipped (dw_block_zero_rows).
        uint32_t zrows = 0;
        for (int i = 0; i < NR; ++i) {
          const int64_t ih = oh * s - pad + i;
          roff[i] = ih < 0 || ih >= hi ? -1 : (ring_used ? slot(ih) * rowlen : ih * W);
          if (roff[i] < 0 && OH <= RB) zrows |= 1u << i;
        }
        // While the depthwise stage runs, channel by channel: the input rows the next block's
        // fill reads (into L2) and the output rows this block's project stage writes.
        const int64_t nx0 = next, nx1 = imin(H, next + G);
        for (int64_t e = 0; e < E; ++e) {
          if (prefetch && ring_used && nx0 < nx1)
            for (int64_t c = e * C / E; c < (e + 1) * C / E; ++c)
              direct::prefetch_bytes<0>(xn + c * H * W + nx0 * W, (nx1 - nx0) * W * int64_t(sizeof(T)));
          if (prefetch && p.project && rb * OW * int64_t(sizeof(T)) <= kChainPrefetchMaxRun)
            for (int64_t k = e * K / E; k < (e + 1) * K / E; ++k)
              direct::prefetch_bytes<1>(yn + k * OH * OW + oh * OW, rb * OW * int64_t(sizeof(T)));
          RV wv[R * R];
          for (int t = 0; t < R * R; ++t) wv[t] = V::set1(wd[e * R * R + t]);
          const RV b = V::set1(bd ? bd[e] : T(0));
          T* out = p.project ? dwb + e * RB * OW : yn + e * OH * OW + oh * OW;  // output row oh
          const T* src = ring_used ? ring + e * slots * rowlen : xn + e * H * W;
          const T* rows[NR];
          if constexpr (s1k) {
            for (int i = 0; i < NR; ++i) rows[i] = (roff[i] < 0 ? zrow1 : src + roff[i]) - pad;
            // column vectors [j, j + cv): whole loads where every tap's lanes lie inside the row
            auto cols = [&](int64_t j, auto cvc) {
              constexpr int cv = decltype(cvc)::value;
              const T* rj[NR];
              for (int i = 0; i < NR; ++i) rj[i] = rows[i] + j * N;
              bool full = true;
              for (int c = 0; c < cv; ++c) full = full && full1[j + c];
              // (a block with zero rows has the skipping instance; the others none of its tests)
              if (full && zrows == 0)
                direct::dw_rows_block<V, R, R, RB, cv, true>(rj, 0, wv, b, &msk1[j * R], depi, out + j * N, OW, rb,
                                                             OW - j * N);
              else if (zrows == 0)
                direct::dw_rows_block<V, R, R, RB, cv, false>(rj, 0, wv, b, &msk1[j * R], depi, out + j * N, OW, rb,
                                                              OW - j * N);
              else
                dw_block_zero_rows<V, R, RB, cv>(rj, wv, b, &msk1[j * R], depi, out + j * N, OW, rb, OW - j * N, zrows);
            };
            int64_t j = 0;
            for (; j + CV <= nvec; j += CV) cols(j, std::integral_constant<int, CV>{});
            for (; j < nvec; ++j) cols(j, std::integral_constant<int, 1>{});
          } else {
            for (int i = 0; i < NR; ++i) rows[i] = roff[i] < 0 ? zbuf : src + roff[i];
            direct::dw_rows_s2_rowblock<V, R, R, RB, CV>(rows, plen, wv, b, depi, out, OW, rb, nvec);
          }
        }
        if (p.project) {
          T* yo = yn + oh * OW;
          pw_run<V, MR, NV>(E, K, dwb, RB * OW, wp, bp, yo, OH * OW, rb * OW, pepi, false);
        }
      }
    }
  });
  aligned_free(msk1);
  return !failed.load(std::memory_order_relaxed);
}

// The kernels' domain: square 3x3 / 5x5 / 7x7 depthwise filters, stride 1 or 2, padding below the
// filter size (rows narrower than a vector too: the masked loads keep to the row, the stores to OW).
template <class V>
bool domain(const DwChain& p) {
  return (p.R == 3 || p.R == 5 || p.R == 7) && (p.stride == 1 || p.stride == 2) && p.pad >= 0 && p.pad < p.R &&
         p.OW >= 1 && p.OH >= 1 && p.C >= 1 && p.E >= 1 && p.K >= 1;
}

template <class V, int RB1, int CV3, int RB2, int MR, int NV>
bool fwd(const DwChain& p, const typename V::T* x, const typename V::T* we, const typename V::T* be,
         const typename V::T* wd, const typename V::T* bd, const typename V::T* wp, const typename V::T* bp,
         typename V::T* y) {
  if (!domain<V>(p)) return false;
  if (p.N == 0) return true;
  auto run = [&](auto rc, auto rbc, auto cvc, auto s1c) {
    return chain<V, decltype(rc)::value, decltype(rbc)::value, decltype(cvc)::value, MR, NV, decltype(s1c)::value>(
        p, x, we, be, wd, bd, wp, bp, y);
  };
  using I1 = std::integral_constant<int, 1>;
  using S1 = std::true_type;
  using S2 = std::false_type;
  constexpr std::integral_constant<int, RB1> rb1{};
  constexpr std::integral_constant<int, RB2> rb2{};
  const bool s1 = p.stride == 1;
  if (s1 && p.OH <= 2) {  // a plane of 1-2 rows: one block of 2 rows (blocks of RB1 compute RB1 rows)
    constexpr std::integral_constant<int, 2> two{};
    switch (p.R) {
      case 3: return run(std::integral_constant<int, 3>{}, two, std::integral_constant<int, CV3>{}, S1{});
      case 5: return run(std::integral_constant<int, 5>{}, two, I1{}, S1{});
      default: return run(std::integral_constant<int, 7>{}, two, I1{}, S1{});
    }
  }
  switch (p.R) {
    case 3:
      return s1 ? run(std::integral_constant<int, 3>{}, rb1, std::integral_constant<int, CV3>{}, S1{})
                : run(std::integral_constant<int, 3>{}, rb2, std::integral_constant<int, CV3>{}, S2{});
    case 5:
      return s1 ? run(std::integral_constant<int, 5>{}, rb1, I1{}, S1{})
                : run(std::integral_constant<int, 5>{}, rb2, I1{}, S2{});
    default:
      return s1 ? run(std::integral_constant<int, 7>{}, rb1, I1{}, S1{})
                : run(std::integral_constant<int, 7>{}, rb2, I1{}, S2{});
  }
}

}  // namespace
}  // namespace dwchain
}  // namespace cnnfast
