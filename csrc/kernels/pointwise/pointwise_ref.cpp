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

// float32 SiLU and sigmoid: exp's argument capped where the SIMD kernels cap it (pointwise.h), so
// x < -88.38 gives the same tiny number and -inf gives -inf (SiLU) / 4e-39 (sigmoid) on every ISA
// (NaN stays NaN); float64
// uncapped (exp overflows to inf: x / inf = -0, and NaN at -inf)
inline float silu_arg(float v) { return v > 88.3762626647949f ? 88.3762626647949f : v; }
inline double silu_arg(double v) { return v; }

template <typename T>
void fwd(int64_t n, const T* x, T* y, int kind, T a, T b, T lo, T hi) {
  parallel_for(n, 4, [&](int64_t s, int64_t e) {
    if (kind == kPointwiseClamp)
      for (int64_t i = s; i < e; ++i) y[i] = clamp1(x[i] * a + b, lo, hi);
    else if (kind == kPointwiseHardswish)
      for (int64_t i = s; i < e; ++i) y[i] = x[i] * clamp1(x[i] * a + b, lo, hi);
    else if (kind == kPointwiseSilu)
      for (int64_t i = s; i < e; ++i) y[i] = x[i] / (T(1) + std::exp(silu_arg(-x[i])));
    else if (kind == kPointwiseLeaky)
      for (int64_t i = s; i < e; ++i) y[i] = x[i] > T(0) ? x[i] : a * x[i];  // NaN: a * NaN
    else if (kind == kPointwiseSigmoid)
      for (int64_t i = s; i < e; ++i) y[i] = T(1) / (T(1) + std::exp(silu_arg(-x[i])));
    else if (kind == kPointwiseGelu)
      for (int64_t i = s; i < e; ++i) y[i] = b * x[i] * (T(1) + std::erf(a * x[i]));
    else
      for (int64_t i = s; i < e; ++i) y[i] = std::erf(a * x[i]);
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
