// The one place max_pool2d shapes and arguments are validated (forward and backward).
// Output size follows PyTorch's pooling_output_shape, including ceil_mode's rule that the last
// window must start inside the input or the left padding.
#pragma once
#include <cstdint>
#include <vector>

#include "common/check.h"
#include "kernels/maxpool2d/maxpool2d.h"
#include "ops/conv2d_checks.h"

namespace cnnfast {

inline int64_t pooling_output_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil_mode) {
  const int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  // floor division (num may be negative when the window does not fit)
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

inline Pool2dShape maxpool2d_shape(const std::vector<int64_t>& in, Pair kernel, Pair stride, Pair padding,
                                   Pair dilation, bool ceil_mode) {
  const char* op = "max_pool2d";
  CNNFAST_CHECK(in.size() == 4, op, ": Expected 3D or 4D (batch mode) input, but got input of size ", shape_str(in));
  checked_numel(in, op, "input");
  CNNFAST_CHECK(in[1] > 0 && in[2] > 0 && in[3] > 0, op,
                ": Expected input with non-zero channel and spatial dimensions, but got input of size ", shape_str(in));
  CNNFAST_CHECK(kernel[0] > 0 && kernel[1] > 0, op, ": kernel_size must be greater than zero, but got kH: ", kernel[0],
                " kW: ", kernel[1]);
  CNNFAST_CHECK(stride[0] > 0 && stride[1] > 0, op, ": stride should be greater than zero, but got dH: ", stride[0],
                " dW: ", stride[1]);
  CNNFAST_CHECK(dilation[0] > 0 && dilation[1] > 0, op,
                ": dilation should be greater than zero, but got dilationH: ", dilation[0],
                " dilationW: ", dilation[1]);
  CNNFAST_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": pad must be non-negative, but got pad=(", padding[0], ", ",
                padding[1], ")");
  for (int64_t v : {kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]})
    CNNFAST_CHECK(v < (int64_t(1) << 31), op, ": kernel_size/stride/padding/dilation value ", v, " is too large");
  CNNFAST_CHECK(
      padding[0] <= (dilation[0] * (kernel[0] - 1) + 1) / 2 && padding[1] <= (dilation[1] * (kernel[1] - 1) + 1) / 2,
      op, ": pad should be at most half of effective kernel size, but got pad=(", padding[0], ", ", padding[1],
      "), kernel_size=(", kernel[0], ", ", kernel[1], ") and dilation=(", dilation[0], ", ", dilation[1], ")");
  Pool2dShape p{};
  p.N = in[0];
  p.C = in[1];
  p.H = in[2];
  p.W = in[3];
  p.kh = kernel[0];
  p.kw = kernel[1];
  p.sh = stride[0];
  p.sw = stride[1];
  p.ph = padding[0];
  p.pw = padding[1];
  p.dh = dilation[0];
  p.dw = dilation[1];
  p.OH = pooling_output_size(p.H, p.kh, p.ph, p.sh, p.dh, ceil_mode);
  p.OW = pooling_output_size(p.W, p.kw, p.pw, p.sw, p.dw, ceil_mode);
  CNNFAST_CHECK(p.OH >= 1 && p.OW >= 1, op, ": Given input size: (", p.C, "x", p.H, "x", p.W,
                "). Calculated output size: (", p.C, "x", p.OH, "x", p.OW, "). Output size is too small");
  return p;
}

inline std::vector<int64_t> maxpool2d_output_size(const Pool2dShape& p) { return {p.N, p.C, p.OH, p.OW}; }

}  // namespace cnnfast
