// Depthwise forward at stride 1 and 2 on planes with rows of at least one vector, reading the input
// planes in place (no padded copy): a block of RB output rows x CV column vectors of one plane
// lives in registers; every input row under the block is loaded once per filter column s (masked
// at the left and right image edges, so the padding costs nothing) and feeds each of the up to R
// output rows it reaches. A 3x3 filter costs (RB + 2) * 3 loads per RB * 9 FMAs (0.5 loads per
// FMA at RB = 4) where the plane engine (conv2d_plane.h) loads once per FMA, and its loads at
// column offsets -1 / +1 split cache lines on AVX-512, so it ran at a third of the FMA rate.
// The filter taps stay in registers (9 or 25 of AVX-512's 32; AVX2 keeps what fits).
// Entry points: dw_rows_fwd and dw_rows_bwd_input (tried by dw_fwd_any / dw_bwd_input_any after the
// channels-as-lanes kernels).
#pragma once
#include <atomic>
#include <cstring>
#include <type_traits>

#include "common/portable.h"
#include "common/scratch.h"
#include "kernels/conv2d/conv2d_direct_common.h"
#include "kernels/conv2d/conv2d_epilogue.h"

namespace cnnfast {
namespace direct {
namespace {

// One block: rows [oh0, oh0 + rb) (rb <= RB) x column vectors [j0, j0 + CV) of one output plane.
// Stride 1 (SH == 1): rows[i] = input row oh0 - ph + i at column j0*N - pw, tap s at +s. Stride 2:
// rows[i] = the phase-split copy of input row 2*oh0 - ph + i (even padded columns, the odd ones
// `odd` elements further) at column j0*N, tap s in phase s & 1 at +(s >> 1), all loads whole.
// Stride 1 (a zero row where that row is outside the
// image, so the block has no branches and its accumulators stay in registers); msk[cv * S + s]
// masks the loads of the edge blocks (Full: every load of the block lies inside its row). zrows:
// bit i set where rows[i] is that zero row, whose taps are skipped (a plane of a few rows is mostly
// padding rows: the rapidocr text classifier's 5x5 on 2 rows reads 6 rows of 8 as zeros).
template <class V, int R, int S, int RB, int CV, bool Full, int SH = 1, class Epi>
CNNFAST_FORCE_INLINE void dw_rows_block(const typename V::T* const* rows, int64_t odd, const typename V::R* wv,
                                        typename V::R b, const typename V::LM* msk, const Epi& epi, typename V::T* yr,
                                        int64_t OW, int64_t rb, int64_t cols0, uint32_t zrows = 0) {
  using R_ = typename V::R;
  constexpr int N = V::N;
  R_ acc[RB][CV];
#pragma GCC unroll 8
  for (int rr = 0; rr < RB; ++rr)
#pragma GCC unroll 4
    for (int cv = 0; cv < CV; ++cv) acc[rr][cv] = b;
#pragma GCC unroll 16
  for (int i = 0; i < (RB - 1) * SH + R; ++i) {
    if (zrows >> i & 1u) continue;
    const typename V::T* row = rows[i];
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const typename V::T* xs = row + (SH == 1 ? s : (s & 1) * odd + (s >> 1));
#pragma GCC unroll 4
      for (int cv = 0; cv < CV; ++cv) {
        const R_ xv = Full ? V::load(xs + cv * N) : V::loadz(xs + cv * N, msk[cv * S + s]);
#pragma GCC unroll 8
        for (int rr = 0; rr < RB; ++rr) {
          const int r = i - SH * rr;
          if (r >= 0 && r < R) acc[rr][cv] = V::fma(wv[r * S + s], xv, acc[rr][cv]);
        }
      }
    }
  }
  for (int64_t rr = 0; rr < rb; ++rr)
#pragma GCC unroll 4
    for (int cv = 0; cv < CV; ++cv) {
      const int64_t cols = cols0 - cv * N;  // output columns left from this vector on
      if (cols <= 0) break;
      const R_ a = epi(acc[rr][cv]);
      typename V::T* d = yr + rr * OW + cv * N;
      if (cols >= N)
        V::store(d, a);
      else
        V::store_n(d, a, static_cast<int>(cols));
    }
}

// Column vectors [j0, j0 + CV) of rows [oh0, oh1) of one plane; row_at(ih) is input row ih (0 <= ih
// < H), zrow a zero row for the rows outside the image, addressable from column -pw to
// round_up(OW, N) + S + N; y0 is output row oh0 (rows OW apart).
template <class V, int R, int S, int RB, int CV, class RowAt, class Epi>
CNNFAST_FORCE_INLINE void dw_rows_strip(const Conv2dShape& p, const RowAt& row_at, const typename V::T* zrow,
                                        const typename V::R* wv, typename V::R b, const Epi& epi, typename V::T* y0,
                                        int64_t oh0, int64_t oh1, int64_t j0) {
  constexpr int N = V::N;
  typename V::LM msk[CV * S];
  bool full = true;
  for (int cv = 0; cv < CV; ++cv)
    for (int s = 0; s < S; ++s) {
      const int64_t c0 = (j0 + cv) * N + s - p.pw;  // input column of lane 0
      const int64_t lo = imin(N, imax(0, -c0)), hi = imax(lo, imin(N, p.W - c0));
      msk[cv * S + s] = V::lmask(static_cast<int>(lo), static_cast<int>(hi));
      full = full && lo == 0 && hi == N;
    }
  const int64_t col0 = j0 * N - p.pw, cols0 = p.OW - j0 * N;
  const typename V::T* rows[RB + R - 1];
  for (int64_t oh = oh0; oh < oh1; oh += RB) {
    const int64_t rb = imin(RB, oh1 - oh);
    for (int i = 0; i < RB + R - 1; ++i) {
      const int64_t ih = oh - p.ph + i;
      rows[i] = (ih >= 0 && ih < p.H ? row_at(ih) : zrow) + col0;
    }
    typename V::T* yr = y0 + (oh - oh0) * p.OW + j0 * N;
    if (full)
      dw_rows_block<V, R, S, RB, CV, true>(rows, 0, wv, b, msk, epi, yr, p.OW, rb, cols0);
    else
      dw_rows_block<V, R, S, RB, CV, false>(rows, 0, wv, b, msk, epi, yr, p.OW, rb, cols0);
  }
}

// Output rows [oh0, oh1) of row chunk `chunk` of `rc`: chunk boundaries on multiples of RB rows
// (nblk = ceil(OH / RB) blocks).
inline void dw_rows_chunk(int64_t chunk, int64_t rc, int64_t nblk, int64_t RB, int64_t OH, int64_t& oh0, int64_t& oh1) {
  oh0 = chunk * nblk / rc * RB;
  oh1 = imin(OH, (chunk + 1) * nblk / rc * RB);
}

template <class V, int R, int S, int RB, int CV>
bool dw_rows_fwd_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                      typename V::T* y, bool relu) {
  using T = typename V::T;
  constexpr int N = V::N;
  const int64_t M = p.K / p.C, planes = p.N * p.K, nvec = ceil_div(p.OW, N);
  const int64_t nblk = ceil_div(p.OH, RB), rc = row_chunks(planes, nblk), units = planes * rc;
  const int nt = plan_threads(units, planes * p.OH * p.OW * R * S);
  // The zero row: read from column -pw to round_up(OW, N) + S (masked lanes are never read).
  const int64_t zlen = p.pw + round_up(p.OW, N) + S + N;
  T* zbuf = static_cast<T*>(std::calloc(static_cast<size_t>(zlen), sizeof(T)));
  if (!zbuf) return false;
  const T* zrow = zbuf + p.pw;
  const ActEpi<V> act(false, p.act);
  run_parallel(nt, units, [&](int64_t ub, int64_t ue, int) {
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t plane = u / rc, chunk = u % rc;
      const int64_t n = plane / p.K, k = plane % p.K;
      int64_t oh0, oh1;
      dw_rows_chunk(chunk, rc, nblk, RB, p.OH, oh0, oh1);
      const T* xp = x + (n * p.C + k / M) * p.H * p.W;
      T* yp = y + plane * p.OH * p.OW;
      typename V::R wv[R * S];
      for (int t = 0; t < R * S; ++t) wv[t] = V::set1(w[k * R * S + t]);
      const typename V::R b = V::set1(bias ? bias[k] : T(0));
      const auto row_at = [xp, W = p.W](int64_t ih) { return xp + ih * W; };
      T* y0 = yp + oh0 * p.OW;
      const MaybeRelu<V> epi{relu};
      int64_t j = 0;
      for (; j + CV <= nvec; j += CV) dw_rows_strip<V, R, S, RB, CV>(p, row_at, zrow, wv, b, epi, y0, oh0, oh1, j);
      for (; j < nvec; ++j) dw_rows_strip<V, R, S, RB, 1>(p, row_at, zrow, wv, b, epi, y0, oh0, oh1, j);
      act_sweep<V>(y0, (oh1 - oh0) * p.OW, act);  // the rows just written, in L1
    }
  });
  std::free(zbuf);
  return true;
}

