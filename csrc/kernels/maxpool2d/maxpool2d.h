// max_pool2d kernels, NCHW. Padding is implicit -inf. Indices (int64) are flat offsets into the
// input plane (h * W + w), as in PyTorch. NaN propagates; ties go to the first index in scan
// order. Same kernel contract as conv2d.h (raw pointers, validated shapes, never throw, return
// false to decline).
#pragma once
#include <cstdint>

namespace cnnfast {

struct Pool2dShape {
  int64_t N, C, H, W;
  int64_t OH, OW;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// y[N,C,OH,OW]; idx may be null (inference: no indices wanted).
template <typename T>
using maxpool2d_fwd_sig = bool(const Pool2dShape& p, const T* x, T* y, int64_t* idx);
// gx[N,C,H,W] = scatter-add of gy through idx (gx fully overwritten).
template <typename T>
using maxpool2d_bwd_sig = bool(const Pool2dShape& p, const T* gy, const int64_t* idx, T* gx);

}  // namespace cnnfast
