// Small-C dense conv2d (groups == 1, C <= kSmallCMaxChannels: LeNet c1, RGB stems): the
// reduction C*R*S is too short for a GEMM, so several output channels share each input load.
#pragma once
#include "kernels/conv2d/conv2d_direct_common.h"

namespace cnnfast {
namespace direct {
namespace {

// ------------------------------------------------------------------------------------------
// Small-C dense: groups == 1, C <= kSmallCMaxChannels. Several output channels share each input
// load (KB of them in registers), taps run over (c, r, s).
// ------------------------------------------------------------------------------------------
// Up to 4 input channels (RGB(A), grey): beyond that C*R*S is long enough for the GEMM kernels.
constexpr int64_t kSmallCMaxChannels = 4;
// sc_bwd_weight declines from this K (see there): 32 with 512-bit vectors, 33 with 256-bit ones.
template <class V>
constexpr int64_t kSmallCBwdWeightMaxK = sizeof(typename V::R) == 64 ? 32 : 33;

inline bool is_small_c(const Conv2dShape& p) { return p.groups == 1 && p.C <= kSmallCMaxChannels; }

// Output-channel block: 4 or 6, whichever pads K less. Both keep 12 accumulators; ties go to 4
// (4 channels x 3 column vectors: 7 loads per 12 FMAs, against 8 for 6 x 2).
inline int small_c_block(int64_t K) { return round_up(K, 6) - K < round_up(K, 4) - K ? 6 : 4; }

template <class V, int KB>
bool sc_fwd_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                 typename V::T* y, bool relu) {
  using T = typename V::T;
  const int64_t CRS = p.C * p.R * p.S;
  const int64_t Kpad = round_up(p.K, KB), nkb = Kpad / KB;
  const XRows g = XRows::make<V>(p);
  const int64_t rc = row_chunks(p.N, p.OH), units = p.N * rc;
  const int nt = plan_threads(units, p.N * p.OH * p.OW * p.K * CRS);

  auto layout = [&](Arena& a, T*& rows, int64_t*& tags, const T**& src, int64_t*& tfull, const T**& wt) {
    rows = a.take<T>(p.C * g.L * g.rowlen);
    tags = a.take<int64_t>(p.C * g.L);
    src = a.take<const T*>(CRS);
    tfull = a.take<int64_t>(CRS);
    wt = a.take<const T*>(CRS);
  };
  Arena measure;
  {
    T* r;
    int64_t *tg, *tf;
    const T **s, **wp;
    layout(measure, r, tg, s, tf, wp);
  }
  Arena shared;
  T* wpk = shared.take<T>(nkb * CRS * KB);  // [block][c*R*S + r*S + s][kb]
  T* bpk = shared.take<T>(Kpad);
  int64_t* soff = shared.take<int64_t>(p.S);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  wpk = rebase(ws, wpk);
  bpk = rebase(ws, bpk);
  soff = rebase(ws, soff);
  g.tap_offsets(p, soff);
  for (int64_t k = 0; k < Kpad; ++k) {
    bpk[k] = (bias && k < p.K) ? bias[k] : T(0);
    for (int64_t t = 0; t < CRS; ++t) wpk[((k / KB) * CRS + t) * KB + k % KB] = k < p.K ? w[k * CRS + t] : T(0);
  }

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T* rows;
    int64_t *tags, *tfull;
    const T **src, **wt;
    layout(a, rows, tags, src, tfull, wt);
    fill_zero(rows, p.C * g.L * g.rowlen);
    RowCache<T> cache[kSmallCMaxChannels];
    for (int64_t c = 0; c < p.C; ++c) {
      cache[c].buf = rows + c * g.L * g.rowlen;
      cache[c].tags = tags + c * g.L;
      cache[c].L = g.L;
      cache[c].stride = g.rowlen;
    }
    for (int64_t u = b; u < e; ++u) {
      const int64_t n = u / rc, chunk = u % rc;
      const int64_t oh0 = chunk * p.OH / rc, oh1 = (chunk + 1) * p.OH / rc;
      for (int64_t c = 0; c < p.C; ++c) cache[c].reset();
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        int64_t ntaps = 0;
        for (int64_t c = 0; c < p.C; ++c) {
          const T* xc = x + (n * p.C + c) * p.H * p.W;
          auto fill = [&](T* dst, int64_t ih) { fill_phased<V>(dst, xc + ih * p.W, p.W, p.pw, p.sw, g.plen, g.need); };
          for (int64_t r = 0; r < p.R; ++r) {
            const int64_t ih = oh * p.sh - p.ph + r * p.dh;
            if (ih < 0 || ih >= p.H) continue;
            const T* row = cache[c].get(ih, fill);
            for (int64_t s = 0; s < p.S; ++s) {
              src[ntaps] = row + soff[s];
              tfull[ntaps++] = (c * p.R + r) * p.S + s;
            }
          }
        }
        for (int64_t blk = 0; blk < nkb; ++blk) {
          for (int64_t t = 0; t < ntaps; ++t) wt[t] = wpk + (blk * CRS + tfull[t]) * KB;
          T* d[KB];
          for (int kb = 0; kb < KB; ++kb) {
            const int64_t k = blk * KB + kb;
            d[kb] = k < p.K ? y + ((n * p.K + k) * p.OH + oh) * p.OW : nullptr;
          }
          row_engine<V, KB>(ntaps, src, wt, bpk + blk * KB, relu, d, p.OW);
        }
      }
    }
  });
  return true;
}