// Stride 2: output rows [oh, oh + rb) (rb <= RB), every column vector, from the phase-split rows
// rows[i] = input row 2 * oh - ph + i (even padded columns, the odd ones plen further); y0: row oh.
template <class V, int R, int S, int RB, int CV, class Epi>
CNNFAST_FORCE_INLINE void dw_rows_s2_rowblock(const typename V::T* const* rows, int64_t plen, const typename V::R* wv,
                                              typename V::R b, const Epi& epi, typename V::T* y0, int64_t OW,
                                              int64_t rb, int64_t nvec) {
  constexpr int N = V::N;
  auto cols = [&](int64_t j, auto cv) {  // column vectors [j, j + cv)
    const typename V::T* rj[(RB - 1) * 2 + R];
    for (int i = 0; i < (RB - 1) * 2 + R; ++i) rj[i] = rows[i] + j * N;
    dw_rows_block<V, R, S, RB, decltype(cv)::value, true, 2>(rj, plen, wv, b, nullptr, epi, y0 + j * N, OW, rb,
                                                             OW - j * N);
  };
  int64_t j = 0;
  for (; j + CV <= nvec; j += CV) cols(j, std::integral_constant<int, CV>{});
  for (; j < nvec; ++j) cols(j, std::integral_constant<int, 1>{});
}

