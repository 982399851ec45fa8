// Small-plane dense conv2d (groups == 1, a padded image small enough to copy whole: LeNet c2,
// late ResNet stages at small batch) and the plane engine the depthwise short-row kernels reuse.
#pragma once
#include "kernels/conv2d/conv2d_direct_common.h"
#include "kernels/conv2d/conv2d_small_c.h"
#include "kernels/conv2d/conv2d_winograd.h"

namespace cnnfast {
namespace direct {
namespace {

// ------------------------------------------------------------------------------------------
// Small-plane dense: groups == 1 and a zero-padded input image (all its channels) small enough
// to copy whole into L1/L2 (LeNet c2: 6 x 12 x 12). A GEMM spends more on packing such a short
// problem (K = 16 rows, 64 columns per image) than on the arithmetic. With the whole padded,
// phase-split image in one buffer every tap (c, r, s) is a fixed offset from its output vector,
// so the output vectors of all rows can be blocked together: a short row (8 columns = one vector)
// still gets KB x NV register blocking, with no pointer tables per row.
//
//   forward       y[k][pos] = bias[k] + sum_t w[k][t] * plane[pos_off + tap_off[t]]
//   bwd_input     (column stride 1) col2im: g = sum_k w[k][t] * gy[k][pos], added into a padded
//                 grad_input plane at pos_off + tap_off[t]
//   bwd_weight    gw[k][t] = sum over images and positions of gy[k][pos] * plane[pos_off + tap_off[t]]
// ------------------------------------------------------------------------------------------
// Largest padded image (all channels) per work unit: 64 KiB leaves the weights and outputs room
// in a 1 MiB L2 while the plane itself streams through L1 row by row.
constexpr int64_t kPlaneMaxBytes = 64 * 1024;
// Beyond these the reduction (C*R*S) or the output-channel count is long enough for the GEMM
// kernels' packed microkernel (measured: LeNet-sized layers gain 2x here, VGG-sized ones lose).
constexpr int64_t kPlaneMaxK = 32;
constexpr int64_t kPlaneMaxCRS = 512;

// Padded, phase-split copy of image rows [hp0, hp0 + rows) of every channel (hp: padded row).
struct PlaneGeo {
  int64_t smax, plen, rowlen, rows, chan;  // chan: elements per channel
  template <class V>
  static PlaneGeo make(const Conv2dShape& p, int64_t out_rows) {
    PlaneGeo g;
    g.smax = (p.S - 1) * p.dw / p.sw;
    g.plen = round_up(p.OW, V::N) + g.smax;  // a vector at column j < OW reads phase columns < plen
    g.rowlen = g.plen * p.sw;
    g.rows = (out_rows - 1) * p.sh + (p.R - 1) * p.dh + 1;
    g.chan = g.rows * g.rowlen;
    return g;
  }
  template <class V>
  void fill(const Conv2dShape& p, const typename V::T* xn, int64_t hp0, typename V::T* dst) const {
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t ih = hp0 + i - p.ph;
        typename V::T* d = dst + c * chan + i * rowlen;
        if (ih < 0 || ih >= p.H)
          fill_zero(d, rowlen);
        else
          fill_phased<V>(d, xn + (c * p.H + ih) * p.W, p.W, p.pw, p.sw, plen, plen);
      }
  }
  // toff[t] for t = (c*R + r)*S + s: offset of tap t from an output vector's position.
  void tap_offsets(const Conv2dShape& p, int64_t* toff) const {
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s)
          toff[(c * p.R + r) * p.S + s] = c * chan + r * p.dh * rowlen + (s * p.dw % p.sw) * plen + s * p.dw / p.sw;
  }
};

// Flat layout (stride 1 both ways): S column-shifted copies of the padded image rows, each row
// OW long, copy s of channel c holding xf[s][c][i][ow] = xpad[c][hp0 + i][ow + s*dw]. Tap (c, r, s)
// of output (oh, ow) then reads xf[s][c][oh - oh0 + r*dh][ow], at offset toff[t] + q from the flat
// output index q = (oh - oh0)*OW + ow: consecutive outputs of *all* rows are one contiguous vector.
// A 12-wide LeNet map (8 outputs per row) fills all 16 lanes of an AVX-512 vector instead of half,
// and a 10-wide one 16 of 16 instead of 10 (PlaneGeo pads every row to whole vectors).
struct FlatGeo {
  int64_t rows, chan, total;  // chan: elements per (s, c) copy; total: all copies + a zero tail
  template <class V>
  static FlatGeo make(const Conv2dShape& p, int64_t out_rows) {
    FlatGeo g;
    g.rows = out_rows + (p.R - 1) * p.dh;
    g.chan = g.rows * p.OW;
    g.total = p.S * p.C * g.chan + V::N;  // the last vector of positions may read N - 1 past the copies
    return g;
  }
  // Row by row with whole vectors (masked loads, zero outside the image): rows are stored in
  // increasing address order, so a row's last vector may spill zeros into the next row, which is
  // rewritten next, or into the zero tail. (A memcpy per 10-column row cost 40% of LeNet c2.)
  template <class V>
  void fill(const Conv2dShape& p, const typename V::T* xn, int64_t hp0, typename V::T* dst) const {
    using T = typename V::T;
    constexpr int N = V::N;
    for (int64_t s = 0; s < p.S; ++s) {
      const int64_t sh = s * p.dw - p.pw;  // column of x under output column 0
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t i = 0; i < rows; ++i) {
          const int64_t ih = hp0 + i - p.ph;
          T* d = dst + (s * p.C + c) * chan + i * p.OW;
          if (ih < 0 || ih >= p.H) {
            for (int64_t j = 0; j < p.OW; j += N) V::store(d + j, V::zero());
            continue;
          }
          const T* src = xn + (c * p.H + ih) * p.W + sh;  // src[j] = x column j + sh (read where in range)
          for (int64_t j = 0; j < p.OW; j += N) {
            const int64_t lo = imin(N, imax(0, -sh - j)), hi = imax(lo, imin(N, p.W - sh - j));
            if (lo == 0 && hi == N)
              V::store(d + j, V::load(src + j));
            else
              V::store(d + j, V::load_part(src + j, static_cast<int>(lo), static_cast<int>(hi), T(0)));
          }
        }
    }
    fill_zero(dst + p.S * p.C * chan, total - p.S * p.C * chan);
  }
  void tap_offsets(const Conv2dShape& p, int64_t* toff) const {
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s) toff[(c * p.R + r) * p.S + s] = (s * p.C + c) * chan + r * p.dh * p.OW;
  }
};

