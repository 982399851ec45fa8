// Pointwise activation kernels over n contiguous elements (inference activations of MobileNet-style
// networks). y may alias x (in place). With t = min(max(a * x + b, lo), hi):
//   kind 0 (clamp):     y = t            (ReLU6: a=1, b=0, lo=0, hi=6; Hardsigmoid: a=1/6, b=1/2, lo=0, hi=1)
//   kind 1 (hardswish): y = x * t        (Hardswish: a=1/6, b=1/2, lo=0, hi=1)
//   kind 2 (silu):      y = x / (1 + exp(-x))             (a, b, lo, hi unused)
//   kind 3 (gelu):      y = b * x * (1 + erf(a * x))      (GELU, erf form: a = 1/sqrt(2), b = 1/2)
//   kind 4 (erf):       y = erf(a * x)                    (b, lo, hi unused)
//   kind 5 (sigmoid):   y = 1 / (1 + exp(-x))             (a, b, lo, hi unused)
// The ref kernel uses <cmath>'s exp and erf. The float32 SIMD kernels evaluate exp (SiLU) by
// Cephes' range reduction and degree-6 polynomial, flushing exp(-x) to exp(-87.3) = 1.2e-38 below
// (SiLU of x > 87.3 is x, sigmoid 1) and capping it at 88.38 above (exp 2.4e38: SiLU of x < -88.38
// is about x / 2.4e38, sigmoid about 4e-39, -inf gives -inf and 0), and erf
// as a rational function of x clamped to [-4, 4] (the one of Eigen/XLA: at most 3.4e-7 from the
// exact erf, ~6 ulp near +-1); float64 SIMD kernels decline kinds 2-4 (ref runs).
// NaN in x gives NaN in y. Same contract as conv2d.h: raw pointers, no allocation, no throwing;
// a SIMD kernel may decline (return false) and the ref kernel runs.
#pragma once
#include <cstdint>

namespace cnnfast {

enum PointwiseKind : int {
  kPointwiseClamp = 0,
  kPointwiseHardswish = 1,
  kPointwiseSilu = 2,
  kPointwiseGelu = 3,
  kPointwiseErf = 4,
  kPointwiseSigmoid = 5
};

template <typename T>
using pointwise_fwd_sig = bool(int64_t n, const T* x, T* y, int kind, T a, T b, T lo, T hi);

}  // namespace cnnfast
