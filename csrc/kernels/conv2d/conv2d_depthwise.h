// Depthwise conv2d (groups == C, any depth multiplier M = K / C): MobileNet/EfficientNet layers
// and the image filters of cnnfast.filters. Two engines: rows (the row engine of
// conv2d_direct_common.h, for rows of more than 4 vectors) and whole planes (the plane engine of
// conv2d_plane.h, for short rows). Entry points: dw_fwd_any, dw_bwd_input_any, dw_bwd_weight_any.
#pragma once
#include "kernels/conv2d/conv2d_direct_common.h"
#include "kernels/conv2d/conv2d_dw_lanes.h"
#include "kernels/conv2d/conv2d_dw_rows.h"
#include "kernels/conv2d/conv2d_plane.h"

namespace cnnfast {
namespace direct {
namespace {

// ------------------------------------------------------------------------------------------
// Depthwise: groups == C, one input channel per group, M = K / C outputs per channel.
// ------------------------------------------------------------------------------------------

template <class V>
bool dw_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
            typename V::T* y, bool relu) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S;
  const XRows g = XRows::make<V>(p);
  const int64_t planes = p.N * p.K, rc = row_chunks(planes, p.OH), units = planes * rc;
  const int nt = plan_threads(units, planes * p.OH * p.OW * RS);

  auto layout = [&](Arena& a, T*& rows, int64_t*& tags, const T**& src, const T**& wt) {
    rows = a.take<T>(g.L * g.rowlen);
    tags = a.take<int64_t>(g.L);
    src = a.take<const T*>(RS);
    wt = a.take<const T*>(RS);
  };
  Arena measure;
  {
    T* r;
    int64_t* tg;
    const T** s;
    const T** wp;
    layout(measure, r, tg, s, wp);
  }
  Arena shared;
  int64_t* soff = shared.take<int64_t>(p.S);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  soff = rebase(ws, soff);
  g.tap_offsets(p, soff);

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    RowCache<T> cache;
    const T** src;
    const T** wt;
    layout(a, cache.buf, cache.tags, src, wt);
    cache.L = g.L;
    cache.stride = g.rowlen;
    fill_zero(cache.buf, g.L * g.rowlen);
    for (int64_t u = b; u < e; ++u) {
      const int64_t plane = u / rc, chunk = u % rc;
      const int64_t n = plane / p.K, k = plane % p.K, c = k / M;
      const int64_t oh0 = chunk * p.OH / rc, oh1 = (chunk + 1) * p.OH / rc;
      const T* xp = x + (n * p.C + c) * p.H * p.W;
      const T* wk = w + k * RS;
      T* yp = y + plane * p.OH * p.OW;
      const T bk[1] = {bias ? bias[k] : T(0)};
      auto fill = [&](T* dst, int64_t ih) { fill_phased<V>(dst, xp + ih * p.W, p.W, p.pw, p.sw, g.plen, g.need); };
      cache.reset();
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        int64_t ntaps = 0;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.sh - p.ph + r * p.dh;
          if (ih < 0 || ih >= p.H) continue;
          const T* row = cache.get(ih, fill);
          for (int64_t s = 0; s < p.S; ++s) {
            src[ntaps] = row + soff[s];
            wt[ntaps++] = wk + r * p.S + s;
          }
        }
        T* d[1] = {yp + oh * p.OW};
        row_engine<V, 1>(ntaps, src, wt, bk, relu, d, p.OW);
      }
    }
  });
  return true;
}

