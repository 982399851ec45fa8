// Plain scalar reference for max_pool2d forward/backward (PyTorch semantics: NaN propagates,
// the first maximum in scan order wins, padding never wins).
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/parallel.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

template <typename T>
void fwd(const Pool2dShape& p, const T* x, T* y, int64_t* idx) {
  parallel_for(p.N * p.C, p.OH * p.OW * p.kh * p.kw, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const T* xp = x + nc * p.H * p.W;
      for (int64_t oh = 0; oh < p.OH; ++oh)
        for (int64_t ow = 0; ow < p.OW; ++ow) {
          const int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
          T best = -std::numeric_limits<T>::infinity();
          int64_t bi = -1;
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t ih = h0 + i * p.dh;
            if (ih < 0 || ih >= p.H) continue;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t iw = w0 + j * p.dw;
              if (iw < 0 || iw >= p.W) continue;
              const T v = xp[ih * p.W + iw];
              if (bi < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
                best = v;
                bi = ih * p.W + iw;
              }
            }
          }
          const int64_t o = nc * p.OH * p.OW + oh * p.OW + ow;
          y[o] = best;
          if (idx) idx[o] = bi;
        }
    }
  });
}

template <typename T>
void bwd(const Pool2dShape& p, const T* gy, const int64_t* idx, T* gx) {
  parallel_for(p.N * p.C, p.OH * p.OW, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      T* gxp = gx + nc * p.H * p.W;
      std::fill(gxp, gxp + p.H * p.W, T(0));
      const T* gyp = gy + nc * p.OH * p.OW;
      const int64_t* ip = idx + nc * p.OH * p.OW;
      for (int64_t o = 0; o < p.OH * p.OW; ++o) gxp[ip[o]] += gyp[o];
    }
  });
}

}  // namespace

bool maxpool2d_fwd_f32_ref(const Pool2dShape& p, const float* x, float* y, int64_t* idx) {
  fwd(p, x, y, idx);
  return true;
}
bool maxpool2d_fwd_f64_ref(const Pool2dShape& p, const double* x, double* y, int64_t* idx) {
  fwd(p, x, y, idx);
  return true;
}
bool maxpool2d_bwd_f32_ref(const Pool2dShape& p, const float* gy, const int64_t* idx, float* gx) {
  bwd(p, gy, idx, gx);
  return true;
}
bool maxpool2d_bwd_f64_ref(const Pool2dShape& p, const double* gy, const int64_t* idx, double* gx) {
  bwd(p, gy, idx, gx);
  return true;
}

}  // namespace cnnfast