template <class V>
bool sc_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
            typename V::T* y, bool relu) {
  if (!is_small_c(p) || is_depthwise(p)) return false;
  return small_c_block(p.K) == 6 ? sc_fwd_impl<V, 6>(p, x, w, bias, y, relu)
                                 : sc_fwd_impl<V, 4>(p, x, w, bias, y, relu);
}

// Weight gradient, small C: vector accumulators acc[k][tap] per work unit, KA output channels x
// TB taps per dot block (12 or 24 accumulators, KA + TB loads per 12 or 24 FMAs). The output rows
// of a unit run in groups of RB rows of one image (>= kScGroupVecs vectors in all) and a block's
// accumulators stay in registers over the whole group: loading and storing them once per row cost
// as much as the FMAs for a short row (LeNet's 28 columns: 2 vectors on AVX-512) and, with many
// output channels (the acc array of a 7x7 stem, 64 x 148 taps, lives in L2), more.
constexpr int64_t kScGroupVecs = 32;

template <class V, int KA, int TB>
inline void dot_rows(const typename V::T* a, int64_t a_k, int64_t a_row, const typename V::T* const* b, int64_t b_row,
                     int64_t nrows, int64_t nvec, typename V::T* acc, int64_t tslots) {
  // acc[(ka*tslots + tb)*N + lane] += sum over rows j < nrows and i < nvec*N of
  //   a[ka*a_k + j*a_row + i] * b[j*b_row + tb][i]
  using R = typename V::R;
  constexpr int N = V::N;
  R c[KA][TB];
  for (int ka = 0; ka < KA; ++ka)
    for (int tb = 0; tb < TB; ++tb) c[ka][tb] = V::load(acc + (ka * tslots + tb) * N);
  for (int64_t j = 0; j < nrows; ++j) {
    const typename V::T* aj = a + j * a_row;
    const typename V::T* const* bj = b + j * b_row;
    for (int64_t i = 0; i < nvec; ++i) {
      R av[KA];
#pragma GCC unroll 8
      for (int ka = 0; ka < KA; ++ka) av[ka] = V::load(aj + ka * a_k + i * N);
#pragma GCC unroll 24
      for (int tb = 0; tb < TB; ++tb) {
        const R bv = V::load(bj[tb] + i * N);
#pragma GCC unroll 8
        for (int ka = 0; ka < KA; ++ka) c[ka][tb] = V::fma(av[ka], bv, c[ka][tb]);
      }
    }
  }
  for (int ka = 0; ka < KA; ++ka)
    for (int tb = 0; tb < TB; ++tb) V::store(acc + (ka * tslots + tb) * N, c[ka][tb]);
}

