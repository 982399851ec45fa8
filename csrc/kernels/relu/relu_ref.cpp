// Plain scalar reference for relu forward/backward.
#include "common/parallel.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

template <typename T>
void fwd(int64_t n, const T* x, T* y) {
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN < 0 is false: NaN kept
  });
}

template <typename T>
void bwd(int64_t n, const T* gy, const T* x, T* gx) {
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) gx[i] = x[i] <= T(0) ? T(0) : gy[i];  // as torch threshold_backward (NaN passes)
  });
}

}  // namespace

bool relu_fwd_f32_ref(int64_t n, const float* x, float* y) {
  fwd(n, x, y);
  return true;
}
bool relu_fwd_f64_ref(int64_t n, const double* x, double* y) {
  fwd(n, x, y);
  return true;
}
bool relu_bwd_f32_ref(int64_t n, const float* gy, const float* x, float* gx) {
  bwd(n, gy, x, gx);
  return true;
}
bool relu_bwd_f64_ref(int64_t n, const double* gy, const double* x, double* gx) {
  bwd(n, gy, x, gx);
  return true;
}

}  // namespace cnnfast