// Whether the flat layout pays (measured, 1 thread, CPU time, Xeon with AVX-512): stride 1, and
// whole-vector rows waste more than 1/6 of the lanes. LeNet c2 (10-wide rows) on 8 lanes: 16 vs 12.5
// lanes a row, forward 1.16x faster flat; LeNet c1 (28-wide rows: 32 vs 28) 0.89x, the S copies cost
// more than they save. On 16 lanes c2 measured 0.91-0.96x flat (16 vs 11.2 lanes a row) and c1
// 0.85x, so 512-bit vectors keep the row layout.
template <class V>
bool use_flat(const Conv2dShape& p, int64_t out_rows) {
  if (p.sh != 1 || p.sw != 1 || sizeof(typename V::R) > 32) return false;
  const int64_t N = V::N;
  if (round_up(p.OW, N) * out_rows * 5 <= round_up(p.OW * out_rows, N) * 6) return false;
  return (p.S * p.C * (out_rows + (p.R - 1) * p.dh) * p.OW + N) * static_cast<int64_t>(sizeof(typename V::T)) <=
         kPlaneMaxBytes;
}

// Bytes of the padded plane for `out_rows` output rows.
inline int64_t plane_bytes(const Conv2dShape& p, int64_t N, int64_t elem, int64_t out_rows) {
  const int64_t smax = (p.S - 1) * p.dw / p.sw;
  const int64_t rows = (out_rows - 1) * p.sh + (p.R - 1) * p.dh + 1;
  return p.C * rows * (round_up(p.OW, N) + smax) * p.sw * elem;
}

template <class V>
bool is_small_plane(const Conv2dShape& p) {
  const bool relax = relax_heuristics();  // autotuning (dispatch/heuristics.h): size limits only
  return p.groups == 1 && (relax || (p.K <= kPlaneMaxK && p.C * p.R * p.S <= kPlaneMaxCRS)) &&
         plane_bytes(p, V::N, sizeof(typename V::T), p.OH) <= kPlaneMaxBytes * (relax ? kRelaxedPlaneBytesFactor : 1);
}

// The forward pass cuts the plane into row chunks (a 224 x 224 RGB stem: 16+ chunks of 7 rows),
// so it only needs one output row's plane to fit; beyond small planes it also takes every
// small-C layer, where it beats the row-pointer kernel sc_fwd (LeNet c1 +20%, stem +6%).
template <class V>
bool is_plane_fwd(const Conv2dShape& p) {
  if (p.groups != 1 || is_depthwise(p)) return false;
  const bool relax = relax_heuristics();  // autotuning (dispatch/heuristics.h): size limits only
  if (!relax && p.C > kSmallCMaxChannels && (p.K > kPlaneMaxK || p.C * p.R * p.S > kPlaneMaxCRS)) return false;
  return plane_bytes(p, V::N, sizeof(typename V::T), 1) <= kPlaneMaxBytes * (relax ? kRelaxedPlaneBytesFactor : 1);
}

// One output vector: source offset in the plane buffer, destination offset in the output plane,
// columns stored (N, or fewer for the last vector of a row).
struct PlanePos {
  int64_t src, dst, cols;
};

// The positions of one run of `len` outputs (its first at src / dst), N at a time, into pos;
// returns how many. Where the run holds a whole vector, its partial last vector is moved back to
// end at the run's end: it overlaps the one before and stores the same values again (each vector is
// computed on its own, in a fixed order), whole, instead of a masked store of the remainder. Runs
// shorter than a vector keep the masked store. chosen because AVX2's masked store (vmaskmovps) costs
// ~14 cycles on AMD Zen 3 against ~1 for a plain one: a 14-column phase row (8 + 6) of MobileNetV2's
// depthwise 3x3 / 2 grad_input spent a quarter of its time in them (AMD EPYC Zen 3, perf).
inline int64_t run_positions(PlanePos* pos, int64_t src, int64_t dst, int64_t len, int64_t N) {
  int64_t n = 0;
  for (int64_t j = 0; j < len; j += N) {
    const int64_t b = j + N > len && len >= N ? len - N : j;
    pos[n++] = PlanePos{src + b, dst + b, len - b < N ? len - b : N};
  }
  return n;
}

// KB output channels x NV positions: acc[kb][v] = bias[kb] + sum_t w[t*KB + kb] * xs[pos[v].src + toff[t]].
template <class V, int KB, int NV>
inline void plane_block(int64_t ntaps, const int64_t* toff, const typename V::T* w, const typename V::T* bias,
                        bool relu, const typename V::T* xs, const PlanePos* pos, typename V::T* const* dst) {
  using T = typename V::T;
  using R = typename V::R;
  R acc[KB][NV];
  for (int kb = 0; kb < KB; ++kb) {
    const R b = V::set1(bias[kb]);
    for (int v = 0; v < NV; ++v) acc[kb][v] = b;
  }
  const T* xv0[NV];
  for (int v = 0; v < NV; ++v) xv0[v] = xs + pos[v].src;
  for (int64_t t = 0; t < ntaps; ++t, w += KB) {
    const int64_t o = toff[t];
    R xv[NV];
#pragma GCC unroll 32
    for (int v = 0; v < NV; ++v) xv[v] = V::load(xv0[v] + o);
#pragma GCC unroll 8
    for (int kb = 0; kb < KB; ++kb) {
      const R wb = V::set1(w[kb]);
#pragma GCC unroll 32
      for (int v = 0; v < NV; ++v) acc[kb][v] = V::fma(wb, xv[v], acc[kb][v]);
    }
  }
  for (int kb = 0; kb < KB; ++kb) {
    if (!dst[kb]) continue;
    for (int v = 0; v < NV; ++v) {
      const R a = relu ? V::relu(acc[kb][v]) : acc[kb][v];
      T* d = dst[kb] + pos[v].dst;
      if (pos[v].cols == V::N)
        V::store(d, a);
      else
        V::store_n(d, a, static_cast<int>(pos[v].cols));
    }
  }
}