template <class V, int KA>
bool sc_bwd_weight_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                        typename V::T* gb) {
  using T = typename V::T;
  constexpr int TB = kAccRegs<V> / KA;
  const int64_t CRS = p.C * p.R * p.S, N = V::N;
  const int64_t Kpad = round_up(p.K, KA);
  const int64_t nvec = ceil_div(p.OW, N), vlen = nvec * N;
  const int64_t RB = imin(p.OH, ceil_div(kScGroupVecs, nvec));  // rows per group
  XRows g = XRows::make<V>(p);
  g.L = ring_size((RB - 1) * p.sh + (p.R - 1) * p.dh + 1);  // the input rows under a whole group
  // Taps: CRS, then the bias tap (ones, or zeros without gb), then zero taps up to a multiple of TB.
  const int64_t ntap = CRS + 1, tslots = round_up(ntap, TB);
  const int64_t rows = p.N * p.OH, units = weight_splits(1, rows);
  const int nt = plan_threads(units, rows * p.OW * p.K * CRS);

  auto layout = [&](Arena& a, T*& xrows, int64_t*& tags, T*& gyrows, T*& ones, T*& zeros, const T**& src, T*& acc) {
    xrows = a.take<T>(p.C * g.L * g.rowlen);
    tags = a.take<int64_t>(p.C * g.L);
    gyrows = a.take<T>(Kpad * RB * vlen);  // [k][row in group][column]
    ones = a.take<T>(vlen);
    zeros = a.take<T>(vlen);
    src = a.take<const T*>(RB * tslots);  // [row in group][tap]
    acc = a.take<T>(Kpad * tslots * N);
  };
  Arena measure;
  {
    T *r, *gr, *on, *ze, *ac;
    int64_t* tg;
    const T** s;
    layout(measure, r, tg, gr, on, ze, s, ac);
  }
  Arena shared;
  T* partial = shared.take<T>(units * p.K * ntap);
  int64_t* soff = shared.take<int64_t>(p.S);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  partial = rebase(ws, partial);
  soff = rebase(ws, soff);
  g.tap_offsets(p, soff);

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *xrows, *gyrows, *ones, *zeros, *acc;
    int64_t* tags;
    const T** src;
    layout(a, xrows, tags, gyrows, ones, zeros, src, acc);
    fill_zero(xrows, p.C * g.L * g.rowlen);
    RowCache<T> cache[kSmallCMaxChannels];
    for (int64_t c = 0; c < p.C; ++c) {
      cache[c].buf = xrows + c * g.L * g.rowlen;
      cache[c].tags = tags + c * g.L;
      cache[c].L = g.L;
      cache[c].stride = g.rowlen;
    }
    for (int64_t i = 0; i < vlen; ++i) ones[i] = T(1), zeros[i] = T(0);
    fill_zero(gyrows + p.K * RB * vlen, (Kpad - p.K) * RB * vlen);  // padded channels: zero gradient
    for (int64_t u = b; u < e; ++u) {
      const int64_t r0 = u * rows / units, r1 = (u + 1) * rows / units;
      fill_zero(acc, Kpad * tslots * N);
      for (int64_t c = 0; c < p.C; ++c) cache[c].reset();
      for (int64_t row = r0; row < r1;) {
        const int64_t n = row / p.OH, oh0 = row % p.OH;
        const int64_t nr = imin(imin(RB, r1 - row), p.OH - oh0);  // rows of image n in this group
        for (int64_t k = 0; k < p.K; ++k)
          for (int64_t j = 0; j < nr; ++j)
            fill_padded(gyrows + (k * RB + j) * vlen, gy + ((n * p.K + k) * p.OH + oh0 + j) * p.OW, 0, p.OW, vlen);
        for (int64_t j = 0; j < nr; ++j) {
          const T** sj = src + j * tslots;
          for (int64_t c = 0; c < p.C; ++c) {
            const T* xc = x + (n * p.C + c) * p.H * p.W;
            auto fill = [&](T* dst, int64_t key) {  // key = n*H + ih
              fill_phased<V>(dst, xc + (key % p.H) * p.W, p.W, p.pw, p.sw, g.plen, g.need);
            };
            for (int64_t r = 0; r < p.R; ++r) {
              const int64_t ih = (oh0 + j) * p.sh - p.ph + r * p.dh;
              const bool in = ih >= 0 && ih < p.H;
              const T* xr = in ? cache[c].get(n * p.H + ih, fill) : nullptr;
              for (int64_t s = 0; s < p.S; ++s) sj[(c * p.R + r) * p.S + s] = in ? xr + soff[s] : zeros;
            }
          }
          sj[CRS] = gb ? ones : zeros;
          for (int64_t t = ntap; t < tslots; ++t) sj[t] = zeros;
        }
        for (int64_t k0 = 0; k0 < Kpad; k0 += KA)
          for (int64_t t = 0; t < tslots; t += TB)
            dot_rows<V, KA, TB>(gyrows + k0 * RB * vlen, RB * vlen, vlen, src + t, tslots, nr, nvec,
                                acc + (k0 * tslots + t) * N, tslots);
        row += nr;
      }
      for (int64_t k = 0; k < p.K; ++k) reduce_lanes<V>(acc + k * tslots * N, ntap, partial + (u * p.K + k) * ntap);
    }
  });
  sum_parts(partial, units, p.K * ntap, ntap, p.K, CRS, gw, gb);
  return true;
}

