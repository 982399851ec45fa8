// relu kernels over n contiguous elements. y may alias x (in-place). Gradient is 0 where x <= 0
// (0 at exactly 0, as torch.relu; NaN x passes the gradient, as torch) and NaN in x gives NaN in y. Same contract as
// conv2d.h.
#pragma once
#include <cstdint>

namespace cnnfast {

template <typename T>
using relu_fwd_sig = bool(int64_t n, const T* x, T* y);
// gx = gy * (x > 0); x may be the relu *output* as well (same sign pattern). gx may alias gy.
template <typename T>
using relu_bwd_sig = bool(int64_t n, const T* gy, const T* x, T* gx);

}  // namespace cnnfast
