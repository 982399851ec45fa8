// Row-times-row products for small batches: y (m, n) = a (m, k) @ b (n, k)^T + bias (n), all
// C-contiguous; bias may be null. This is a Linear layer's forward (b = the weight) and a 1x1
// convolution on a 1x1 plane; for m of a few rows it is a matrix-vector product, bound by reading
// b once, which the packed conv2d GEMM serves poorly (it packs b for one column). The SIMD kernels
// decline m > 8 (the GEMM is the better tool there); ref accepts everything. Same contract as
// conv2d.h: raw pointers, no allocation, no throwing.
#pragma once
#include <cstdint>

namespace cnnfast {

template <typename T>
using linear_fwd_sig = bool(int64_t m, int64_t n, int64_t k, const T* a, const T* b, const T* bias, T* y);

}  // namespace cnnfast