// All `npos` positions in blocks of NV, the remainder with fewer accumulators; for each block of
// positions, all `nkb` blocks of KB output channels (weights w + blk * ntaps * KB, destinations
// dst[blk * KB + kb]), so the block's input vectors stay in L1 across the output channels.
template <class V, int KB, int NV>
void plane_positions(int64_t ntaps, const int64_t* toff, const typename V::T* w, const typename V::T* bias, bool relu,
                     const typename V::T* xs, const PlanePos* pos, int64_t npos, typename V::T* const* dst,
                     int64_t nkb = 1) {
  int64_t i = 0;
  for (; i + NV <= npos; i += NV)
    for (int64_t blk = 0; blk < nkb; ++blk)
      plane_block<V, KB, NV>(ntaps, toff, w + blk * ntaps * KB, bias + blk * KB, relu, xs, pos + i, dst + blk * KB);
  if constexpr (NV > 1)
    if (i < npos) plane_positions<V, KB, NV - 1>(ntaps, toff, w, bias, relu, xs, pos + i, npos - i, dst, nkb);
}

// Images per work unit when whole images are the units: positions of B images are blocked
// together, so a short image (LeNet c2: 7 or 13 vectors) does not end in a block of one or two
// vectors whose KB accumulator chains wait on the FMA latency. Chooses B <= bmax minimising the
// FMA issue slots per position, a block of r < NV vectors costing max(r*KB, 8) slots (8 chains
// hide the 4-cycle latency on two FMA pipes); ties go to the smaller B.
inline int64_t plane_images(int64_t npos_img, int KB, int NV, int64_t bmax) {
  int64_t best = 1;
  double best_cost = 1e300;
  for (int64_t b = 1; b <= bmax; ++b) {
    const int64_t np = b * npos_img, full = np / NV, r = np % NV;
    const double cost = static_cast<double>(full * NV * KB + (r ? imax(r * KB, 8) : 0)) / static_cast<double>(np);
    if (cost < best_cost - 1e-9) best = b, best_cost = cost;
  }
  return best;
}

// Forward over the shape p, reading weight (k, t) through wat(k, t) (t = (c*R + r)*S + s), so
// bwd_input can pass the transposed, flipped weight without materialising it first.
template <class V, int KB, typename WAt>
bool plane_fwd_impl(const Conv2dShape& p, const typename V::T* x, const WAt& wat, const typename V::T* bias,
                    typename V::T* y, bool relu) {
  using T = typename V::T;
  constexpr int NV = KB == 1 ? 8 : kAccRegs<V> / KB;  // 8, or 12 / 24 accumulators (see row_engine)
  const int64_t CRS = p.C * p.R * p.S, N = V::N, nvec = ceil_div(p.OW, N);
  const int64_t Kpad = round_up(p.K, KB), nkb = Kpad / KB;
  int64_t rc = row_chunks(p.N, p.OH);  // then more chunks until one chunk's plane fits
  while (rc < p.OH && plane_bytes(p, N, sizeof(T), ceil_div(p.OH, rc)) > kPlaneMaxBytes) ++rc;
  const int64_t crows = ceil_div(p.OH, rc);
  const PlaneGeo g = PlaneGeo::make<V>(p, crows);
  const bool flat = use_flat<V>(p, crows);
  const FlatGeo fg = FlatGeo::make<V>(p, crows);
  const int64_t img_elems = flat ? fg.total : p.C * g.chan;  // one image's plane (chunk)
  const int64_t img_pos = flat ? ceil_div(crows * p.OW, N) : crows * nvec;
  // Whole images as units (rc == 1): B of them per unit, keeping 8 units per thread and the
  // planes within 2 * kPlaneMaxBytes.
  int64_t B = 1;
  if (rc == 1) {
    const int64_t bmax = imax(1, imin(imin(8, p.N / (8 * static_cast<int64_t>(max_threads()))),
                                      2 * kPlaneMaxBytes / (img_elems * static_cast<int64_t>(sizeof(T)))));
    B = plane_images(img_pos, KB, NV, bmax);
  }
  const int64_t units = rc == 1 ? ceil_div(p.N, B) : p.N * rc;
  const int nt = plan_threads(units, p.N * p.OH * p.OW * p.K * CRS);

  auto layout = [&](Arena& a, T*& plane, PlanePos*& pos, T**& d) {
    plane = a.take<T>(B * img_elems);
    pos = a.take<PlanePos>(B * img_pos);
    d = a.take<T*>(Kpad);
  };
  Arena measure;
  {
    T* pl;
    PlanePos* ps;
    T** dd;
    layout(measure, pl, ps, dd);
  }
  Arena shared;
  T* wpk = shared.take<T>(nkb * CRS * KB);  // [block][t][kb]
  T* bpk = shared.take<T>(Kpad);
  int64_t* toff = shared.take<int64_t>(CRS);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  wpk = rebase(ws, wpk), bpk = rebase(ws, bpk), toff = rebase(ws, toff);
  if (flat)
    fg.tap_offsets(p, toff);
  else
    g.tap_offsets(p, toff);
  for (int64_t k = 0; k < Kpad; ++k) {
    bpk[k] = (bias && k < p.K) ? bias[k] : T(0);
    for (int64_t t = 0; t < CRS; ++t) wpk[((k / KB) * CRS + t) * KB + k % KB] = k < p.K ? wat(k, t) : T(0);
  }
  const int64_t ystride = p.K * p.OH * p.OW;  // between images in y

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T* plane;
    PlanePos* pos;
    T** d;  // output plane of each (padded) output channel, nullptr past K
    layout(a, plane, pos, d);
    for (int64_t u = b; u < e; ++u) {
      // Images [n0, n1), output rows [oh0, oh1) of each.
      const int64_t n0 = rc == 1 ? u * B : u / rc, n1 = rc == 1 ? imin(p.N, n0 + B) : n0 + 1;
      const int64_t chunk = rc == 1 ? 0 : u % rc;
      const int64_t oh0 = chunk * p.OH / rc, oh1 = (chunk + 1) * p.OH / rc;
      int64_t npos = 0;
      for (int64_t n = n0; n < n1; ++n) {
        T* pl = plane + (n - n0) * img_elems;
        const int64_t src0 = (n - n0) * img_elems, dst0 = (n - n0) * ystride;
        if (flat) {
          fg.fill<V>(p, x + n * p.C * p.H * p.W, oh0, pl);
          const int64_t nq = (oh1 - oh0) * p.OW;
          npos += run_positions(pos + npos, src0, dst0 + oh0 * p.OW, nq, N);
        } else {
          g.fill<V>(p, x + n * p.C * p.H * p.W, oh0 * p.sh, pl);
          for (int64_t oh = oh0; oh < oh1; ++oh)
            npos += run_positions(pos + npos, src0 + (oh - oh0) * p.sh * g.rowlen, dst0 + oh * p.OW, p.OW, N);
        }
      }
      for (int64_t k = 0; k < Kpad; ++k) d[k] = k < p.K ? y + (n0 * p.K + k) * p.OH * p.OW : nullptr;
      plane_positions<V, KB, NV>(CRS, toff, wpk, bpk, relu, plane, pos, npos, d, nkb);
    }
  });
  return true;
}

