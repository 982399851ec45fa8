// Plain scalar reference for the pointwise activations (pointwise.h).
#include <cmath>

#include "common/parallel.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

template <typename T>
inline T clamp1(T t, T lo, T hi) {
  t = lo > t ? lo : t;  // NaN > ... is false: NaN kept
  return hi < t ? hi : t;
}

template <typename T>
void fwd(int64_t n, const T* x, T* y, int kind, T a, T b, T lo, T hi) {
  parallel_for(n, 4, [&](int64_t s, int64_t e) {
    if (kind == kPointwiseClamp)
      for (int64_t i = s; i < e; ++i) y[i] = clamp1(x[i] * a + b, lo, hi);
    else if (kind == kPointwiseHardswish)
      for (int64_t i = s; i < e; ++i) y[i] = x[i] * clamp1(x[i] * a + b, lo, hi);
    else
      for (int64_t i = s; i < e; ++i) y[i] = x[i] / (T(1) + std::exp(-x[i]));  // exp overflow -> inf -> -0/+0
  });
}

}  // namespace

bool pointwise_fwd_f32_ref(int64_t n, const float* x, float* y, int kind, float a, float b, float lo, float hi) {
  fwd(n, x, y, kind, a, b, lo, hi);
  return true;
}
bool pointwise_fwd_f64_ref(int64_t n, const double* x, double* y, int kind, double a, double b, double lo, double hi) {
  fwd(n, x, y, kind, a, b, lo, hi);
  return true;
}

}  // namespace cnnfast
