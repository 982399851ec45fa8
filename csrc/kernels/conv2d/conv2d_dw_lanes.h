// Depthwise conv2d on small output planes with channels as lanes: a block of V::N channels of one image
// is transposed into [h][w][lane] (zero border built in), the R*S per-lane tap vectors stay in
// registers, and each output position is R*S FMAs of unit-stride vector loads (no broadcasts);
// the result is transposed back to NCHW. On 7 x 7 planes a row fills only 7 of 16 AVX-512 lanes,
// so the row and plane engines of conv2d_depthwise.h waste lanes and pay per-plane overhead.
// Depth multiplier M == 1 only (else the callers fall back). Entry: dw_lanes_{fwd,bwd_input,
// bwd_weight}; dw_lanes_applies is the rule.
#pragma once
#include <cstring>
#include <type_traits>

#include "common/static_n.h"
#include "kernels/conv2d/conv2d_direct_common.h"
#include "kernels/conv2d/conv2d_epilogue.h"

namespace cnnfast {
namespace direct {
namespace {

// Small output planes (at most 16 x 16; C >= half a vector). Measured with bench/ab_builds.py
// (1 thread, Xeon, loaded), old engines -> lanes: 7 x 7 outputs 1.4-6x faster on both ISAs; 14 x 14
// 3x3 1.0-1.4x, 5x5 forward/grad_input 1.0-1.2x, but 5x5 grad_weight on 14 x 14 0.65-0.86x, so
// grad_weight passes max_ow = 8 for filters of more than 9 taps.
// The forward's stride-2 layers onto 17..32-wide planes (MobileNet's 56 x 56 -> 28 x 28) take it on
// AVX2 (float32) too: 1.17x-1.32x the row engine's stride-2 kernel (Xeon held to AVX2, 1 thread,
// CPU=1 T=1 bench/ab_builds.py lc_dw64_56s2,lc_dw64_56s2_n1,dw144_56s2_n1,dw5_240_56s2_n1 fwd),
// while on AVX-512 that kernel stays ahead (0.85x-0.98x) and at stride 1 lanes lose on 28 x 28
// (0.86x-0.96x, dw192_28_n1). grad_input at strides > 1 has a wider rule of its own
// (dw_lanes_bwd_input: outputs up to 64 x 64).
inline bool dw_lanes_applies(const Conv2dShape& p, int lanes, int64_t max_ow = 16, int64_t max_oh = 16) {
  return p.groups == p.C && p.K == p.C && 2 * p.C >= lanes && p.OW <= max_ow && p.OH <= max_oh && p.H <= 64 &&
         p.W <= 64;
}

// Forward at stride 1 onto planes of a few rows, up to 128 columns (text-line CNNs: the rapidocr
// text classifier's 5x5 depthwise layers on 2-3 rows of 96): the row engine pays its per-plane
// setup for a handful of output vectors there. Rows: up to 4 with more than 9 taps or on AVX2
// (float32), up to 2 for AVX-512's 3x3. chosen because (Xeon, 1 thread, process CPU time,
// CPU=1 T=1 bench/ab_builds.py ocr_dw5_200_2x96_n16,ocr_dw5_200_2x96_n1,ocr_dw5_88_3x96_n16,
// ocr_dw5_88_3x96_n1,dw5_64_4x100_n8,dw3_32_2x128_n4,dw5_88_6x96_n16,dw3_64_8x96_n8,dw3_64_6x64_n8,
// dw3_64_4x96_n8,dw3_144_3x112_n1 fwd ... 7) 5x5 on 2-4 rows ran 1.11x-1.85x (AVX-512) and
// 1.39x-2.57x (AVX2) the row engine, 3x3 on 2 rows 1.47x / 3.31x, but 3x3 on 3-4 rows 0.85x-1.0x on
// AVX-512 (1.61x-2.35x on AVX2), and 3x3 on 8 rows 0.68x / 0.92x.
inline bool dw_lanes_short_rows(const Conv2dShape& p, int lanes, bool avx2_f32) {
  const int64_t rows = p.R * p.S > 9 || avx2_f32 ? 4 : 2;
  return p.groups == p.C && p.K == p.C && 2 * p.C >= lanes && p.sh == 1 && p.sw == 1 && p.OH <= rows && p.OW <= 128 &&
         p.H <= 8 && p.W <= 128;
}

// Geometry of one channel block: the padded input as [HP][WP][N] (index ((h + top) * WP + w + left) * N).
struct LanesGeo {
  int64_t HP, WP, top, left;
};

// The N x N block of nrows planes (lds apart) x cols values from src, transposed into dst
// ([value][lane], N x N): lanes past nrows and values past cols are zero. Masked loads only, so
// it never reads past a plane's row (the last plane of a tensor included).
template <class V>
CNNFAST_FORCE_INLINE void lanes_tile_in(const typename V::T* src, int64_t lds, int nrows, int cols,
                                        typename V::T* dst) {
  using T = typename V::T;
  constexpr int N = V::N;
  alignas(64) T tile[N * N];
  for (int l = 0; l < N; ++l)
    V::store(tile + l * N, l < nrows ? V::load_part(src + l * lds, 0, cols, T(0)) : V::zero());
  V::transpose(tile, N, dst, N);
}

// Planes c0 .. c0 + nc - 1 (HW values each) as [j][lane] (dst: round_up(HW, N) x N).
template <class V>
void lanes_from_planes(const typename V::T* src, int64_t HW, int nc, typename V::T* dst) {
  constexpr int N = V::N;
  for (int64_t j = 0; j < HW; j += N) {
    const int cols = static_cast<int>(imin(N, HW - j));
    if (cols == N && nc == N)
      V::transpose(src + j, HW, dst + j * N, N);
    else
      lanes_tile_in<V>(src + j, HW, nc, cols, dst + j * N);
  }
}

// Planes c0 .. c0 + nc - 1 of one image (H x W each, contiguous) into the interior of the padded
// lanes buffer; the border is never written. Rows of at least N values: row by row, whole N x N
// blocks transposed straight from the planes (the planes' first read from memory is this pass; a
// staging copy before it had cost 39% of PP-LCNet's 128-channel 3x3/s2 layer), a row's partial
// block through lanes_tile_in. Shorter rows (7 x 7, 14 x 14 on AVX-512): the planes transposed as
// flat runs of N values into tmp (round_up(H * W, N) x N), then placed row by row (per-row
// partial blocks ran 0.82x on 960 x 7 x 7).
template <class V>
void lanes_to_buf(const typename V::T* src, int64_t H, int64_t W, int nc, const LanesGeo& g, typename V::T* buf,
                  typename V::T* tmp) {
  using T = typename V::T;
  constexpr int N = V::N;
  const int64_t HW = H * W;
  if (W < N) {
    lanes_from_planes<V>(src, HW, nc, tmp);
    for (int64_t h = 0; h < H; ++h) {
      T* d = buf + ((h + g.top) * g.WP + g.left) * N;
      const T* t = tmp + h * W * N;
      for (int64_t w = 0; w < W; ++w) V::store(d + w * N, V::load(t + w * N));
    }
    return;
  }
  for (int64_t h = 0; h < H; ++h) {
    T* d = buf + ((h + g.top) * g.WP + g.left) * N;
    const T* s = src + h * W;
    for (int64_t w0 = 0; w0 < W; w0 += N) {
      const int cols = static_cast<int>(imin(N, W - w0));
      if (cols == N && nc == N) {
        V::transpose(s + w0, HW, d + w0 * N, N);
      } else {
        alignas(64) T blk[N * N];
        lanes_tile_in<V>(s + w0, HW, nc, cols, blk);
        for (int j = 0; j < cols; ++j) V::store(d + (w0 + j) * N, V::load(blk + j * N));
      }
    }
  }
}

// Inverse of lanes_from_planes: src[j * N + l] (j < HW; src holds round_up(HW, N) rows) -> plane
// l < nc of dst (HW apart), whole blocks transposed straight into the planes.
template <class V>
void lanes_to_planes(const typename V::T* src, int64_t HW, int nc, typename V::T* dst) {
  using T = typename V::T;
  constexpr int N = V::N;
  for (int64_t j = 0; j < HW; j += N) {
    const int cols = static_cast<int>(imin(N, HW - j));
    if (cols == N && nc == N) {
      V::transpose(src + j * N, N, dst + j, HW);
    } else {
      alignas(64) T tmp[N * N];
      V::transpose(src + j * N, N, tmp, N);
      for (int l = 0; l < nc; ++l) {
        if (cols == N)
          V::store(dst + l * HW + j, V::load(tmp + l * N));
        else
          V::store_n(dst + l * HW + j, V::load(tmp + l * N), cols);  // (n < N only on AVX2)
      }
    }
  }
}

// out[(oh * OW + ow) * N] = act(bias + sum_t in[(oh*sh + r*dh) * WP + ow*sw + s*dw] * wv[t]).
// 3x3: lanes_correlate9. Other filters: the taps summed in order from the bias, a row's outputs in
// blocks of PB positions (up to kLanesBlock, balanced: OW 14 is 7 + 7), one accumulator each: per
// tap one weight load and PB independent FMAs. One output at a time on two chains (the 3x3 form)
// leaves 25 taps as 13 dependent FMAs per output, waiting on the FMA latency. chosen because (AMD
// EPYC Zen 3, AVX2, 1 thread, process CPU time, CPU=1 T=1 bench/ab_builds.py effnet_dw14,effnet_dw,
// dw5_240_28s2_n8,mbv2_dw,mbv2_dw14 fwd,bwd_input, against the two-chain form) 5x5 ran 1.11x-1.22x
// (forward and grad_input), while on 3x3 the blocks ran 0.81x-0.92x of the register-held taps. Not
// measured on AVX-512 (its 32 registers would hold 25 taps; the blocks are used there too).
constexpr int kLanesBlock = 8;

template <class V, int PB, bool S1>
CNNFAST_FORCE_INLINE void lanes_block(const typename V::T* x, int64_t swn, const typename V::T* wv, const int64_t* toff,
                                      int64_t ntap, typename V::R b, bool relu, typename V::T* out, int64_t son) {
  using R = typename V::R;
  constexpr int N = V::N;
  const int64_t step = S1 ? N : swn;
  R acc[PB];
#pragma GCC unroll 8
  for (int j = 0; j < PB; ++j) acc[j] = b;
  for (int64_t t = 0; t < ntap; ++t) {
    const R wt = V::load(wv + t * N);
    const typename V::T* xt = x + toff[t];
#pragma GCC unroll 8
    for (int j = 0; j < PB; ++j) acc[j] = V::fma(V::load(xt + j * step), wt, acc[j]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < PB; ++j) V::store(out + j * son, relu ? V::relu(acc[j]) : acc[j]);
}

// R x S filters with S = 5 or 7 and unit column dilation, the registers holding a block's row of
// input vectors ((PB - 1) * SW + S of them) next to its PB accumulators: per filter row the
// inputs are loaded once and each feeds up to S multiply-adds (lanes_block loads one input per
// multiply-add: 8 loads per 7 FMAs, more than two loads a cycle can serve). The taps are summed in
// the same order as lanes_block's (row-major from the bias): the same results. Xeon, 1 thread,
// CPU=1 T=1 bench/ab_builds.py lc_dw5_14,lc_dw5_14_n1,lc_dw5_512_7,effnet_dw14 fwd,bwd_input: 1.11x-
// 1.17x; stride 2 (lc_dw5_256_14s2, effnet_dw, dw5_240_28s2_n8 fwd) 1.01x-1.09x. AVX2 (16 registers)
// runs it on blocks of 3-5 positions: 1.10x-1.17x at stride 1 (same layers), 1.00x-1.02x at stride 2.
template <class V, int PB, int S, int SW>
CNNFAST_FORCE_INLINE void lanes_block_rows(const typename V::T* x, int64_t row_step, const typename V::T* wv, int64_t R,
                                           typename V::R b, bool relu, typename V::T* out, int64_t son) {
  using Rg = typename V::R;
  constexpr int N = V::N, NI = (PB - 1) * SW + S;
  Rg acc[PB];
#pragma GCC unroll 8
  for (int j = 0; j < PB; ++j) acc[j] = b;
  for (int64_t r = 0; r < R; ++r) {
    const typename V::T* xr = x + r * row_step;
    Rg in[NI];
#pragma GCC unroll 32
    for (int i = 0; i < NI; ++i) in[i] = V::load(xr + i * N);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const Rg w = V::load(wv + (r * S + s) * N);
#pragma GCC unroll 8
      for (int j = 0; j < PB; ++j) acc[j] = V::fma(in[j * SW + s], w, acc[j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < PB; ++j) V::store(out + j * son, relu ? V::relu(acc[j]) : acc[j]);
}

// 3x3: the 9 tap vectors held in registers, one output at a time on two chains (position blocks
// ran 0.81x-0.92x of this on MobileNet's 3x3 layers, same method as above).
template <class V>
void lanes_correlate9(const typename V::T* in, int64_t WP, const typename V::T* wv, const int64_t* toff,
                      typename V::R b, bool relu, int64_t OH, int64_t OW, int64_t sh, int64_t sw, typename V::T* out,
                      int64_t ldo, int64_t so, RangePrefetch& pf) {
  using R = typename V::R;
  constexpr int N = V::N, KT = 9;
  R w[KT];
  int64_t o[KT];
  for (int t = 0; t < KT; ++t) w[t] = V::load(wv + t * N), o[t] = toff[t];
  for (int64_t oh = 0; oh < OH; ++oh) {
    pf.step();
    for (int64_t ow = 0; ow < OW; ++ow) {
      const typename V::T* x = in + (oh * sh * WP + ow * sw) * N;
      R a0 = b, a1 = V::zero();
      for (int t = 0; t + 1 < KT; t += 2)
        a0 = V::fma(V::load(x + o[t]), w[t], a0), a1 = V::fma(V::load(x + o[t + 1]), w[t + 1], a1);
      a0 = V::fma(V::load(x + o[KT - 1]), w[KT - 1], a0);
      a0 = V::add(a0, a1);
      V::store(out + (oh * ldo + ow * so) * N, relu ? V::relu(a0) : a0);
    }
  }
}

template <class V>
void lanes_correlate_any(const typename V::T* in, int64_t WP, const typename V::T* wv, const int64_t* toff,
                         int64_t ntap, const typename V::T* bias, bool relu, int64_t OH, int64_t OW, int64_t sh,
                         int64_t sw, typename V::T* out, int64_t R, int64_t S, int64_t dh, int64_t dw,
                         RangePrefetch&& pf = RangePrefetch(), int64_t ldo = -1, int64_t so = 1) {
  constexpr int N = V::N;
  const typename V::R b = bias ? V::load(bias) : V::zero();
  if (ldo < 0) ldo = OW;  // output position (oh, ow) at out + (oh * ldo + ow * so) * N
  // blk(m, x, o) on each block of m <= maxb output positions of each row (balanced: OW 14 in
  // blocks of at most 8 is 7 + 7), x its first input position (column stride swk), o its output
  auto blocks = [&](int64_t maxb, int64_t swk, const auto& blk) {
    const int64_t nb = ceil_div(OW, maxb), pb = ceil_div(OW, nb);  // blocks of pb, the last shorter
    for (int64_t oh = 0; oh < OH; ++oh) {
      pf.step();
      for (int64_t ow = 0; ow < OW; ow += pb)
        blk(static_cast<int>(imin(pb, OW - ow)), in + (oh * sh * WP + ow * swk) * N, out + (oh * ldo + ow * so) * N);
    }
  };
  {  // a row's input vectors held in registers (lanes_block_rows)
    if (dw == 1 && R * S == ntap && (S == 5 || S == 7) && (sw == 1 || sw == 2)) {
      auto rows = [&](auto sc, auto swc) {
        constexpr int SS = decltype(sc)::value, SW = decltype(swc)::value;
        // positions per block: PB accumulators, (PB - 1) * SW + S inputs and a weight in the
        // registers (32 on AVX-512: up to kLanesBlock; 16 on AVX2: 3 to 5)
        constexpr int kRegs = sizeof(typename V::R) == 64 ? 32 : 16;
        constexpr int PBfit = (kRegs - 1 - SS + SW) / (1 + SW), PBmax = PBfit < kLanesBlock ? PBfit : kLanesBlock;
        blocks(PBmax, SW, [&](int m, const typename V::T* x, typename V::T* o) {
          with_n<PBmax>(m, [&](auto mc) {
            lanes_block_rows<V, decltype(mc)::value, SS, SW>(x, dh * WP * N, wv, R, b, relu, o, so * N);
          });
        });
      };
      using I5 = std::integral_constant<int, 5>;
      using I7 = std::integral_constant<int, 7>;
      using W1 = std::integral_constant<int, 1>;
      using W2 = std::integral_constant<int, 2>;
      if (S == 5)
        sw == 1 ? rows(I5{}, W1{}) : rows(I5{}, W2{});
      else
        sw == 1 ? rows(I7{}, W1{}) : rows(I7{}, W2{});
      return;
    }
  }
  auto row = [&](auto s1c) {
    constexpr bool S1 = decltype(s1c)::value;
    blocks(kLanesBlock, sw, [&](int m, const typename V::T* x, typename V::T* o) {
      with_n<kLanesBlock>(
          m, [&](auto mc) { lanes_block<V, decltype(mc)::value, S1>(x, sw * N, wv, toff, ntap, b, relu, o, so * N); });
    });
  };
  if (ntap == 9)
    lanes_correlate9<V>(in, WP, wv, toff, b, relu, OH, OW, sh, sw, out, ldo, so, pf);
  else if (sw == 1)
    row(std::true_type{});
  else
    row(std::false_type{});
}

// Per-lane tap vectors of channels c0 .. c0 + N - 1 (zero lanes from C on); flip reverses the taps.
template <class V>
void lanes_weights(const typename V::T* w, int64_t C, int64_t c0, int64_t RS, bool flip, typename V::T* wv) {
  constexpr int N = V::N;
  for (int64_t t = 0; t < RS; ++t)
    for (int l = 0; l < N; ++l) wv[t * N + l] = c0 + l < C ? w[(c0 + l) * RS + (flip ? RS - 1 - t : t)] : 0;
}

// Where several images use each channel block's tap vectors (fill(block, dst) writes them), they are
// gathered once per call into shared memory (`taps` vectors per block), not once per block of each
// image: per block, the strided scalar loads cost about half a 7 x 7 block's FMAs. With one image
// each block's taps are used once and gathered as the block starts (no extra parallel region).
template <class V>
struct LanesTaps {
  using T = typename V::T;
  T* all = nullptr;  // shared, or null: per block
  int64_t taps = 0;
  LanesTaps(Arena& shared, const Conv2dShape& p, int64_t ntaps) : taps(ntaps) {
    if (p.N > 1) all = shared.take<T>(ceil_div(p.C, V::N) * ntaps * V::N);
  }
  template <class Fill>
  void gather(const Workspace& ws, int64_t blocks, const Fill& fill) {
    if (!all) return;
    all = rebase(ws, all);
    parallel_for(blocks, taps * V::N, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) fill(b, all + b * taps * V::N);
    });
  }
  // block b's taps: shared, or filled into this thread's `own` now
  template <class Fill>
  const T* of(int64_t b, T* own, const Fill& fill) const {
    if (all) return all + b * taps * V::N;
    fill(b, own);
    return own;
  }
};

// toff[r*S + s]: offset of tap (r, s) in a zero-bordered [h][w][lane] buffer WP columns wide.
inline void lanes_tap_offsets(const Conv2dShape& p, int64_t WP, int64_t lanes, int64_t* toff) {
  for (int64_t r = 0; r < p.R; ++r)
    for (int64_t s = 0; s < p.S; ++s) toff[r * p.S + s] = (r * p.dh * WP + s * p.dw) * lanes;
}

template <class V>
bool dw_lanes_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                  typename V::T* y, bool relu) {
  using T = typename V::T;
  constexpr int N = V::N;
  constexpr bool avx2_f32 = sizeof(typename V::R) == 32 && sizeof(T) == 4;
  const int64_t wide = avx2_f32 && p.sh == 2 && p.sw == 2 ? 32 : 16;
  if (!dw_lanes_applies(p, N, wide, wide) && !dw_lanes_short_rows(p, N, avx2_f32)) return false;
  const int64_t RS = p.R * p.S, HW = p.H * p.W, OHW = p.OH * p.OW;
  const int64_t ldx = round_up(HW, N), ldy = round_up(OHW, N);
  LanesGeo g;
  g.top = p.ph, g.left = p.pw;
  g.HP = imax(p.H + 2 * p.ph, (p.OH - 1) * p.sh + (p.R - 1) * p.dh + 1);
  g.WP = imax(p.W + 2 * p.pw, (p.OW - 1) * p.sw + (p.S - 1) * p.dw + 1);
  const int64_t cb = ceil_div(p.C, N), units = p.N * cb;
  const int nt = plan_threads(units, p.N * p.C * OHW * RS);
  auto layout = [&](Arena& a, T*& t, T*& buf, T*& wv, T*& bv) {
    t = a.take<T>(imax(ldx, ldy) * N);  // the input's flat transpose (short rows), then the output
    buf = a.take<T>(g.HP * g.WP * N);
    wv = a.take<T>(RS * N);
    bv = a.take<T>(N);
  };
  Arena measure;
  {
    T *t, *b, *wv, *bv;
    layout(measure, t, b, wv, bv);
  }
  Arena shared;
  int64_t* toff = shared.take<int64_t>(RS);
  LanesTaps<V> taps(shared, p, RS);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  toff = rebase(ws, toff);
  lanes_tap_offsets(p, g.WP, N, toff);
  auto fill = [&](int64_t blk, T* dst) { lanes_weights<V>(w, p.C, blk * N, RS, false, dst); };
  taps.gather(ws, cb, fill);
  const ActEpi<V> act(false, p.act);

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *t, *buf, *own, *bv;
    layout(a, t, buf, own, bv);
    fill_zero(buf, g.HP * g.WP * N);  // the border stays zero; the interior is rewritten per block
    for (int64_t u = b; u < e; ++u) {
      const int64_t n = u / cb, c0 = (u % cb) * N;
      const int nc = static_cast<int>(imin(N, p.C - c0));
      const T* wv = taps.of(u % cb, own, fill);
      for (int l = 0; l < N; ++l) bv[l] = bias && l < nc ? bias[c0 + l] : T(0);
      lanes_to_buf<V>(x + (n * p.C + c0) * HW, p.H, p.W, nc, g, buf, t);
      const int64_t un = (u + 1) / cb, uc0 = ((u + 1) % cb) * N;  // the next unit's planes
      lanes_correlate_any<V>(
          buf, g.WP, wv, toff, RS, bv, relu, p.OH, p.OW, p.sh, p.sw, t, p.R, p.S, p.dh, p.dw,
          RangePrefetch(u + 1 < e ? x + (un * p.C + uc0) * HW : nullptr, imin(N, p.C - uc0) * HW * int64_t(sizeof(T)),
                        y + (n * p.C + c0) * OHW, nc * OHW * int64_t(sizeof(T)), p.OH));
      act_sweep<V>(t, OHW * N, act);  // the block, in L1
      lanes_to_planes<V>(t, OHW, nc, y + (n * p.C + c0) * OHW);
    }
  });
  p.act_done = true;
  return true;
}

// grad_input with strides > 1 (dilation 1): grad_input's sh x sw phases (rows ih = a + sh*i,
// columns iw = b + sw*j) are each a stride-1 correlation of the zero-bordered grad_output with the
// flipped taps of one residue class (r = (a + ph) mod sh + sh*k, likewise s): lanes_correlate_any
// stores the phase's outputs at their interleaved positions of grad_input's lanes image (output
// strides sh rows, sw columns), which goes back to NCHW as the stride-1 case's.
// This is the plane engine's phase split (conv2d_depthwise.h) with channels as lanes: its phases of
// 7 x 7 values filled 7 of AVX-512's 16 lanes: AVX-512 ran several of these layers at 0.77x-0.96x of AVX2.
// Measured (Xeon, 1 thread, CPU=1 T=1 bench/ab_builds.py effnet_dw,dw5_240_28s2_n8,lc_dw5_256_14s2,
// lc_dw128_28s2,mbv2_dw_s2_28,lc_dw128_28s2_n1,lc_dw64_56s2,lc_dw64_56s2_n1,dw144_56s2_n1,
// dw5_240_56s2_n1,dw96_112s2_n8,dw96_112s2_n1 bwd_input, against the plane and row engines): AVX2
// 1.16x-1.87x, AVX-512 1.30x-2.28x, and AVX-512 1.03x-1.18x of AVX2 on each but 112 -> 56 at batch 1
// (0.97x). (A scatter-add form had lost to the plane engine on AVX2: 5x5 s2 onto 7 x 7, 3.2 -> 7.5 ms.)
struct LanesPhase {
  int64_t a, b;            // its first grad_input row and column
  int64_t r0, nr, s0, ns;  // its taps: r0 + sh*k (k < nr), s0 + sw*l (l < ns)
  int64_t qa, qb;          // grad_output row i + qa - k, column j + qb - l feed its output (i, j)
  int64_t oh, ow;          // its output rows and columns: ceil((H - a) / sh), ceil((W - b) / sw)
  int64_t off;             // its first tap's offset in the lanes buffer (values)
  int64_t tap0;            // index of its first tap in the per-phase tap arrays
};

template <class V>
bool dw_lanes_bwd_input_strided(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w,
                                typename V::T* gx) {
  using T = typename V::T;
  constexpr int N = V::N;
  const int64_t sh = p.sh, sw = p.sw;
  if (p.dh != 1 || p.dw != 1 || sh > 4 || sw > 4) return false;
  const int64_t RS = p.R * p.S, HW = p.H * p.W, OHW = p.OH * p.OW;
  const int64_t ldx = round_up(HW, N), ldy = round_up(OHW, N);
  // Phase (a, b): k-th tap row r0 + sh*k reads grad_output row i + qa - k, qa = (a + ph - r0) / sh;
  // with the taps flipped (k' = nr - 1 - k) that is row i + qa - (nr - 1) + k', so the buffer's top
  // border is the largest nr - 1 - qa (likewise left), its height the largest qa + oh + top.
  LanesPhase ph[16];
  int64_t top = 0, left = 0, nph = 0, taps = 0;
  for (int64_t a = 0; a < sh; ++a)
    for (int64_t b = 0; b < sw; ++b) {
      LanesPhase& f = ph[nph++];
      f.a = a, f.b = b;
      f.r0 = (a + p.ph) % sh, f.s0 = (b + p.pw) % sw;
      f.qa = (a + p.ph - f.r0) / sh, f.qb = (b + p.pw - f.s0) / sw;
      f.nr = f.r0 < p.R ? ceil_div(p.R - f.r0, sh) : 0;
      f.ns = f.s0 < p.S ? ceil_div(p.S - f.s0, sw) : 0;
      f.oh = a < p.H ? ceil_div(p.H - a, sh) : 0;
      f.ow = b < p.W ? ceil_div(p.W - b, sw) : 0;
      f.tap0 = taps;
      taps += f.nr * f.ns;
      top = imax(top, f.nr - 1 - f.qa);
      left = imax(left, f.ns - 1 - f.qb);
    }
  LanesGeo g;
  g.top = top, g.left = left;
  g.HP = p.OH + top, g.WP = p.OW + left;
  for (int64_t i = 0; i < nph; ++i)
    g.HP = imax(g.HP, ph[i].qa + ph[i].oh + top), g.WP = imax(g.WP, ph[i].qb + ph[i].ow + left);
  for (int64_t i = 0; i < nph; ++i) {
    LanesPhase& f = ph[i];
    f.off = ((f.qa - (f.nr - 1) + top) * g.WP + f.qb - (f.ns - 1) + left) * N;
  }
  const int64_t cb = ceil_div(p.C, N), units = p.N * cb;
  const int nt = plan_threads(units, p.N * p.C * OHW * RS);
  auto layout = [&](Arena& ar, T*& t, T*& buf, T*& own) {
    t = ar.take<T>(imax(ldx, ldy) * N);  // grad_output's flat transpose (short rows), then grad_input's lanes
    buf = ar.take<T>(g.HP * g.WP * N);
    own = ar.take<T>(imax(taps, 1) * N);  // the block's taps (one image)
  };
  Arena measure;
  {
    T *t, *bf, *own;
    layout(measure, t, bf, own);
  }
  Arena shared;
  int64_t* toff = shared.take<int64_t>(imax(taps, 1));
  LanesTaps<V> tapv(shared, p, imax(taps, 1));
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  toff = rebase(ws, toff);
  for (int64_t i = 0; i < nph; ++i)
    for (int64_t k = 0; k < ph[i].nr; ++k)
      for (int64_t l = 0; l < ph[i].ns; ++l) toff[ph[i].tap0 + k * ph[i].ns + l] = (k * g.WP + l) * N;
  // the phases' flipped taps: tap (k', l') of phase f is w[r0 + sh*(nr-1-k')][s0 + sw*(ns-1-l')]
  auto fill = [&](int64_t blk, T* dst) {
    const int64_t c0 = blk * N;
    for (int64_t i = 0; i < nph; ++i) {
      const LanesPhase& f = ph[i];
      for (int64_t k = 0; k < f.nr; ++k)
        for (int64_t l = 0; l < f.ns; ++l) {
          const int64_t tap = (f.r0 + sh * (f.nr - 1 - k)) * p.S + f.s0 + sw * (f.ns - 1 - l);
          T* d = dst + (f.tap0 + k * f.ns + l) * N;
          for (int c = 0; c < N; ++c) d[c] = c0 + c < p.C ? w[(c0 + c) * RS + tap] : T(0);
        }
    }
  };
  tapv.gather(ws, cb, fill);

  run_parallel(nt, units, [&](int64_t ub, int64_t ue, int tid) {
    Arena ar{ws.thread(tid), 0};
    T *t, *buf, *own;
    layout(ar, t, buf, own);
    fill_zero(buf, g.HP * g.WP * N);
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t n = u / cb, c0 = (u % cb) * N;
      const int nc = static_cast<int>(imin(N, p.C - c0));
      const T* wv = tapv.of(u % cb, own, fill);
      lanes_to_buf<V>(gy + (n * p.C + c0) * OHW, p.OH, p.OW, nc, g, buf, t);
      for (int64_t i = 0; i < nph; ++i) {
        const LanesPhase& f = ph[i];
        if (f.oh == 0 || f.ow == 0) continue;
        if (f.nr == 0 || f.ns == 0) {
          for (int64_t r = 0; r < f.oh; ++r)
            for (int64_t c = 0; c < f.ow; ++c) V::store(t + ((f.a + sh * r) * p.W + f.b + sw * c) * N, V::zero());
          continue;
        }
        lanes_correlate_any<V>(buf + f.off, g.WP, wv + f.tap0 * N, toff + f.tap0, f.nr * f.ns, nullptr, false, f.oh,
                               f.ow, 1, 1, t + (f.a * p.W + f.b) * N, f.nr, f.ns, 1, 1, RangePrefetch(), sh * p.W, sw);
      }
      lanes_to_planes<V>(t, HW, nc, gx + (n * p.C + c0) * HW);
    }
  });
  return true;
}

