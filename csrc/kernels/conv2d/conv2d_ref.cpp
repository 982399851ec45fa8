// Plain scalar reference for conv2d: the direct definition, one loop nest per pass, no blocking.
// Every optimised conv2d kernel is tested against these (tests/test_kernels_conv2d.py).
#include <algorithm>
#include <cstring>

#include "common/parallel.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

template <typename T>
void fwd(const Conv2dShape& p, const T* x, const T* w, const T* bias, T* y, bool relu) {
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  parallel_for(p.N * p.K, p.OH * p.OW * Cg * p.R * p.S, [&](int64_t b, int64_t e) {
    for (int64_t nk = b; nk < e; ++nk) {
      const int64_t n = nk / p.K, k = nk % p.K, g = k / Kg;
      const T* xg = x + (n * p.C + g * Cg) * p.H * p.W;
      const T* wk = w + k * Cg * p.R * p.S;
      T* yk = y + nk * p.OH * p.OW;
      for (int64_t oh = 0; oh < p.OH; ++oh)
        for (int64_t ow = 0; ow < p.OW; ++ow) {
          T acc = bias ? bias[k] : T(0);
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < p.R; ++r) {
              const int64_t ih = oh * p.sh - p.ph + r * p.dh;
              if (ih < 0 || ih >= p.H) continue;
              for (int64_t s = 0; s < p.S; ++s) {
                const int64_t iw = ow * p.sw - p.pw + s * p.dw;
                if (iw < 0 || iw >= p.W) continue;
                acc += xg[(c * p.H + ih) * p.W + iw] * wk[(c * p.R + r) * p.S + s];
              }
            }
          yk[oh * p.OW + ow] = (relu && acc < T(0)) ? T(0) : acc;
        }
    }
  });
}

template <typename T>
void bwd_input(const Conv2dShape& p, const T* gy, const T* w, T* gx) {
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  // Parallel over (n, c): each thread owns whole gradient planes, so there are no races.
  parallel_for(p.N * p.C, p.OH * p.OW * Kg * p.R * p.S, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / p.C, ci = nc % p.C, g = ci / Cg, c = ci % Cg;
      T* gxp = gx + nc * p.H * p.W;
      std::fill(gxp, gxp + p.H * p.W, T(0));
      for (int64_t kk = 0; kk < Kg; ++kk) {
        const int64_t k = g * Kg + kk;
        const T* gyk = gy + (n * p.K + k) * p.OH * p.OW;
        const T* wkc = w + (k * Cg + c) * p.R * p.S;
        for (int64_t oh = 0; oh < p.OH; ++oh)
          for (int64_t ow = 0; ow < p.OW; ++ow) {
            const T go = gyk[oh * p.OW + ow];
            for (int64_t r = 0; r < p.R; ++r) {
              const int64_t ih = oh * p.sh - p.ph + r * p.dh;
              if (ih < 0 || ih >= p.H) continue;
              for (int64_t s = 0; s < p.S; ++s) {
                const int64_t iw = ow * p.sw - p.pw + s * p.dw;
                if (iw < 0 || iw >= p.W) continue;
                gxp[ih * p.W + iw] += go * wkc[r * p.S + s];
              }
            }
          }
      }
    }
  });
}

template <typename T>
void bwd_weight(const Conv2dShape& p, const T* x, const T* gy, T* gw, T* gb) {
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  // Parallel over output channels k: each thread owns gw[k] and gb[k].
  parallel_for(p.K, p.N * p.OH * p.OW * Cg * p.R * p.S, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const int64_t g = k / Kg;
      T* gwk = gw + k * Cg * p.R * p.S;
      std::fill(gwk, gwk + Cg * p.R * p.S, T(0));
      T bsum = T(0);
      for (int64_t n = 0; n < p.N; ++n) {
        const T* gyk = gy + (n * p.K + k) * p.OH * p.OW;
        const T* xg = x + (n * p.C + g * Cg) * p.H * p.W;
        for (int64_t oh = 0; oh < p.OH; ++oh)
          for (int64_t ow = 0; ow < p.OW; ++ow) {
            const T go = gyk[oh * p.OW + ow];
            bsum += go;
            for (int64_t c = 0; c < Cg; ++c)
              for (int64_t r = 0; r < p.R; ++r) {
                const int64_t ih = oh * p.sh - p.ph + r * p.dh;
                if (ih < 0 || ih >= p.H) continue;
                for (int64_t s = 0; s < p.S; ++s) {
                  const int64_t iw = ow * p.sw - p.pw + s * p.dw;
                  if (iw < 0 || iw >= p.W) continue;
                  gwk[(c * p.R + r) * p.S + s] += go * xg[(c * p.H + ih) * p.W + iw];
                }
              }
          }
      }
      if (gb) gb[k] = bsum;
    }
  });
}

}  // namespace

bool conv2d_fwd_f32_ref(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y, bool relu) {
  fwd(p, x, w, b, y, relu);
  return true;
}
bool conv2d_fwd_f64_ref(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y, bool relu) {
  fwd(p, x, w, b, y, relu);
  return true;
}
bool conv2d_bwd_input_f32_ref(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  bwd_input(p, gy, w, gx);
  return true;
}
bool conv2d_bwd_input_f64_ref(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  bwd_input(p, gy, w, gx);
  return true;
}
bool conv2d_bwd_weight_f32_ref(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  bwd_weight(p, x, gy, gw, gb);
  return true;
}
bool conv2d_bwd_weight_f64_ref(const Conv2dShape& p, const double* x, const double* gy, double* gw, double* gb) {
  bwd_weight(p, x, gy, gw, gb);
  return true;
}

}  // namespace cnnfast