// grad_input of a depthwise conv. Column P of the padded grad_input row (P = iw + pw) receives
// gy[ow] * w[r][s] for every ow*sw + s*dw == P. Split the columns by phase q = P % sw: in phase q
// only the taps with (s*dw) % sw == q contribute, from ow = P/sw - (s*dw)/sw, so phase q is a
// correlation of the zero-padded grad_output row with those taps -- the row engine again.
template <class V>
bool dw_bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S, N = V::N, sw = p.sw;
  const int64_t smax = (p.S - 1) * p.dw / sw;
  // Phase q covers padded columns P = j*sw + q for j in [jlo(q), jhi(q)], i.e. iw in [0, W).
  auto jlo = [&](int64_t q) { return p.pw >= q ? ceil_div(p.pw - q, sw) : int64_t(0); };
  auto jhi = [&](int64_t q) { return floor_div(p.pw + p.W - 1 - q, sw); };
  int64_t jhi_max = 0, jmax = 0;
  for (int64_t q = 0; q < sw; ++q) jhi_max = imax(jhi_max, jhi(q)), jmax = imax(jmax, jhi(q) - jlo(q) + 1);
  const int64_t glen = round_up(imax(smax + jhi_max + N, smax + p.OW), N) + kOverrun<V>;
  const int64_t L = ring_size(((p.R - 1) * p.dh / p.sh + 1) * M);  // gy rows (oh, m) under one window
  const int64_t tlen = sw > 1 ? jmax : 0;
  const int64_t planes = p.N * p.C, rc = row_chunks(planes, p.H), units = planes * rc;
  const int nt = plan_threads(units, p.N * p.K * p.OH * p.OW * RS);

  auto layout = [&](Arena& a, T*& rows, int64_t*& tags, const T**& src, const T**& wt, T*& tmp, int64_t*& rtap) {
    rows = a.take<T>(L * glen);
    tags = a.take<int64_t>(L);
    src = a.take<const T*>(M * RS);
    wt = a.take<const T*>(M * RS);
    tmp = a.take<T>(sw * tlen);
    rtap = a.take<int64_t>(2 * p.R);
  };
  Arena measure;
  {
    T *r, *tm;
    int64_t *tg, *rt;
    const T** s;
    const T** wp;
    layout(measure, r, tg, s, wp, tm, rt);
  }
  // Per phase q: its column range and its taps s (in order), with their shifts (s*dw) / sw.
  Arena shared;
  int64_t* qlo = shared.take<int64_t>(sw);
  int64_t* qlen = shared.take<int64_t>(sw);
  int64_t* qbeg = shared.take<int64_t>(sw + 1);
  int64_t* qs = shared.take<int64_t>(p.S);
  int64_t* qshift = shared.take<int64_t>(p.S);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  qlo = rebase(ws, qlo), qlen = rebase(ws, qlen), qbeg = rebase(ws, qbeg);
  qs = rebase(ws, qs), qshift = rebase(ws, qshift);
  {
    for (int64_t q = 0; q <= sw; ++q) qbeg[q] = 0;
    for (int64_t s = 0; s < p.S; ++s) ++qbeg[s * p.dw % sw + 1];
    for (int64_t q = 0; q < sw; ++q) qbeg[q + 1] += qbeg[q], qlo[q] = jlo(q), qlen[q] = jhi(q) - jlo(q) + 1;
    // counting sort of the taps by phase (stable: s ascending within a phase)
    for (int64_t q = 0, i = 0; q < sw; ++q)
      for (int64_t s = 0; s < p.S; ++s)
        if (s * p.dw % sw == q) qs[i] = s, qshift[i++] = s * p.dw / sw;
  }

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    RowCache<T> cache;
    const T** src;
    const T** wt;
    T* tmp;
    int64_t* rtap;  // valid (r, oh) pairs of the current row
    layout(a, cache.buf, cache.tags, src, wt, tmp, rtap);
    cache.L = L;
    cache.stride = glen;
    fill_zero(cache.buf, L * glen);
    const T zero[1] = {T(0)};
    for (int64_t u = b; u < e; ++u) {
      const int64_t plane = u / rc, chunk = u % rc;
      const int64_t n = plane / p.C, c = plane % p.C;
      const int64_t ih0 = chunk * p.H / rc, ih1 = (chunk + 1) * p.H / rc;
      auto fill = [&](T* dst, int64_t key) {
        const int64_t oh = key / M, m = key % M;
        fill_padded(dst, gy + ((n * p.K + c * M + m) * p.OH + oh) * p.OW, smax, p.OW, glen - kOverrun<V>);
      };
      cache.reset();
      for (int64_t ih = ih0; ih < ih1; ++ih) {
        T* gxrow = gx + (plane * p.H + ih) * p.W;
        int64_t nr = 0;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t t = ih + p.ph - r * p.dh;  // = oh * sh
          if (t < 0) continue;
          const int64_t oh = p.sh == 1 ? t : t / p.sh;  // (divisions cost as much as a short row)
          if (oh * p.sh != t || oh >= p.OH) continue;
          rtap[2 * nr] = r, rtap[2 * nr + 1] = oh, ++nr;
        }
        for (int64_t q = 0; q < sw; ++q) {
          if (qlen[q] <= 0) continue;
          int64_t ntaps = 0;
          for (int64_t i = 0; i < nr; ++i) {
            const int64_t r = rtap[2 * i], oh = rtap[2 * i + 1];
            for (int64_t m = 0; m < M; ++m) {
              const T* row = cache.get(oh * M + m, fill) + smax + qlo[q];
              const T* wk = w + (c * M + m) * RS + r * p.S;
              for (int64_t k = qbeg[q]; k < qbeg[q + 1]; ++k) {
                src[ntaps] = row - qshift[k];
                wt[ntaps++] = wk + qs[k];
              }
            }
          }
          T* d[1] = {sw == 1 ? gxrow : tmp + q * tlen};
          row_engine<V, 1>(ntaps, src, wt, zero, false, d, qlen[q]);
        }
        if (sw == 2) {  // interleave the phases back: iw = 2j + q - pw holds phase q, column j
          // Vector part: iw = 2j - pw .. 2j - pw + 2N from phase columns j .. j+N of both phases.
          const T* t0 = tmp - qlo[0];
          const T* t1 = tmp + tlen - qlo[1];
          int64_t iw = 0;
          for (; iw < p.W && ((iw + p.pw) & 1); ++iw) gxrow[iw] = t1[(iw + p.pw) >> 1];
          for (; iw + 2 * N <= p.W; iw += 2 * N) {
            const int64_t j = (iw + p.pw) >> 1;
            V::interleave2(t0 + j, t1 + j, gxrow + iw);
          }
          for (; iw < p.W; ++iw) {
            const int64_t P = iw + p.pw;
            gxrow[iw] = (P & 1) ? t1[P >> 1] : t0[P >> 1];
          }
        } else if (sw > 2) {  // column j of phase q is iw = j*sw + q - pw
          for (int64_t q = 0; q < sw; ++q) {
            const T* tq = tmp + q * tlen;
            T* g0 = gxrow + qlo[q] * sw + q - p.pw;
            for (int64_t j = 0; j < qlen[q]; ++j) g0[j * sw] = tq[j];
          }
        }
      }
    }
  });
  return true;
}

