// The one place conv2d shapes and arguments are validated; forward, backward-input and
// backward-weight all call conv2d_shape(). Messages follow PyTorch's wording.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "common/check.h"
#include "kernels/conv2d/conv2d.h"

namespace cnnfast {

using Pair = std::array<int64_t, 2>;

// bias_len < 0 means "no bias".
inline Conv2dShape conv2d_shape(const std::vector<int64_t>& in, const std::vector<int64_t>& wt, int64_t bias_len,
                                Pair stride, Pair padding, Pair dilation, int64_t groups) {
  const char* op = "conv2d";
  CNNFAST_CHECK(in.size() == 4, op, ": Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size ",
                shape_str(in));
  CNNFAST_CHECK(wt.size() == 4, op,
                ": weight should have 4 dimensions (out_channels, in_channels/groups, kH, kW), got weight of size ",
                shape_str(wt));
  checked_numel(in, op, "input");
  checked_numel(wt, op, "weight");
  CNNFAST_CHECK(groups > 0, op, ": non-positive groups is not supported, got groups=", groups);
  CNNFAST_CHECK(stride[0] > 0 && stride[1] > 0, op, ": non-positive stride is not supported, got stride=(", stride[0],
                ", ", stride[1], ")");
  CNNFAST_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": negative padding is not supported, got padding=(",
                padding[0], ", ", padding[1], ")");
  CNNFAST_CHECK(dilation[0] > 0 && dilation[1] > 0, op, ": dilation should be greater than zero, got dilation=(",
                dilation[0], ", ", dilation[1], ")");
  CNNFAST_CHECK(wt[0] > 0 && wt[2] > 0 && wt[3] > 0, op, ": weight of size ", shape_str(wt), " has a zero dimension");
  CNNFAST_CHECK(wt[0] % groups == 0, op, ": Given groups=", groups, ", expected weight to be divisible by ", groups,
                " at dimension 0, but got weight of size ", shape_str(wt), " instead");
  CNNFAST_CHECK(in[1] == wt[1] * groups, op, ": Given groups=", groups, ", weight of size ", shape_str(wt),
                ", expected input ", shape_str(in), " to have ", wt[1] * groups, " channels, but got ", in[1],
                " channels instead");
  if (bias_len >= 0)
    CNNFAST_CHECK(bias_len == wt[0], op, ": Given weight of size ", shape_str(wt),
                  ", expected bias to be 1-dimensional with ", wt[0], " elements, but got bias of size (", bias_len,
                  ",) instead");
  Conv2dShape p{};
  p.N = in[0];
  p.C = in[1];
  p.H = in[2];
  p.W = in[3];
  p.K = wt[0];
  p.R = wt[2];
  p.S = wt[3];
  p.sh = stride[0];
  p.sw = stride[1];
  p.ph = padding[0];
  p.pw = padding[1];
  p.dh = dilation[0];
  p.dw = dilation[1];
  p.groups = groups;
  // Overflow-safe: all terms are far below 2^62 once numel() checks passed and args are < 2^31.
  for (int64_t v : {p.sh, p.sw, p.ph, p.pw, p.dh, p.dw})
    CNNFAST_CHECK(v < (int64_t(1) << 31), op, ": stride/padding/dilation value ", v, " is too large");
  const int64_t eff_h = p.dh * (p.R - 1) + 1, eff_w = p.dw * (p.S - 1) + 1;
  const int64_t ph_in = p.H + 2 * p.ph, pw_in = p.W + 2 * p.pw;
  CNNFAST_CHECK(ph_in >= eff_h && pw_in >= eff_w, op, ": Calculated padded input size per channel: (", ph_in, " x ",
                pw_in, "). Kernel size: (", eff_h, " x ", eff_w,
                "). Kernel size can't be greater than actual input size");
  p.OH = (ph_in - eff_h) / p.sh + 1;
  p.OW = (pw_in - eff_w) / p.sw + 1;
  checked_numel({p.N, p.K, p.OH, p.OW}, op, "output");
  return p;
}

inline std::vector<int64_t> conv2d_output_size(const Conv2dShape& p) { return {p.N, p.K, p.OH, p.OW}; }

// Backward passes: grad_output must have the forward output's shape.
inline void conv2d_check_grad_output(const Conv2dShape& p, const std::vector<int64_t>& gy) {
  CNNFAST_CHECK(gy == conv2d_output_size(p), "conv2d_backward: expected grad_output of size ",
                shape_str(conv2d_output_size(p)), " (the forward output for input (", p.N, ", ", p.C, ", ", p.H, ", ",
                p.W, ")), but got grad_output of size ", shape_str(gy));
}

}  // namespace cnnfast
