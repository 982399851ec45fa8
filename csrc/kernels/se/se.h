// Kernels of a squeeze-and-excitation block and of global average pooling, over `planes`
// contiguous planes of hw elements each (an NCHW array is N * C planes of H * W):
//   gap_fwd:     mean[p] = (x[p * hw] + ... + x[p * hw + hw - 1]) / hw
//   chscale_fwd: y[p * hw + i] = x[p * hw + i] * s[p]   (y may alias x: in place)
// Each plane is reduced by one thread in an order fixed by hw alone, so results do not depend on
// the thread count. Same contract as conv2d.h: raw pointers, no allocation, no throwing; a SIMD
// kernel may decline (return false) and the ref kernel runs.
#pragma once
#include <cstdint>

namespace cnnfast {

template <typename T>
using gap_fwd_sig = bool(int64_t planes, int64_t hw, const T* x, T* mean);
template <typename T>
using chscale_fwd_sig = bool(int64_t planes, int64_t hw, const T* x, const T* s, T* y);

}  // namespace cnnfast