// grad_input, stride 1 with padding no wider than the dilated kernel: a correlation of the
// zero-bordered grad_output with the flipped taps, as the forward. Strides > 1:
// dw_lanes_bwd_input_strided.
template <class V>
bool dw_lanes_bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  using T = typename V::T;
  constexpr int N = V::N;
  // strides > 1: outputs up to 64 x 64 (inputs up to 128 x 128); chosen because (Xeon, 1 thread,
  // CPU=1 T=1 bench/ab_builds.py lc_dw64_56s2,lc_dw64_56s2_n1,dw144_56s2_n1,dw5_240_56s2_n1,
  // dw96_112s2_n8,dw96_112s2_n1 bwd_input, against the row and plane engines) 56 -> 28 ran 1.22x-1.27x
  // (AVX2) and 1.34x-1.41x (AVX-512), 112 -> 56 1.52x-1.73x and 1.37x-2.10x
  if (p.sh != 1 || p.sw != 1)
    return p.groups == p.C && p.K == p.C && 2 * p.C >= N && p.OW <= 64 && p.OH <= 64 && p.H <= 128 && p.W <= 128 &&
           dw_lanes_bwd_input_strided<V>(p, gy, w, gx);
  if (!dw_lanes_applies(p, N)) return false;
  const int64_t RS = p.R * p.S, HW = p.H * p.W, OHW = p.OH * p.OW;
  const int64_t ldx = round_up(HW, N), ldy = round_up(OHW, N);
  const int64_t A = (p.R - 1) * p.dh - p.ph, B = (p.S - 1) * p.dw - p.pw;
  if (p.sh != 1 || p.sw != 1 || A < 0 || B < 0) return false;
  LanesGeo g;
  g.top = A, g.left = B;
  g.HP = imax(p.OH + A, p.H + (p.R - 1) * p.dh);
  g.WP = imax(p.OW + B, p.W + (p.S - 1) * p.dw);
  const int64_t cb = ceil_div(p.C, N), units = p.N * cb;
  const int nt = plan_threads(units, p.N * p.C * OHW * RS);
  auto layout = [&](Arena& a, T*& t, T*& buf, T*& wv) {
    t = a.take<T>(imax(ldx, ldy) * N);
    buf = a.take<T>(g.HP * g.WP * N);
    wv = a.take<T>(RS * N);
  };
  Arena measure;
  {
    T *t, *b, *wv;
    layout(measure, t, b, wv);
  }
  Arena shared;
  int64_t* toff = shared.take<int64_t>(RS);
  LanesTaps<V> taps(shared, p, RS);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  toff = rebase(ws, toff);
  lanes_tap_offsets(p, g.WP, N, toff);
  auto fill = [&](int64_t blk, T* dst) { lanes_weights<V>(w, p.C, blk * N, RS, true, dst); };
  taps.gather(ws, cb, fill);

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *t, *buf, *own;
    layout(a, t, buf, own);
    fill_zero(buf, g.HP * g.WP * N);
    for (int64_t u = b; u < e; ++u) {
      const int64_t n = u / cb, c0 = (u % cb) * N;
      const int nc = static_cast<int>(imin(N, p.C - c0));
      const T* wv = taps.of(u % cb, own, fill);
      lanes_to_buf<V>(gy + (n * p.C + c0) * OHW, p.OH, p.OW, nc, g, buf, t);
      const int64_t un = (u + 1) / cb, uc0 = ((u + 1) % cb) * N;  // the next unit's planes
      lanes_correlate_any<V>(buf, g.WP, wv, toff, RS, nullptr, false, p.H, p.W, 1, 1, t, p.R, p.S, p.dh, p.dw,
                             RangePrefetch(u + 1 < e ? gy + (un * p.C + uc0) * OHW : nullptr,
                                           imin(N, p.C - uc0) * OHW * int64_t(sizeof(T)), gx + (n * p.C + c0) * HW,
                                           nc * HW * int64_t(sizeof(T)), p.H));
      lanes_to_planes<V>(t, HW, nc, gx + (n * p.C + c0) * HW);
    }
  });
  return true;
}