// Output-channel block for K outputs: K itself up to 3, else 4 or 6 (small_c_block).
inline int plane_block_k(int64_t K) { return K <= 3 ? static_cast<int>(K) : small_c_block(K); }

template <class V, typename WAt>
bool plane_fwd_any(const Conv2dShape& p, const typename V::T* x, const WAt& wat, const typename V::T* bias,
                   typename V::T* y, bool relu) {
  switch (plane_block_k(p.K)) {
    case 1: return plane_fwd_impl<V, 1>(p, x, wat, bias, y, relu);
    case 2: return plane_fwd_impl<V, 2>(p, x, wat, bias, y, relu);
    case 3: return plane_fwd_impl<V, 3>(p, x, wat, bias, y, relu);
    case 6: return plane_fwd_impl<V, 6>(p, x, wat, bias, y, relu);
    default: return plane_fwd_impl<V, 4>(p, x, wat, bias, y, relu);
  }
}

// Channel-vectorised forward (stride 1): the lanes are output channels, so a short row wastes none
// of them (LeNet c2 on 16 lanes: a 10-wide row fills 10 of 16 lanes in the row layout, here 16 of
// 16). A block is RB output rows x CB consecutive columns x KV channel vectors; each tap loads KV
// weight vectors and broadcasts RB*CB inputs at constant offsets from RB row pointers into a
// zero-padded copy of the image, so no shifted copies are needed. Blocks are transposed through a
// small buffer into the NCHW output.
template <class V, int KV, int RB, int CB>
inline void kvec_block(int64_t ntaps, const int64_t* toff, const typename V::T* w, const typename V::T* bias, bool relu,
                       const typename V::T* xs, int64_t Wp, typename V::T* out) {
  using R = typename V::R;
  constexpr int N = V::N;
  R acc[RB * CB][KV];
#pragma GCC unroll 4
  for (int kv = 0; kv < KV; ++kv) {
    const R b = V::load(bias + kv * N);
#pragma GCC unroll 32
    for (int v = 0; v < RB * CB; ++v) acc[v][kv] = b;
  }
  for (int64_t t = 0; t < ntaps; ++t, w += KV * N) {
    const typename V::T* xp = xs + toff[t];
    R wv[KV];
#pragma GCC unroll 4
    for (int kv = 0; kv < KV; ++kv) wv[kv] = V::load(w + kv * N);
#pragma GCC unroll 4
    for (int rb = 0; rb < RB; ++rb) {
      const typename V::T* xr = xp + rb * Wp;
#pragma GCC unroll 16
      for (int cb = 0; cb < CB; ++cb) {
        const R xb = V::set1(xr[cb]);
#pragma GCC unroll 4
        for (int kv = 0; kv < KV; ++kv) acc[rb * CB + cb][kv] = V::fma(wv[kv], xb, acc[rb * CB + cb][kv]);
      }
    }
  }
#pragma GCC unroll 32
  for (int v = 0; v < RB * CB; ++v)
#pragma GCC unroll 4
    for (int kv = 0; kv < KV; ++kv) V::store(out + (v * KV + kv) * N, relu ? V::relu(acc[v][kv]) : acc[v][kv]);
}

// Accumulator registers of a channel-vectorised block and its widest column block.
template <class V>
constexpr int kKvecAcc = sizeof(typename V::R) == 64 ? 24 : 12;
template <class V>
constexpr int kKvecMaxCB = sizeof(typename V::R) == 64 ? 12 : 6;

// Whether the channel-vectorised forward applies: stride 1, the output channels fill whole vectors
// (at most 1/8 of the lanes padding: K = 16, 32 on 16 lanes), the rows would waste more than 1/4 of
// the lanes in the row layout, and the padded image fits.
template <class V>
bool use_kvec(const Conv2dShape& p) {
  const int64_t N = V::N, Kpad = round_up(p.K, N);
  if (p.sh != 1 || p.sw != 1 || Kpad > 2 * N || Kpad * 7 > p.K * 8) return false;
  return round_up(p.OW, N) * 3 > p.OW * 4;
}