template <class V>
bool dw_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                   typename V::T* gb) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  constexpr int TB = 8;  // taps per dot block: 8 accumulators hide the FMA latency (see row_engine)
  const int64_t M = p.K / p.C, RS = p.R * p.S, N = V::N;
  const XRows g = XRows::make<V>(p);
  const int64_t nvec = ceil_div(p.OW, N), vlen = nvec * N;
  const int64_t ntap = RS + 1;      // taps, then the bias "tap" (source row of ones)
  const int64_t tslots = ntap + 1;  // + one dummy slot for padding taps
  const int64_t rows = p.N * p.OH, splits = weight_splits(p.K, rows), units = p.K * splits;
  const int nt = plan_threads(units, rows * p.K * p.OW * RS);

  auto layout = [&](Arena& a, T*& xrows, int64_t*& tags, T*& gyrow, T*& ones, T*& zeros, const T**& src, int64_t*& slot,
                    T*& acc) {
    xrows = a.take<T>(g.L * g.rowlen);
    tags = a.take<int64_t>(g.L);
    gyrow = a.take<T>(vlen);
    ones = a.take<T>(vlen);
    zeros = a.take<T>(vlen);
    src = a.take<const T*>(ntap + TB);
    slot = a.take<int64_t>(ntap + TB);
    acc = a.take<T>(tslots * N);
  };
  Arena measure;
  {
    T *r, *gr, *on, *ze, *ac;
    int64_t *tg, *sl;
    const T** s;
    layout(measure, r, tg, gr, on, ze, s, sl, ac);
  }
  Arena shared;
  T* partial = shared.take<T>(units * ntap);
  int64_t* soff = shared.take<int64_t>(p.S);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  partial = rebase(ws, partial);
  soff = rebase(ws, soff);
  g.tap_offsets(p, soff);

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    RowCache<T> cache;
    T *gyrow, *ones, *zeros, *acc;
    const T** src;
    int64_t* slot;
    layout(a, cache.buf, cache.tags, gyrow, ones, zeros, src, slot, acc);
    cache.L = g.L;
    cache.stride = g.rowlen;
    fill_zero(cache.buf, g.L * g.rowlen);
    for (int64_t i = 0; i < vlen; ++i) ones[i] = T(1), zeros[i] = T(0);
    for (int64_t u = b; u < e; ++u) {
      const int64_t k = u / splits, sp = u % splits, c = k / M;
      const int64_t r0 = sp * rows / splits, r1 = (sp + 1) * rows / splits;
      fill_zero(acc, tslots * N);
      cache.reset();
      auto fill = [&](T* dst, int64_t key) {  // key = n*H + ih
        fill_phased<V>(dst, x + ((key / p.H) * p.C + c) * p.H * p.W + (key % p.H) * p.W, p.W, p.pw, p.sw, g.plen,
                       g.need);
      };
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t n = row / p.OH, oh = row % p.OH;
        fill_padded(gyrow, gy + ((n * p.K + k) * p.OH + oh) * p.OW, 0, p.OW, vlen);
        int64_t ntaps = 0;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.sh - p.ph + r * p.dh;
          if (ih < 0 || ih >= p.H) continue;
          const T* xr = cache.get(n * p.H + ih, fill);
          for (int64_t s = 0; s < p.S; ++s) {
            src[ntaps] = xr + soff[s];
            slot[ntaps++] = r * p.S + s;
          }
        }
        if (gb) src[ntaps] = ones, slot[ntaps++] = RS;
        while (ntaps % TB) src[ntaps] = zeros, slot[ntaps++] = tslots - 1;
        const T* arow[1] = {gyrow};
        for (int64_t t = 0; t < ntaps; t += TB) dot_block<V, 1, TB>(arow, src + t, slot + t, nvec, acc, tslots);
      }
      reduce_lanes<V>(acc, ntap, partial + u * ntap);
    }
  });
  // Sum the parts in order (fixed by weight_splits, not by the thread count).
  sum_parts(partial, splits, ntap, splits * ntap, p.K, RS, gw, gb);
  return true;
}

