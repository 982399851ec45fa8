// Plain scalar reference for dwchain_fwd (dwchain.h): the three stages one after another on whole
// planes of one image, each output a sum in order (expand and project: over the channels, bias
// last; depthwise: bias first, then the taps row by row).
#include <vector>

#include "common/parallel.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

template <typename T>
T act(const ChainAct& a, T v) {
  if (a.kind == kChainNone) return v;
  if (a.kind == kChainRelu) return v < T(0) ? T(0) : v;  // NaN stays NaN
  T t = v * T(a.a) + T(a.b);
  t = T(a.lo) > t ? T(a.lo) : t;
  t = T(a.hi) < t ? T(a.hi) : t;
  return a.kind == kChainHardswish ? v * t : t;
}

template <typename T>
void fwd(const DwChain& p, const T* x, const T* we, const T* be, const T* wd, const T* bd, const T* wp, const T* bp,
         T* y) {
  const int64_t C = p.C, E = p.E, K = p.K, HW = p.H * p.W, OHW = p.OH * p.OW, R = p.R;
  parallel_for(p.N, E * (C * HW + R * R * OHW) + K * E * OHW, [&](int64_t nb, int64_t ne) {
    std::vector<T> ex(p.expand ? E * HW : 0), dw(p.project ? E * OHW : 0);
    for (int64_t n = nb; n < ne; ++n) {
      const T* xn = x + n * C * HW;
      const T* in = xn;
      if (p.expand) {
        for (int64_t e = 0; e < E; ++e)
          for (int64_t i = 0; i < HW; ++i) {
            T s = T(0);
            for (int64_t c = 0; c < C; ++c) s += we[e * C + c] * xn[c * HW + i];
            ex[e * HW + i] = act(p.ea, be ? s + be[e] : s);
          }
        in = ex.data();
      }
      T* out = p.project ? dw.data() : y + n * K * OHW;
      for (int64_t e = 0; e < E; ++e)
        for (int64_t oh = 0; oh < p.OH; ++oh)
          for (int64_t ow = 0; ow < p.OW; ++ow) {
            T s = bd ? bd[e] : T(0);
            for (int64_t r = 0; r < R; ++r) {
              const int64_t ih = oh * p.stride - p.pad + r;
              if (ih < 0 || ih >= p.H) continue;
              for (int64_t q = 0; q < R; ++q) {
                const int64_t iw = ow * p.stride - p.pad + q;
                if (iw >= 0 && iw < p.W) s += wd[(e * R + r) * R + q] * in[e * HW + ih * p.W + iw];
              }
            }
            out[e * OHW + oh * p.OW + ow] = act(p.da, s);
          }
      if (p.project) {
        T* yn = y + n * K * OHW;
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < OHW; ++i) {
            T s = T(0);
            for (int64_t e = 0; e < E; ++e) s += wp[k * E + e] * dw[e * OHW + i];
            yn[k * OHW + i] = act(p.pa, bp ? s + bp[k] : s);
          }
      }
    }
  });
}

}  // namespace

bool dwchain_fwd_f32_ref(const DwChain& p, const float* x, const float* we, const float* be, const float* wd,
                         const float* bd, const float* wp, const float* bp, float* y) {
  fwd(p, x, we, be, wd, bd, wp, bp, y);
  return true;
}
bool dwchain_fwd_f64_ref(const DwChain& p, const double* x, const double* we, const double* be, const double* wd,
                         const double* bd, const double* wp, const double* bp, double* y) {
  fwd(p, x, we, be, wd, bd, wp, bp, y);
  return true;
}

}  // namespace cnnfast