template <class V, int KV, int CB>
bool plane_fwd_kvec_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* w,
                         const typename V::T* bias, typename V::T* y, bool relu) {
  using T = typename V::T;
  constexpr int RB0 = kKvecAcc<V> / (KV * CB);
  constexpr int RB = RB0 < 1 ? 1 : RB0 > 4 ? 4 : RB0;
  constexpr int64_t KN = KV * V::N;
  constexpr int64_t N = V::N, NPpad = (RB * CB + N - 1) / N * N;  // block positions, whole vectors
  const int64_t CRS = p.C * p.R * p.S, OHW = p.OH * p.OW;
  const int64_t Hp = p.H + 2 * p.ph, Wp = p.W + 2 * p.pw;
  const int64_t rowsP = Hp + RB;  // + junk rows read by the last row block
  const int64_t chanP = rowsP * Wp;
  const int64_t elems = p.C * chanP + CB + (p.S - 1) * p.dw + Wp;  // + junk columns past the last row
  if (elems * static_cast<int64_t>(sizeof(T)) > kPlaneMaxBytes) return false;
  const int64_t nrb = ceil_div(p.OH, RB), ncb = ceil_div(p.OW, CB);
  const int64_t rc = row_chunks(p.N, nrb), units = p.N * rc;
  const int nt = plan_threads(units, p.N * OHW * p.K * CRS);

  auto layout = [&](Arena& a, T*& plane, T*& out, T*& outt) {
    plane = a.take<T>(elems);
    out = a.take<T>(NPpad * KN);       // [position][channel]
    outt = a.take<T>(KN * NPpad + N);  // [channel][position], + N: whole-vector reads of the last row
  };
  Arena measure;
  {
    T *pl, *o, *ot;
    layout(measure, pl, o, ot);
  }
  Arena shared;
  T* wpk = shared.take<T>(CRS * KN);  // [t][k], zero for k >= K
  T* bpk = shared.take<T>(KN);
  int64_t* toff = shared.take<int64_t>(CRS);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  wpk = rebase(ws, wpk), bpk = rebase(ws, bpk), toff = rebase(ws, toff);
  for (int64_t c = 0; c < p.C; ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s) toff[(c * p.R + r) * p.S + s] = c * chanP + r * p.dh * Wp + s * p.dw;
  for (int64_t k = 0; k < KN; ++k) {
    bpk[k] = (bias && k < p.K) ? bias[k] : T(0);
    for (int64_t t = 0; t < CRS; ++t) wpk[t * KN + k] = k < p.K ? w[k * CRS + t] : T(0);
  }

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *plane, *out, *outt;
    layout(a, plane, out, outt);
    fill_zero(plane, elems);  // padding and junk rows stay zero; only the image is copied in
    fill_zero(out, NPpad * KN);
    fill_zero(outt, KN * NPpad + N);
    for (int64_t u = b; u < e; ++u) {
      const int64_t n = u / rc, chunk = u % rc;
      const int64_t rb0 = chunk * nrb / rc, rb1 = (chunk + 1) * nrb / rc;
      const int64_t ih0 = imax(0, rb0 * RB - p.ph), ih1 = imin(p.H, rb1 * RB + (p.R - 1) * p.dh - p.ph);
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t ih = ih0; ih < ih1; ++ih)
          std::memcpy(plane + c * chanP + (ih + p.ph) * Wp + p.pw, x + ((n * p.C + c) * p.H + ih) * p.W,
                      static_cast<size_t>(p.W) * sizeof(T));
      T* yn = y + n * p.K * OHW;
      for (int64_t rbi = rb0; rbi < rb1; ++rbi) {
        const int64_t oh = rbi * RB, nr = imin(RB, p.OH - oh);
        for (int64_t cbi = 0; cbi < ncb; ++cbi) {
          const int64_t ow = cbi * p.OW / ncb, ncol = (cbi + 1) * p.OW / ncb - ow;  // ncol <= CB
          kvec_block<V, KV, RB, CB>(CRS, toff, wpk, bpk, relu, plane + oh * Wp + ow, Wp, out);
          if constexpr (RB * CB >= N) {
            // N x N transposes to [channel][position], then each output row segment as vectors
            // (LeNet c2 on 16 lanes: 1.06-1.14x the forward with scalar stores; on 8 lanes a block
            // has 6 positions and the scalar stores below are faster).
            for (int64_t kv = 0; kv < KV; ++kv)
              for (int64_t v0 = 0; v0 < NPpad; v0 += N)
                V::transpose(out + v0 * KN + kv * N, KN, outt + kv * N * NPpad + v0, NPpad);
            for (int64_t k = 0; k < p.K; ++k)
              for (int64_t rb = 0; rb < nr; ++rb) {
                T* d = yn + k * OHW + (oh + rb) * p.OW + ow;
                const T* o = outt + k * NPpad + rb * CB;
                for (int64_t c0 = 0; c0 < ncol; c0 += N) {
                  if (ncol - c0 >= N)
                    V::store(d + c0, V::load(o + c0));
                  else
                    V::store_n(d + c0, V::load(o + c0), static_cast<int>(ncol - c0));
                }
              }
          } else {
            for (int64_t k = 0; k < p.K; ++k)
              for (int64_t rb = 0; rb < nr; ++rb) {
                T* d = yn + k * OHW + (oh + rb) * p.OW + ow;
                const T* o = out + rb * CB * KN + k;
                for (int64_t cb = 0; cb < ncol; ++cb) d[cb] = o[cb * KN];
              }
          }
        }
      }
    }
  });
  return true;
}

// CB: the row in ceil(OW / max CB) equal column blocks; RB: rows filling the accumulators.
template <class V, int KV>
bool plane_fwd_kvec_kv(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                       typename V::T* y, bool relu) {
  constexpr int M = kKvecMaxCB<V> / KV;
  const int64_t cb = ceil_div(p.OW, ceil_div(p.OW, M));
  switch (cb) {
    case 1: return plane_fwd_kvec_impl<V, KV, 1>(p, x, w, bias, y, relu);
    case 2: return plane_fwd_kvec_impl<V, KV, 2>(p, x, w, bias, y, relu);
    case 3: return plane_fwd_kvec_impl<V, KV, 3>(p, x, w, bias, y, relu);
    case 4: return plane_fwd_kvec_impl<V, KV, 4>(p, x, w, bias, y, relu);
    case 5: return plane_fwd_kvec_impl<V, KV, (M >= 5 ? 5 : 1)>(p, x, w, bias, y, relu);
    case 6: return plane_fwd_kvec_impl<V, KV, (M >= 6 ? 6 : 1)>(p, x, w, bias, y, relu);
    case 7: return plane_fwd_kvec_impl<V, KV, (M >= 7 ? 7 : 1)>(p, x, w, bias, y, relu);
    case 8: return plane_fwd_kvec_impl<V, KV, (M >= 8 ? 8 : 1)>(p, x, w, bias, y, relu);
    case 9: return plane_fwd_kvec_impl<V, KV, (M >= 9 ? 9 : 1)>(p, x, w, bias, y, relu);
    case 10: return plane_fwd_kvec_impl<V, KV, (M >= 10 ? 10 : 1)>(p, x, w, bias, y, relu);
    case 11: return plane_fwd_kvec_impl<V, KV, (M >= 11 ? 11 : 1)>(p, x, w, bias, y, relu);
    default: return plane_fwd_kvec_impl<V, KV, (M >= 12 ? 12 : 1)>(p, x, w, bias, y, relu);
  }
}

template <class V>
bool plane_fwd_kvec(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                    typename V::T* y, bool relu) {
  return ceil_div(p.K, V::N) == 1 ? plane_fwd_kvec_kv<V, 1>(p, x, w, bias, y, relu)
                                  : plane_fwd_kvec_kv<V, 2>(p, x, w, bias, y, relu);
}