// ------------------------------------------------------------------------------------------
// Depthwise on whole (chunks of) planes: the plane engine with one output channel and 8 vector
// positions that may span rows. The row engine keeps a short row (28 columns of a MobileNet
// 28 x 28 map: 4 vectors) in 4 accumulator chains that wait on the FMA latency; here 8
// independent chains run over the 9 taps whatever the row width.
// ------------------------------------------------------------------------------------------
// PlaneGeo::fill for planes whose padding is already zero (the buffer zeroed once per thread,
// and every vector of a phase outside the image left as it is): column stride 1 copies only the
// image columns of each row, vector by vector; stride 2 deinterleaves them with masked loads.
// Rows outside the image are zeroed unless `zero_rows_clean` (every unit fills the same rows:
// whole planes), when no unit ever writes them.
template <class V>
void dw_fill(const PlaneGeo& g, const Conv2dShape& p, const typename V::T* xn, int64_t hp0, typename V::T* dst,
             bool zero_rows_clean) {
  if (p.sw > 2) return g.fill<V>(p, xn, hp0, dst);
  const int64_t n = imin(p.W, g.plen - p.pw);
  for (int64_t c = 0; c < p.C; ++c)
    for (int64_t i = 0; i < g.rows; ++i) {
      const int64_t ih = hp0 + i - p.ph;
      typename V::T* d = dst + c * g.chan + i * g.rowlen;
      if (ih < 0 || ih >= p.H) {
        if (!zero_rows_clean) fill_zero(d, g.rowlen);
      } else if (p.sw == 2)
        deinterleave_row<V>(d, d + g.plen, xn + (c * p.H + ih) * p.W, p.W, p.pw, g.plen);
      else if (n > 0)
        copy_row<V>(d + p.pw, xn + (c * p.H + ih) * p.W, n);
    }
}

// nplanes independent single-output convolutions of shape q (q.K == 1): plane i reads q.C
// channels at src(i), taps weighted by wts(i)[t] (t = (c*R + r)*S + s), writes dst(i).
template <class V, typename Src, typename Wts, typename Bias, typename Dst>
bool plane_single(const Conv2dShape& q, int64_t nplanes, const Src& src, const Wts& wts, const Bias& bias,
                  const Dst& dst, bool relu) {
  using T = typename V::T;
  const int64_t CRS = q.C * q.R * q.S, N = V::N, nvec = ceil_div(q.OW, N);
  int64_t rc = row_chunks(nplanes, q.OH);  // then more chunks until one chunk's plane fits
  while (rc < q.OH && plane_bytes(q, N, sizeof(T), ceil_div(q.OH, rc)) > kPlaneMaxBytes) ++rc;
  const int64_t units = nplanes * rc, crows = ceil_div(q.OH, rc);
  const PlaneGeo g = PlaneGeo::make<V>(q, crows);
  const int nt = plan_threads(units, nplanes * q.OH * q.OW * CRS);
  auto layout = [&](Arena& a, T*& plane, PlanePos*& pos) {
    plane = a.take<T>(q.C * g.chan);
    pos = a.take<PlanePos>(crows * nvec);
  };
  Arena measure;
  {
    T* pl;
    PlanePos* ps;
    layout(measure, pl, ps);
  }
  Arena shared;
  int64_t* toff = shared.take<int64_t>(CRS);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  toff = rebase(ws, toff);
  g.tap_offsets(q, toff);
  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T* plane;
    PlanePos* pos;
    layout(a, plane, pos);
    fill_zero(plane, q.C * g.chan);  // padding columns (dw_fill)
    for (int64_t u = b; u < e; ++u) {
      const int64_t i = u / rc, chunk = u % rc;
      const int64_t oh0 = chunk * q.OH / rc, oh1 = (chunk + 1) * q.OH / rc;
      dw_fill<V>(g, q, src(i), oh0 * q.sh, plane, rc == 1);
      int64_t npos = 0;
      for (int64_t oh = oh0; oh < oh1; ++oh)
        npos += run_positions(pos + npos, (oh - oh0) * q.sh * g.rowlen, oh * q.OW, q.OW, N);
      const T bk[1] = {bias(i)};
      T* d[1] = {dst(i)};
      plane_positions<V, 1, 8>(CRS, toff, wts(i), bk, relu, plane, pos, npos, d);
    }
  });
  return true;
}