template <class V>
bool sc_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                   typename V::T* gb) {
  if (!is_small_c(p) || is_depthwise(p)) return false;
  // From 32 output channels (AVX-512) or beyond 32 (AVX2) the GEMM path's weight gradient is as
  // fast or faster: 1 thread, CPU time (Xeon), GEMM / this kernel, AVX-512 then AVX2: MobileNetV2
  // stem (K = 32) 0.95x / 1.0-1.05x, AlexNet's 11x11 stem (K = 64) 0.87x / 1.0x, the 7x7/s2 ResNet
  // stem 0.77x / 0.93x, a 3x3 CIFAR stem (K = 64) 0.65x / 0.9-1.1x. Below 32 this kernel is 1.3-10x
  // faster (LeNet's 6, 12, 16, 24; bench/conv_weight_grad_choice.py).
  // Tried for K >= 32 and lost (Xeon, 1 thread, --cpu-time, dense forced past this limit, ms for the
  // ResNet stem N=1 / CIFAR 3x3 stem / AlexNet c1 / MobileNetV2 stem): the blocking here, KA = 4 x
  // TB = 6, 2.5-2.7 / 3.6-4.9 / 7.5-8.3 / 2.5-2.8; KA = 8 x TB = 3 (AVX-512) 3.2-3.3 / 5.1-5.8 /
  // 9.6-9.9 / 3.0-3.5; taps outer, channel blocks inner (the tap rows stay in L1) 2.7-3.4 /
  // 4.2-4.8 / 8.3-8.8 / 2.5-3.7 (AVX2 too: 4-10% slower); GEMM 2.0-3.1 / 2.7-4.0 / 6.8-10.5 / 2.4-3.1.
  if (p.K >= kSmallCBwdWeightMaxK<V> && !relax_heuristics()) return false;
  return small_c_block(p.K) == 6 ? sc_bwd_weight_impl<V, 6>(p, x, gy, gw, gb)
                                 : sc_bwd_weight_impl<V, 4>(p, x, gy, gw, gb);
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