// Whether the plane forward leaves a layer to the Winograd kernel (registered after it): float32
// 3x3 stride-1 layers that Winograd takes (wino::pays_off: >= 16 input channels), except, with
// 512-bit vectors, C*K < 512. Measured with the autotuner, 1 thread (Xeon): 8x32x64x64 -> 32
// Winograd 2.3x faster on AVX-512, 1.5-1.8x on AVX2; 64x32x16x16 -> 32 1.2x / 1.7x; 64x16x8x8 -> 32
// 1.2x / 1.5x; 64x16x32x32 -> 16 1.1-1.6x on AVX2 but 0.4-0.9x on AVX-512 (stays here).
template <class V>
bool leave_to_winograd(const Conv2dShape& p) {
  if constexpr (sizeof(typename V::T) != 4) {
    return false;
  } else {
    if (relax_heuristics() || !wino::shape_ok(p)) return false;  // autotuning: time this kernel too
    if (sizeof(typename V::R) == 64 && p.C * p.K < 512) return false;
    return wino::pays_off<V>(wino::geometry(p.N, p.C, p.H, p.W, p.K, p.OH, p.OW, p.ph, p.pw));
  }
}

template <class V>
bool plane_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
               typename V::T* y, bool relu) {
  if (!is_plane_fwd<V>(p) || leave_to_winograd<V>(p)) return false;
  if (use_kvec<V>(p) && plane_fwd_kvec<V>(p, x, w, bias, y, relu)) return true;
  const int64_t CRS = p.C * p.R * p.S;
  return plane_fwd_any<V>(p, x, [&](int64_t k, int64_t t) { return w[k * CRS + t]; }, bias, y, relu);
}

// grad_input for column stride 1 (any row stride, dilation and padding), in col2im form: for tap
// t = (c, r, s) and output vector q, g = sum_k w[k][t] * gy[k][q] (a K-long dot product held in
// registers, TB taps x NV vectors at a time), then added into a zero-padded grad_input plane at
// the tap's offset. Unlike a "full" correlation of the padded grad_output nothing is multiplied
// by padding, and an 8-column LeNet row is one exact vector.
template <class V, int TB, int NV>
inline void col2im_block(int64_t K, const typename V::T* w, const typename V::T* gyp, int64_t kstride,
                         const PlanePos* pos, const int64_t* toff, typename V::T* gxp) {
  using T = typename V::T;
  using R = typename V::R;
  R acc[TB][NV];
  for (int tb = 0; tb < TB; ++tb)
    for (int v = 0; v < NV; ++v) acc[tb][v] = V::zero();
  for (int64_t k = 0; k < K; ++k, w += TB) {
    R g[NV];
    for (int v = 0; v < NV; ++v) g[v] = V::load(gyp + k * kstride + pos[v].src);
#pragma GCC unroll 8
    for (int tb = 0; tb < TB; ++tb) {
      const R wb = V::set1(w[tb]);
#pragma GCC unroll 12
      for (int v = 0; v < NV; ++v) acc[tb][v] = V::fma(wb, g[v], acc[tb][v]);
    }
  }
  const R one = V::set1(T(1));
  for (int tb = 0; tb < TB; ++tb)
    for (int v = 0; v < NV; ++v) {
      T* d = gxp + toff[tb] + pos[v].dst;
      V::store(d, V::fma(one, V::load(d), acc[tb][v]));  // 1*d + acc: an exact add
    }
}

template <class V, int TB, int NV>
void col2im_positions(int64_t K, const typename V::T* w, const typename V::T* gyp, int64_t kstride, const PlanePos* pos,
                      int64_t npos, const int64_t* toff, typename V::T* gxp) {
  int64_t i = 0;
  for (; i + NV <= npos; i += NV) col2im_block<V, TB, NV>(K, w, gyp, kstride, pos + i, toff, gxp);
  if constexpr (NV > 1)
    if (i < npos) col2im_positions<V, TB, NV - 1>(K, w, gyp, kstride, pos + i, npos - i, toff, gxp);
}

// Padded grad_input plane of one image: rows H + 2ph, Wp columns (a vector at output column
// j < OW writes columns j + s*dw .. j + s*dw + N - 1 < Wp), plus one trash channel for the
// padding taps of the last tap block.
struct Col2imGeo {
  int64_t Wp, rows, chan;
  template <class V>
  static Col2imGeo make(const Conv2dShape& p) {
    Col2imGeo g;
    g.Wp = round_up(p.OW, V::N) + (p.S - 1) * p.dw;
    g.rows = p.H + 2 * p.ph;
    g.chan = g.rows * g.Wp;
    return g;
  }
};

// Each accumulator sums K products before its read-modify-write of the plane: below 8 the
// stores dominate (LeNet c1, K = 6: 0.72 ms here against 0.48 ms for the GEMM kernels).
constexpr int64_t kCol2imMinK = 8;

template <class V>
bool is_small_plane_bwd_input(const Conv2dShape& p) {
  if (p.groups != 1 || is_depthwise(p) || p.sw != 1 || p.K < kCol2imMinK) return false;
  // Only for the autotuner (relaxed): the next kernels (Winograd where it applies, else the GEMM
  // path's col2im) were faster on every layer this kernel takes that was measured. chosen because
  // (Xeon, 2 threads, `python bench/grad_input_choice.py [--isa avx2]`: kernels pinned, alternating
  // in one process, medians; LeNet c2 also in fresh processes) the GEMM ran LeNet c2 (5x5, 6 <- 16
  // channels, 12x12 and 14x14, batch 1-256) 1.2-1.5x faster on AVX-512 and 1.1-1.6x on AVX2, and
  // 3x3 / 5x5 layers of 3-32 channels on 8x8 to 32x32 planes 1.0-1.5x (AVX-512) and 1.03-1.6x (AVX2);
  // Winograd took three 3x3 layers 1.06-1.5x faster and one 5x5 (12 <- 24 on 20x20) 0.86x (AVX-512).
  // (The kernel had been chosen on Zen 4's AVX2, where it may still win: the autotuner times it.)
  if (!relax_heuristics()) return false;  // dispatch/heuristics.h
  const Col2imGeo g = Col2imGeo::make<V>(p);
  return (p.C + 1) * g.chan * static_cast<int64_t>(sizeof(typename V::T)) <= kPlaneMaxBytes * kRelaxedPlaneBytesFactor;
}

