// Pointwise activation kernels over n contiguous elements (inference activations of MobileNet-style
// networks). y may alias x (in place). With t = min(max(a * x + b, lo), hi):
//   kind 0 (clamp):     y = t            (ReLU6: a=1, b=0, lo=0, hi=6; Hardsigmoid: a=1/6, b=1/2, lo=0, hi=1)
//   kind 1 (hardswish): y = x * t        (Hardswish: a=1/6, b=1/2, lo=0, hi=1)
//   kind 2 (silu):      y = x / (1 + exp(-x))             (a, b, lo, hi unused)
//   kind 3 (gelu):      y = b * x * (1 + erf(a * x))      (GELU, erf form: a = 1/sqrt(2), b = 1/2)
//   kind 4 (erf):       y = erf(a * x)                    (b, lo, hi unused)
//   kind 5 (sigmoid):   y = 1 / (1 + exp(-x))             (a, b, lo, hi unused)
//   kind 6 (leaky):     y = x > 0 ? x : a * x             (LeakyReLU; b, lo, hi unused)
// The ref kernel uses <cmath>'s exp and erf. The float32 SIMD kernels evaluate exp(-x) (SiLU,
// sigmoid) by Cephes' range reduction and degree-6 polynomial, with -x clamped to [-87.3, 88.38]:
// for x > 87.3 SiLU is x and sigmoid 1; for x < -88.38 exp is 2.4e38, SiLU about x / 2.4e38 and
// sigmoid about 4e-39 (-inf gives -inf and 4e-39; the float32 ref caps alike). erf is a rational
// function of x clamped to [-4, 4] (Eigen's / XLA's; within 4e-7 of the exact erf, the tests'
// bound). float64 SIMD kernels decline kinds 2-5 (ref runs).
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
  kPointwiseSigmoid = 5,
  kPointwiseLeaky = 6
};

template <typename T>
using pointwise_fwd_sig = bool(int64_t n, const T* x, T* y, int kind, T a, T b, T lo, T hi);

}  // namespace cnnfast