template <class V>
bool dw_plane_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                  typename V::T* y, bool relu) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  Conv2dShape q = p;
  q.C = 1, q.K = 1, q.groups = 1;
  if (plane_bytes(q, V::N, sizeof(T), 1) > kPlaneMaxBytes) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S;
  return plane_single<V>(
      q, p.N * p.K, [&](int64_t i) { return x + ((i / p.K) * p.C + (i % p.K) / M) * p.H * p.W; },
      [&](int64_t i) { return w + (i % p.K) * RS; }, [&](int64_t i) { return bias ? bias[i % p.K] : T(0); },
      [&](int64_t i) { return y + i * p.OH * p.OW; }, relu);
}

// grad_input, stride 1: per input channel c, the forward pass over its M grad_output channels
// zero-padded by d*(R-1) - p, with the M filters flipped (see plane_bwd_input_full).
template <class V>
bool dw_plane_bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  using T = typename V::T;
  if (!is_depthwise(p) || p.sh != 1 || p.sw != 1) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S;
  Conv2dShape q = p;
  q.C = M, q.H = p.OH, q.W = p.OW, q.K = 1, q.OH = p.H, q.OW = p.W, q.groups = 1;
  q.ph = p.dh * (p.R - 1) - p.ph, q.pw = p.dw * (p.S - 1) - p.pw;
  if (q.ph < 0 || q.pw < 0 || plane_bytes(q, V::N, sizeof(T), 1) > kPlaneMaxBytes) return false;
  T* wf = flipped_filters(w, p.K, RS);
  if (!wf) return false;
  const bool ok = plane_single<V>(
      q, p.N * p.C, [&](int64_t i) { return gy + ((i / p.C) * p.K + (i % p.C) * M) * p.OH * p.OW; },
      [&](int64_t i) { return static_cast<const T*>(wf + (i % p.C) * M * RS); }, [](int64_t) { return T(0); },
      [&](int64_t i) { return gx + i * p.H * p.W; }, false);
  std::free(wf);
  return ok;
}