template <class V>
bool plane_bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  using T = typename V::T;
  if (!is_small_plane_bwd_input<V>(p)) return false;
  // 12 (24) accumulators, 3 (6) loads + 4 broadcasts per 12 (24) FMAs
  constexpr int TB = 4, NV = kAccRegs<V> / TB;
  const int64_t CRS = p.C * p.R * p.S, N = V::N, nvec = ceil_div(p.OW, N), npos = p.OH * nvec;
  const int64_t CRSpad = round_up(CRS, TB);
  const Col2imGeo g = Col2imGeo::make<V>(p);
  const int nt = plan_threads(p.N, p.N * p.OH * p.OW * p.K * CRS);

  auto layout = [&](Arena& a, T*& gxp, T*& gyp) {
    gxp = a.take<T>((p.C + 1) * g.chan);
    gyp = a.take<T>(p.K * npos * N);
  };
  Arena measure;
  {
    T *gp, *yp;
    layout(measure, gp, yp);
  }
  Arena shared;
  T* wpk = shared.take<T>(CRSpad * p.K);  // [tap block][k][tb]
  int64_t* toff = shared.take<int64_t>(CRSpad);
  PlanePos* pos = shared.take<PlanePos>(npos);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  wpk = rebase(ws, wpk), toff = rebase(ws, toff), pos = rebase(ws, pos);
  for (int64_t t = 0; t < CRSpad; ++t) {
    const int64_t c = t / (p.R * p.S), r = t / p.S % p.R, s = t % p.S;
    toff[t] = t < CRS ? c * g.chan + r * p.dh * g.Wp + s * p.dw : p.C * g.chan;  // padding taps: trash
    for (int64_t k = 0; k < p.K; ++k) wpk[((t / TB) * p.K + k) * TB + t % TB] = t < CRS ? w[k * CRS + t] : T(0);
  }
  for (int64_t oh = 0; oh < p.OH; ++oh)
    for (int64_t v = 0; v < nvec; ++v) pos[oh * nvec + v] = PlanePos{(oh * nvec + v) * N, oh * p.sh * g.Wp + v * N, N};

  run_parallel(nt, p.N, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *gxp, *gyp;
    layout(a, gxp, gyp);
    for (int64_t n = b; n < e; ++n) {
      fill_zero(gxp, (p.C + 1) * g.chan);
      for (int64_t k = 0; k < p.K; ++k)  // grad_output vectors, zero past OW
        for (int64_t oh = 0; oh < p.OH; ++oh)
          fill_padded(gyp + (k * npos + oh * nvec) * N, gy + ((n * p.K + k) * p.OH + oh) * p.OW, 0, p.OW, nvec * N);
      for (int64_t t0 = 0; t0 < CRSpad; t0 += TB)
        col2im_positions<V, TB, NV>(p.K, wpk + t0 * p.K, gyp, npos * N, pos, npos, toff + t0, gxp);
      for (int64_t c = 0; c < p.C; ++c)
        for (int64_t ih = 0; ih < p.H; ++ih)
          std::memcpy(gx + ((n * p.C + c) * p.H + ih) * p.W, gxp + c * g.chan + (ih + p.ph) * g.Wp + p.pw,
                      static_cast<size_t>(p.W) * sizeof(T));
    }
  });
  return true;
}

// grad_input for stride 1 and few output channels (K < kCol2imMinK, LeNet c1), where the col2im
// dot products are too short: the forward pass on grad_output zero-padded by d*(R-1) - p, with
// the weight transposed (C <-> K) and flipped. It multiplies the padding too, but keeps C
// outputs in registers over K*R*S taps (0.48 ms for LeNet c1 against 0.72 ms for the GEMM).
template <class V>
bool plane_bwd_input_full(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  if (p.groups != 1 || is_depthwise(p) || p.sh != 1 || p.sw != 1 || p.K >= kCol2imMinK) return false;
  Conv2dShape q = p;
  q.C = p.K, q.H = p.OH, q.W = p.OW, q.K = p.C, q.OH = p.H, q.OW = p.W;
  q.ph = p.dh * (p.R - 1) - p.ph, q.pw = p.dw * (p.S - 1) - p.pw;
  if (q.ph < 0 || q.pw < 0 || !is_small_plane<V>(q)) return false;
  const int64_t R = p.R, S = p.S, C = p.C;
  // weight of the transposed conv at (c, (k*R + r)*S + s): w[k][c][R-1-r][S-1-s]
  return plane_fwd_any<V>(
      q, gy,
      [&](int64_t c, int64_t t) {
        const int64_t k = t / (R * S), rs = t % (R * S);
        return w[(k * C + c) * R * S + (R * S - 1 - rs)];
      },
      nullptr, gx, false);
}