// Stride 2 (both axes): each thread deinterleaves the input rows its chunk reads into even / odd
// padded phase rows (zeroed once: the vectors wholly outside the image are never written), then
// runs the blocks over those with whole loads.
template <class V, int R, int S, int RB, int CV>
bool dw_rows_fwd_s2_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* w,
                         const typename V::T* bias, typename V::T* y, bool relu) {
  using T = typename V::T;
  constexpr int N = V::N;
  const int64_t M = p.K / p.C, planes = p.N * p.K, nvec = ceil_div(p.OW, N);
  const int64_t plen = round_up(imax(nvec * N + S, ceil_div(p.W + 2 * p.pw, 2)), N);  // one phase row
  const int64_t nblk = ceil_div(p.OH, RB), rc = row_chunks(planes, nblk), units = planes * rc;
  const int nt = plan_threads(units, planes * p.OH * p.OW * R * S);
  const int64_t per_thread = (p.H + 1) * 2 * plen;  // phase rows, then the zero row
  const ActEpi<V> act(false, p.act);
  std::atomic<bool> failed{false};
  run_parallel(nt, units, [&](int64_t ub, int64_t ue, int) {
    // each thread's own scratch (allocated and zeroed by the thread that uses it)
    T* rowbuf = thread_scratch_of<T>(static_cast<size_t>(per_thread));
    if (!rowbuf) {
      failed.store(true, std::memory_order_relaxed);
      return;
    }
    std::memset(rowbuf, 0, static_cast<size_t>(per_thread) * sizeof(T));
    const T* zrow = rowbuf + p.H * 2 * plen;
    const T* rows[(RB - 1) * 2 + R];
    int64_t filled_plane = -1;
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t plane = u / rc, chunk = u % rc;
      const int64_t n = plane / p.K, k = plane % p.K;
      int64_t oh0, oh1;
      dw_rows_chunk(chunk, rc, nblk, RB, p.OH, oh0, oh1);
      const int64_t ilo = imax(0, 2 * oh0 - p.ph), ihi = imin(p.H, 2 * (oh1 - 1) - p.ph + R);  // rows read
      const T* xp = x + (n * p.C + k / M) * p.H * p.W;
      if (filled_plane != n * p.C + k / M || rc > 1) {  // depth multiplier M: M planes read one input
        for (int64_t ih = ilo; ih < ihi; ++ih)
          deinterleave_row<V>(rowbuf + ih * 2 * plen, rowbuf + ih * 2 * plen + plen, xp + ih * p.W, p.W, p.pw, plen);
        filled_plane = n * p.C + k / M;
      }
      T* yp = y + plane * p.OH * p.OW;
      typename V::R wv[R * S];
      for (int t = 0; t < R * S; ++t) wv[t] = V::set1(w[k * R * S + t]);
      const typename V::R b = V::set1(bias ? bias[k] : T(0));
      for (int64_t oh = oh0; oh < oh1; oh += RB) {
        for (int i = 0; i < (RB - 1) * 2 + R; ++i) {
          const int64_t ih = 2 * oh - p.ph + i;
          rows[i] = ih >= ilo && ih < ihi ? rowbuf + ih * 2 * plen : zrow;
        }
        dw_rows_s2_rowblock<V, R, S, RB, CV>(rows, plen, wv, b, MaybeRelu<V>{relu}, yp + oh * p.OW, p.OW,
                                             imin(RB, oh1 - oh), nvec);
      }
      act_sweep<V>(yp + oh0 * p.OW, (oh1 - oh0) * p.OW, act);
    }
  });
  return !failed.load(std::memory_order_relaxed);
}