// grad_input, any stride, on whole planes: split grad_input into its sh x sw phases (ih + ph ==
// j*sh + a, iw + pw == i*sw + b). Phase (a, b) only receives the taps with r*dh % sh == a and
// s*dw % sw == b, from gy[oh = j - r*dh/sh][ow = i - s*dw/sw]: a stride-1 correlation of the
// zero-padded grad_output plane, run by the plane engine (8 accumulator chains) into a phase
// buffer, then interleaved into grad_input. The row engine's version (dw_bwd_input) runs one
// short phase row (14 columns of an EfficientNet 28 x 28 map: one vector) at a time.
template <class V>
bool dw_plane_bwd_input_phased(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w,
                               typename V::T* gx) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S, N = V::N, sh = p.sh, sw = p.sw, nph = sh * sw;
  const int64_t PT = (p.R - 1) * p.dh / sh, PL = (p.S - 1) * p.dw / sw;  // largest tap shifts
  // Rows j in [jlo(a), jhi(a)] of phase a are the grad_input rows ih = j*sh + a - ph in [0, H).
  auto lo = [](int64_t pad, int64_t a, int64_t st) { return pad >= a ? ceil_div(pad - a, st) : int64_t(0); };
  auto hi = [](int64_t pad, int64_t len, int64_t a, int64_t st) { return floor_div(pad + len - 1 - a, st); };
  int64_t ihi_max = 0, jhi_max = 0;
  for (int64_t b = 0; b < sw; ++b) ihi_max = imax(ihi_max, hi(p.pw, p.W, b, sw));
  for (int64_t a = 0; a < sh; ++a) jhi_max = imax(jhi_max, hi(p.ph, p.H, a, sh));
  // Padded grad_output planes (M of them): gy[m][oh][ow] at row oh + PT, column ow + PL, zero
  // elsewhere; rows and columns reach every (shifted) read of an output vector.
  const int64_t rowlen = PL + imax(p.OW, ihi_max + N), prow = PT + imax(p.OH, jhi_max + 1);
  const int64_t chan = prow * rowlen, plane_elems = M * chan + N;
  if (plane_elems * static_cast<int64_t>(sizeof(T)) > kPlaneMaxBytes) return false;
  int64_t npos = 0, tmp_elems = 0;
  for (int64_t a = 0; a < sh; ++a)
    for (int64_t b = 0; b < sw; ++b) {
      const int64_t rows = hi(p.ph, p.H, a, sh) - lo(p.ph, a, sh) + 1,
                    cols = hi(p.pw, p.W, b, sw) - lo(p.pw, b, sw) + 1;
      if (rows > 0 && cols > 0) npos += rows * ceil_div(cols, N), tmp_elems += rows * cols;
    }
  const int64_t ntap = M * RS;
  const int64_t planes = p.N * p.C;
  const int nt = plan_threads(planes, p.N * p.K * p.OH * p.OW * RS);
  auto layout = [&](Arena& a, T*& plane, T*& tmp, T*& wt, T*& last) {
    plane = a.take<T>(plane_elems);
    tmp = a.take<T>(tmp_elems + 2 * N);
    wt = a.take<T>(ntap);
    last = a.take<T>(2 * N);
  };
  Arena measure;
  {
    T *pl, *tm, *wp, *la;
    layout(measure, pl, tm, wp, la);
  }
  // Per phase: its taps (offsets toff, weight index widx into the channel's M*R*S weights, in
  // phase order), its positions (into the phase buffer) and its row/column range.
  Arena shared;
  int64_t* toff = shared.take<int64_t>(ntap);
  int64_t* widx = shared.take<int64_t>(ntap);
  int64_t* tbeg = shared.take<int64_t>(nph + 1);
  PlanePos* pos = shared.take<PlanePos>(npos);
  int64_t* pbeg = shared.take<int64_t>(nph + 1);
  int64_t* geo = shared.take<int64_t>(5 * nph);  // jlo, rows, ilo, cols, tmp offset
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  toff = rebase(ws, toff), widx = rebase(ws, widx), tbeg = rebase(ws, tbeg);
  pos = rebase(ws, pos), pbeg = rebase(ws, pbeg), geo = rebase(ws, geo);
  {
    int64_t t = 0, ip = 0, to = 0;
    for (int64_t a = 0; a < sh; ++a)
      for (int64_t b = 0; b < sw; ++b) {
        const int64_t ph_ = a * sw + b;
        tbeg[ph_] = t, pbeg[ph_] = ip;
        for (int64_t m = 0; m < M; ++m)
          for (int64_t r = 0; r < p.R; ++r)
            for (int64_t s = 0; s < p.S; ++s)
              if (r * p.dh % sh == a && s * p.dw % sw == b) {
                toff[t] = m * chan + (PT - r * p.dh / sh) * rowlen + (PL - s * p.dw / sw);
                widx[t++] = (m * p.R + r) * p.S + s;
              }
        const int64_t jlo = lo(p.ph, a, sh), rows = imax(0, hi(p.ph, p.H, a, sh) - jlo + 1);
        const int64_t ilo = lo(p.pw, b, sw), cols = imax(0, hi(p.pw, p.W, b, sw) - ilo + 1);
        int64_t* gq = geo + 5 * ph_;
        gq[0] = jlo, gq[1] = rows, gq[2] = ilo, gq[3] = cols, gq[4] = to;
        if (cols > 0)
          for (int64_t j = 0; j < rows; ++j)
            ip += run_positions(pos + ip, (jlo + j) * rowlen + ilo, to + j * cols, cols, N);
        if (cols > 0) to += rows * cols;
      }
    tbeg[nph] = t, pbeg[nph] = ip;
  }

  run_parallel(nt, planes, [&](int64_t b0, int64_t e0, int tid) {
    Arena ar{ws.thread(tid), 0};
    T *plane, *tmp, *wt, *last;
    layout(ar, plane, tmp, wt, last);
    fill_zero(plane, plane_elems);  // the padding stays zero: each plane rewrites only its data
    const T zero[1] = {T(0)};
    for (int64_t u = b0; u < e0; ++u) {
      const int64_t n = u / p.C, c = u % p.C;
      const T* gk = gy + (n * p.K + c * M) * p.OH * p.OW;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t oh = 0; oh < p.OH; ++oh)
          copy_row<V>(plane + m * chan + (oh + PT) * rowlen + PL, gk + (m * p.OH + oh) * p.OW, p.OW);
      const T* wc = w + c * M * RS;
      for (int64_t t = 0; t < ntap; ++t) wt[t] = wc[widx[t]];
      T* d[1] = {tmp};
      for (int64_t q = 0; q < nph; ++q) {
        if (pbeg[q + 1] == pbeg[q]) continue;
        if (tbeg[q + 1] == tbeg[q]) {  // no tap reaches this phase: zeros
          const int64_t* gq = geo + 5 * q;
          fill_zero(tmp + gq[4], gq[1] * gq[3]);
          continue;
        }
        plane_positions<V, 1, 8>(tbeg[q + 1] - tbeg[q], toff + tbeg[q], wt + tbeg[q], zero, false, plane, pos + pbeg[q],
                                 pbeg[q + 1] - pbeg[q], d);
      }
      // Interleave: grad_input row ih = j*sh + a - ph, column iw = i*sw + b - pw.
      T* gxp = gx + u * p.H * p.W;
      for (int64_t a = 0; a < sh; ++a) {
        const int64_t* g0 = geo + 5 * (a * sw);
        for (int64_t j = 0; j < g0[1]; ++j) {
          T* gxrow = gxp + (g0[0] + j) * sh * p.W + (a - p.ph) * p.W;
          if (sw == 1) {
            copy_row<V>(gxrow, tmp + g0[4] + j * g0[3], p.W);
          } else if (sw == 2) {  // phase b holds columns iw with (iw + pw) % 2 == b, from i = (iw + pw) / 2
            const int64_t* g1 = g0 + 5;
            const T* t0 = tmp + g0[4] + j * g0[3] - g0[2];
            const T* t1 = tmp + g1[4] + j * g1[3] - g1[2];
            int64_t iw = 0;
            for (; iw < p.W && ((iw + p.pw) & 1); ++iw) gxrow[iw] = t1[(iw + p.pw) >> 1];
            for (; iw + 2 * N <= p.W; iw += 2 * N) {
              const int64_t i = (iw + p.pw) >> 1;
              V::interleave2(t0 + i, t1 + i, gxrow + iw);
            }
            if (iw < p.W) {  // the last 2N columns through a buffer (the phase rows have 2N slack)
              const int64_t i = (iw + p.pw) >> 1;
              V::interleave2(t0 + i, t1 + i, last);
              for (int64_t k = 0; iw + k < p.W; k += N) {
                const int64_t n = imin(N, p.W - iw - k);
                if (n == N)
                  V::store(gxrow + iw + k, V::load(last + k));
                else
                  V::store_n(gxrow + iw + k, V::load(last + k), static_cast<int>(n));
              }
            }
          } else {
            for (int64_t b = 0; b < sw; ++b) {
              const int64_t* gq = geo + 5 * (a * sw + b);
              const T* tq = tmp + gq[4] + j * gq[3];
              T* g = gxrow + gq[2] * sw + b - p.pw;
              for (int64_t i = 0; i < gq[3]; ++i) g[i * sw] = tq[i];
            }
          }
        }
      }
    }
  });
  return true;
}

