// Pointwise activation kernels over n contiguous elements (inference activations of MobileNet-style
// networks). y may alias x (in place). With t = min(max(a * x + b, lo), hi):
//   kind 0 (clamp):     y = t            (ReLU6: a=1, b=0, lo=0, hi=6; Hardsigmoid: a=1/6, b=1/2, lo=0, hi=1)
//   kind 1 (hardswish): y = x * t        (Hardswish: a=1/6, b=1/2, lo=0, hi=1)
//   kind 2 (silu):      y = x / (1 + exp(-x))   (a, b, lo, hi unused)
// NaN in x gives NaN in y. Same contract as conv2d.h: raw pointers, no allocation, no throwing;
// a SIMD kernel may decline (return false) and the ref kernel runs.
#pragma once
#include <cstdint>

namespace cnnfast {

enum PointwiseKind : int { kPointwiseClamp = 0, kPointwiseHardswish = 1, kPointwiseSilu = 2 };

template <typename T>
using pointwise_fwd_sig = bool(int64_t n, const T* x, T* y, int kind, T a, T b, T lo, T hi);

}  // namespace cnnfast