// Stride 1 or 2 (both axes), no dilation, square 3x3 / 5x5 / 7x7 filters, padding below the kernel
// size, output rows of at least one vector. Register blocking per ISA: AVX-512 (32 registers)
// keeps the taps and RB x CV accumulators; AVX2 (16) one column vector of 8 rows at stride 1 for
// 3x3 and 7x7 (4 rows leave half of the FMA latency exposed), 4 rows for 5x5 and at stride 2.
// chosen because (AMD EPYC Zen 3, AVX2, 1 thread, process CPU time, bench/ab_builds.py with CPU=1
// T=1, 8 rows against 4): 3x3 1.00-1.10x (dw144_56_n8, dw144_56_n1, dw32_112_n1, dw192_28_n1;
// 0.97x on mbv2_dw's 7-row planes), 7x7 1.28x forward (dw7_96_56_n4), 5x5 0.82-0.98x
// (dw5_256_28_n1, effnet_dw14), stride 2 0.89-1.0x.
template <class V>
bool dw_rows_domain(const Conv2dShape& p) {
  return is_depthwise(p) && p.sh == p.sw && p.sh <= 2 && p.dh == 1 && p.dw == 1 && p.R == p.S &&
         (p.R == 3 || p.R == 5 || p.R == 7) && p.ph < p.R && p.pw < p.S && p.OW >= V::N && p.OH >= 1;
}

// One filter size K x K: stride 1 reads the rows in place (RB1 rows per block), stride 2 the
// phase-split copies (RB rows).
template <class V, int K, int RB, int CV, int RB1 = RB>
bool dw_rows_fwd_k(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                   typename V::T* y, bool relu) {
  const bool ok = p.sh == 2 ? dw_rows_fwd_s2_impl<V, K, K, RB, CV>(p, x, w, bias, y, relu)
                            : dw_rows_fwd_impl<V, K, K, RB1, CV>(p, x, w, bias, y, relu);
  if (ok) p.act_done = true;  // (both sweep p.act over each block they write)
  return ok;
}

template <class V>
bool dw_rows_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                 typename V::T* y, bool relu) {
  if (!dw_rows_domain<V>(p)) return false;
  constexpr bool wide = sizeof(typename V::R) == 64;
  constexpr int cv3 = wide ? 2 : 1;  // AVX-512: two column vectors of 3x3
  constexpr int rb1 = wide ? 4 : 8;  // AVX2, 3x3 / 7x7 at stride 1: 8 rows of one column vector
  switch (p.R) {
    case 3: return dw_rows_fwd_k<V, 3, 4, cv3, rb1>(p, x, w, bias, y, relu);
    case 5: return dw_rows_fwd_k<V, 5, 4, 1>(p, x, w, bias, y, relu);
    case 7: return dw_rows_fwd_k<V, 7, 4, 1, rb1>(p, x, w, bias, y, relu);
    default: return false;
  }
}

// grad_input at stride 1, depth multiplier 1: the forward of grad_output with the filters
// flipped and padding R - 1 - ph (a correlation of the same shape class).
template <class V>
bool dw_rows_bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  using T = typename V::T;
  if (!is_depthwise(p) || p.K != p.C || p.sh != 1 || p.sw != 1) return false;
  Conv2dShape q = no_act(p);
  q.H = p.OH, q.W = p.OW, q.OH = p.H, q.OW = p.W;
  q.ph = p.dh * (p.R - 1) - p.ph, q.pw = p.dw * (p.S - 1) - p.pw;
  if (q.ph < 0 || q.pw < 0 || !dw_rows_domain<V>(q)) return false;
  T* wf = flipped_filters(w, p.K, p.R * p.S);
  if (!wf) return false;
  const bool ok = dw_rows_fwd<V>(q, gy, wf, nullptr, gx, false);
  std::free(wf);
  return ok;
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