// Depthwise entries: planes for short rows (at most 4 vectors, where the row engine runs 4 or
// fewer accumulator chains), else rows. Measured, 1 thread: MobileNet 28 x 28 x 256 forward
// 2.95 -> 2.25 ms, grad_input 4.4 -> 2.25 ms; on 112-wide rows the planes lose (2.5 -> 3.4 ms).
inline bool dw_short_rows(int64_t cols, int64_t N) { return ceil_div(cols, N) <= 4; }
template <class V>
bool dw_fwd_any(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                typename V::T* y, bool relu) {
  if (dw_lanes_fwd<V>(p, x, w, bias, y, relu)) return true;  // small planes: channels as lanes
  if (dw_rows_fwd<V>(p, x, w, bias, y, relu)) return true;   // stride 1: row blocks in place
  return (dw_short_rows(p.OW, V::N) && dw_plane_fwd<V>(p, x, w, bias, y, relu)) || dw_fwd<V>(p, x, w, bias, y, relu);
}
template <class V>
bool dw_bwd_input_any(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  if (dw_lanes_bwd_input<V>(p, gy, w, gx)) return true;
  if (dw_rows_bwd_input<V>(p, gy, w, gx)) return true;
  if (p.sh == 1 && p.sw == 1)
    return (dw_short_rows(p.W, V::N) && dw_plane_bwd_input<V>(p, gy, w, gx)) || dw_bwd_input<V>(p, gy, w, gx);
  return (dw_short_rows(ceil_div(p.W, p.sw), V::N) && dw_plane_bwd_input_phased<V>(p, gy, w, gx)) ||
         dw_bwd_input<V>(p, gy, w, gx);
}