// Weight gradient over a small plane: KA output channels x TB taps of vector accumulators stay in
// registers across all the positions of a batch of images (a short 8 x 8 output is only 8
// vectors per image; batching B images makes the dot product B times longer).
template <class V, int KA>
bool plane_bwd_weight_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                           typename V::T* gb) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int TB = KA == 1 ? 8 : kAccRegs<V> / KA;  // 8, 12 or 24 accumulators
  const int64_t CRS = p.C * p.R * p.S, N = V::N, nvec = ceil_div(p.OW, N);
  const int64_t Kpad = round_up(p.K, KA), CRSpad = round_up(CRS, TB);
  const PlaneGeo g = PlaneGeo::make<V>(p, p.OH);
  const int64_t nposi = p.OH * nvec;  // output vectors per image
  // Fixed reduction split over images (the sum order never depends on the thread count). 8
  // parts, not weight_splits' 16: longer batches per part pay more (LeNet c2 grad_weight
  // 0.445 -> 0.37 ms with 8 images of 64 vectors per batch) than the coarser balance costs.
  const int64_t parts = imin(p.N, 8);
  const int64_t per_img = p.C * g.chan + Kpad * nposi * N;
  // Images per batch: >= 64 positions per dot product, within 128 KiB of plane + gradient.
  const int64_t B = imax(1, imin(imin(ceil_div(64, nposi), ceil_div(p.N, parts)),
                                 (128 * 1024) / (per_img * static_cast<int64_t>(sizeof(T)))));
  const int nt = plan_threads(parts, p.N * p.OH * p.OW * p.K * CRS);

  auto layout = [&](Arena& a, T*& plane, T*& gyp, PlanePos*& pos, T*& acc, T*& bacc) {
    plane = a.take<T>(B * p.C * g.chan);
    gyp = a.take<T>(Kpad * B * nposi * N);
    pos = a.take<PlanePos>(B * nposi);
    acc = a.take<T>(Kpad * CRSpad * N);
    bacc = a.take<T>(Kpad * N);
  };
  Arena measure;
  {
    T *pl, *gp, *ac, *ba;
    PlanePos* ps;
    layout(measure, pl, gp, ps, ac, ba);
  }
  Arena shared;
  T* partial = shared.take<T>(parts * p.K * (CRS + 1));
  int64_t* toff = shared.take<int64_t>(CRSpad);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  partial = rebase(ws, partial), toff = rebase(ws, toff);
  g.tap_offsets(p, toff);
  for (int64_t t = CRS; t < CRSpad; ++t) toff[t] = 0;  // padding taps: any valid offset

  run_parallel(nt, parts, [&](int64_t ub, int64_t ue, int tid) {
    Arena a{ws.thread(tid), 0};
    T *plane, *gyp, *acc, *bacc;
    PlanePos* pos;
    layout(a, plane, gyp, pos, acc, bacc);
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t n0 = u * p.N / parts, n1 = (u + 1) * p.N / parts;
      fill_zero(acc, Kpad * CRSpad * N);
      fill_zero(bacc, Kpad * N);
      for (int64_t nb = n0; nb < n1; nb += B) {
        const int64_t nb1 = imin(nb + B, n1), bn = nb1 - nb, npos = bn * nposi;
        for (int64_t i = 0; i < bn; ++i) {
          g.fill<V>(p, x + (nb + i) * p.C * p.H * p.W, 0, plane + i * p.C * g.chan);
          for (int64_t oh = 0; oh < p.OH; ++oh)
            for (int64_t v = 0; v < nvec; ++v)
              pos[(i * p.OH + oh) * nvec + v].src = i * p.C * g.chan + oh * p.sh * g.rowlen + v * N;
        }
        // gyp[k][q] (q = (i*OH + oh)*nvec + v): grad_output vectors, zero past OW and for k >= K.
        for (int64_t k = 0; k < Kpad; ++k)
          for (int64_t i = 0; i < bn; ++i)
            for (int64_t oh = 0; oh < p.OH; ++oh) {
              T* d = gyp + ((k * bn + i) * p.OH + oh) * nvec * N;
              if (k < p.K)
                fill_padded(d, gy + (((nb + i) * p.K + k) * p.OH + oh) * p.OW, 0, p.OW, nvec * N);
              else
                fill_zero(d, nvec * N);
            }
        for (int64_t k = 0; k < p.K; ++k) {
          R s = V::load(bacc + k * N);
          for (int64_t q = 0; q < npos; ++q) s = V::fma(V::set1(T(1)), V::load(gyp + (k * npos + q) * N), s);
          V::store(bacc + k * N, s);
        }
        for (int64_t k0 = 0; k0 < Kpad; k0 += KA)
          for (int64_t t0 = 0; t0 < CRSpad; t0 += TB) {
            R c[KA][TB];
            for (int ka = 0; ka < KA; ++ka)
              for (int tb = 0; tb < TB; ++tb) c[ka][tb] = V::load(acc + ((k0 + ka) * CRSpad + t0 + tb) * N);
            const T* xb[TB];
            for (int tb = 0; tb < TB; ++tb) xb[tb] = plane + toff[t0 + tb];
            const T* ab = gyp + k0 * npos * N;
            for (int64_t q = 0; q < npos; ++q) {
              R av[KA];
              for (int ka = 0; ka < KA; ++ka) av[ka] = V::load(ab + (ka * npos + q) * N);
              const int64_t o = pos[q].src;
#pragma GCC unroll 12
              for (int tb = 0; tb < TB; ++tb) {
                const R bv = V::load(xb[tb] + o);
#pragma GCC unroll 8
                for (int ka = 0; ka < KA; ++ka) c[ka][tb] = V::fma(av[ka], bv, c[ka][tb]);
              }
            }
            for (int ka = 0; ka < KA; ++ka)
              for (int tb = 0; tb < TB; ++tb) V::store(acc + ((k0 + ka) * CRSpad + t0 + tb) * N, c[ka][tb]);
          }
      }
      for (int64_t k = 0; k < p.K; ++k) {
        T* out = partial + (u * p.K + k) * (CRS + 1);
        reduce_lanes<V>(acc + k * CRSpad * N, CRS, out);
        reduce_lanes<V>(bacc + k * N, 1, out + CRS);
      }
    }
  });
  sum_parts(partial, parts, p.K * (CRS + 1), CRS + 1, p.K, CRS, gw, gb);
  return true;
}

// Beyond the small-plane limits the weight gradient still beats the GEMM path's with few output
// channels (K <= 16), the padded image up to the relaxed bound (4 MiB): measured by
// bench/conv_weight_grad_choice.py, 2 threads, 3x3 layers with 8-32 input channels on 16-56 px planes 1.1-2.3x on AVX2
// and 2-3.4x on AVX-512. At K = 32 the two are even. 1x1 layers stay on the GEMM path: there AVX2's
// GEMM is 2x faster than this kernel, and on AVX-512, where this kernel beat the 512-bit GEMM by
// 1.4-2x, the AVX-512 build runs float32 ones on the AVX2 GEMM's 16-channel tiles instead
// (conv2d_avx512.cpp): MobileNetV2's 32 -> 16 on 112 x 112 at batch 8 1.33x (Xeon, 1 thread,
// CPU=1 T=1 bench/ab_builds.py pw32_16_112_n8 bwd_weight). float64 1x1 keeps this kernel on AVX-512.
template <class V>
bool is_wide_plane_bwd_weight(const Conv2dShape& p) {
  constexpr bool wide_f64 = sizeof(typename V::R) == 64 && sizeof(typename V::T) == 8;
  return p.groups == 1 && p.K <= 16 && (p.R * p.S > 1 || wide_f64) &&
         plane_bytes(p, V::N, sizeof(typename V::T), p.OH) <= kPlaneMaxBytes * kRelaxedPlaneBytesFactor;
}

template <class V>
bool plane_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                      typename V::T* gb) {
  if (!(is_small_plane<V>(p) || is_wide_plane_bwd_weight<V>(p)) || is_depthwise(p)) return false;
  switch (plane_block_k(p.K)) {
    case 1: return plane_bwd_weight_impl<V, 1>(p, x, gy, gw, gb);
    case 2: return plane_bwd_weight_impl<V, 2>(p, x, gy, gw, gb);
    case 3: return plane_bwd_weight_impl<V, 3>(p, x, gy, gw, gb);
    case 6: return plane_bwd_weight_impl<V, 6>(p, x, gy, gw, gb);
    default: return plane_bwd_weight_impl<V, 4>(p, x, gy, gw, gb);
  }
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