// grad_weight (and grad_bias): per-lane accumulators per tap over the positions of each image,
// images split into weight_splits parts summed in a fixed order (independent of the threads).
template <class V, int KT>
void lanes_tap_sums(const typename V::T* buf, int64_t WP, const typename V::T* gyl, const int64_t* toff, int64_t ntap,
                    int64_t OH, int64_t OW, int64_t sh, int64_t sw, typename V::T* acc) {
  using R = typename V::R;
  constexpr int N = V::N;
  if constexpr (KT > 0) {
    R c[KT + 1];
    int64_t o[KT];
    for (int t = 0; t <= KT; ++t) c[t] = V::load(acc + t * N);
    for (int t = 0; t < KT; ++t) o[t] = toff[t];
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const R gv = V::load(gyl + (oh * OW + ow) * N);
        const typename V::T* x = buf + (oh * sh * WP + ow * sw) * N;
        for (int t = 0; t < KT; ++t) c[t] = V::fma(gv, V::load(x + o[t]), c[t]);
        c[KT] = V::add(c[KT], gv);
      }
    for (int t = 0; t <= KT; ++t) V::store(acc + t * N, c[t]);
  } else {
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const R gv = V::load(gyl + (oh * OW + ow) * N);
        const typename V::T* x = buf + (oh * sh * WP + ow * sw) * N;
        for (int64_t t = 0; t < ntap; ++t)
          V::store(acc + t * N, V::fma(gv, V::load(x + toff[t]), V::load(acc + t * N)));
        V::store(acc + ntap * N, V::add(V::load(acc + ntap * N), gv));
      }
  }
}