// Depthwise weight gradient on whole planes (short rows): per output channel, TB tap
// accumulators (all 9 of a 3x3 filter) stay in registers over every vector of the plane.
template <class V, int TB>
bool dw_plane_bwd_weight_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                              typename V::T* gb) {
  using T = typename V::T;
  using R = typename V::R;
  Conv2dShape q = p;
  q.C = 1, q.K = 1, q.groups = 1;
  if (plane_bytes(q, V::N, sizeof(T), p.OH) > kPlaneMaxBytes) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S, RSpad = round_up(RS, TB), N = V::N;
  const int64_t nvec = ceil_div(p.OW, N), npos = p.OH * nvec;
  const PlaneGeo g = PlaneGeo::make<V>(q, p.OH);
  const int64_t splits = weight_splits(p.K, p.N), units = p.K * splits;
  const int nt = plan_threads(units, p.N * p.K * p.OH * p.OW * RS);
  auto layout = [&](Arena& a, T*& plane, T*& gyp, T*& acc) {
    plane = a.take<T>(g.chan);
    gyp = a.take<T>(npos * N);
    acc = a.take<T>((RSpad + 1) * N);  // taps, then grad_bias
  };
  Arena measure;
  {
    T *pl, *gp, *ac;
    layout(measure, pl, gp, ac);
  }
  Arena shared;
  int64_t* toff = shared.take<int64_t>(RSpad);
  int64_t* pos = shared.take<int64_t>(npos);
  T* partial = shared.take<T>(units * (RS + 1));
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  toff = rebase(ws, toff), pos = rebase(ws, pos), partial = rebase(ws, partial);
  g.tap_offsets(q, toff);
  for (int64_t t = RS; t < RSpad; ++t) toff[t] = 0;  // padding taps: any valid offset
  for (int64_t oh = 0; oh < p.OH; ++oh)
    for (int64_t v = 0; v < nvec; ++v) pos[oh * nvec + v] = oh * p.sh * g.rowlen + v * N;

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *plane, *gyp, *acc;
    layout(a, plane, gyp, acc);
    fill_zero(plane, g.chan);  // padding columns (dw_fill)
    fill_zero(gyp, npos * N);  // columns past OW
    for (int64_t u = b; u < e; ++u) {
      const int64_t k = u / splits, sp = u % splits, c = k / M;
      const int64_t n0 = sp * p.N / splits, n1 = (sp + 1) * p.N / splits;
      fill_zero(acc, (RSpad + 1) * N);
      for (int64_t n = n0; n < n1; ++n) {
        dw_fill<V>(g, q, x + (n * p.C + c) * p.H * p.W, 0, plane, true);
        const T* gk = gy + (n * p.K + k) * p.OH * p.OW;
        for (int64_t oh = 0; oh < p.OH; ++oh) copy_row<V>(gyp + oh * nvec * N, gk + oh * p.OW, p.OW);
        {
          R s = V::load(acc + RSpad * N);
          const R one = V::set1(T(1));
          for (int64_t i = 0; i < npos; ++i) s = V::fma(one, V::load(gyp + i * N), s);
          V::store(acc + RSpad * N, s);
        }
        for (int64_t t0 = 0; t0 < RSpad; t0 += TB) {
          R cacc[TB];
          const T* xb[TB];
          for (int tb = 0; tb < TB; ++tb) cacc[tb] = V::load(acc + (t0 + tb) * N), xb[tb] = plane + toff[t0 + tb];
          for (int64_t i = 0; i < npos; ++i) {
            const R av = V::load(gyp + i * N);
            const int64_t o = pos[i];
            for (int tb = 0; tb < TB; ++tb) cacc[tb] = V::fma(av, V::load(xb[tb] + o), cacc[tb]);
          }
          for (int tb = 0; tb < TB; ++tb) V::store(acc + (t0 + tb) * N, cacc[tb]);
        }
      }
      reduce_lanes<V>(acc, RS, partial + u * (RS + 1));
      reduce_lanes<V>(acc + RSpad * N, 1, partial + u * (RS + 1) + RS);
    }
  });
  sum_parts(partial, splits, RS + 1, splits * (RS + 1), p.K, RS, gw, gb);  // in order (fixed by weight_splits)
  return true;
}

// 9 accumulators for a 3x3 filter (no padding taps), else blocks of 8.
template <class V>
bool dw_bwd_weight_any(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                       typename V::T* gb) {
  if (dw_lanes_bwd_weight<V>(p, x, gy, gw, gb)) return true;
  if (is_depthwise(p) && dw_short_rows(p.OW, V::N)) {
    const bool done = p.R * p.S == 9 ? dw_plane_bwd_weight_impl<V, 9>(p, x, gy, gw, gb)
                                     : dw_plane_bwd_weight_impl<V, 8>(p, x, gy, gw, gb);
    if (done) return true;
  }
  return dw_bwd_weight<V>(p, x, gy, gw, gb);
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