template <class V>
bool dw_lanes_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                         typename V::T* gb) {
  using T = typename V::T;
  constexpr int N = V::N;
  if (!dw_lanes_applies(p, N, p.R * p.S <= 9 ? 16 : 8)) return false;
  const int64_t RS = p.R * p.S, HW = p.H * p.W, OHW = p.OH * p.OW;
  const int64_t ldx = round_up(HW, N), ldy = round_up(OHW, N);
  LanesGeo g;
  g.top = p.ph, g.left = p.pw;
  g.HP = imax(p.H + 2 * p.ph, (p.OH - 1) * p.sh + (p.R - 1) * p.dh + 1);
  g.WP = imax(p.W + 2 * p.pw, (p.OW - 1) * p.sw + (p.S - 1) * p.dw + 1);
  const int64_t cb = ceil_div(p.C, N), splits = weight_splits(cb, p.N), units = cb * splits;
  const int nt = plan_threads(units, p.N * p.C * OHW * RS);
  auto layout = [&](Arena& a, T*& t, T*& gyl, T*& buf) {
    t = a.take<T>(ldx * N);
    gyl = a.take<T>(ldy * N);
    buf = a.take<T>(g.HP * g.WP * N);
  };
  Arena measure;
  {
    T *t, *gl, *b;
    layout(measure, t, gl, b);
  }
  Arena shared;
  int64_t* toff = shared.take<int64_t>(RS);
  T* partial = shared.take<T>(units * (RS + 1) * N);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  toff = rebase(ws, toff), partial = rebase(ws, partial);
  lanes_tap_offsets(p, g.WP, N, toff);

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *t, *gyl, *buf;
    layout(a, t, gyl, buf);
    fill_zero(buf, g.HP * g.WP * N);
    for (int64_t u = b; u < e; ++u) {
      const int64_t blk = u / splits, sp = u % splits, c0 = blk * N;
      const int64_t n0 = sp * p.N / splits, n1 = (sp + 1) * p.N / splits;
      const int nc = static_cast<int>(imin(N, p.C - c0));
      T* acc = partial + u * (RS + 1) * N;
      fill_zero(acc, (RS + 1) * N);
      for (int64_t n = n0; n < n1; ++n) {
        lanes_to_buf<V>(x + (n * p.C + c0) * HW, p.H, p.W, nc, g, buf, t);
        lanes_from_planes<V>(gy + (n * p.C + c0) * OHW, OHW, nc, gyl);
        switch (RS) {
          case 9: lanes_tap_sums<V, 9>(buf, g.WP, gyl, toff, RS, p.OH, p.OW, p.sh, p.sw, acc); break;
          case 25: lanes_tap_sums<V, 25>(buf, g.WP, gyl, toff, RS, p.OH, p.OW, p.sh, p.sw, acc); break;
          default: lanes_tap_sums<V, 0>(buf, g.WP, gyl, toff, RS, p.OH, p.OW, p.sh, p.sw, acc);
        }
      }
    }
  });
  for (int64_t c = 0; c < p.C; ++c) {
    const int64_t blk = c / N, l = c % N;
    for (int64_t t = 0; t <= RS; ++t) {
      T s = 0;
      for (int64_t sp = 0; sp < splits; ++sp) s += partial[((blk * splits + sp) * (RS + 1) + t) * N + l];
      if (t < RS)
        gw[c * RS + t] = s;
      else if (gb)
        gb[c] = s;
    }
  }
  return true;
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
