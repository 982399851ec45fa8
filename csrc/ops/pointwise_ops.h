// Ops layer of the pointwise activations, the small-batch linear product (checks -> output ->
// dispatch: kernels/pointwise, kernels/linear), the fused eval step conv -> BatchNorm -> activation and
// the squeeze-and-excitation block / global average pooling (ops/se_block.cpp, kernels/se). Bound in
// bindings/bind_pointwise.cpp.
#pragma once
#include <pybind11/numpy.h>

#include <optional>
#include <string>

#include "kernels/pointwise/pointwise.h"
#include "ops/conv2d_checks.h"

namespace cnnfast {
namespace py = pybind11;

// A pointwise kind's a and b where the caller passed None: GELU's 1/sqrt(2) and 1/2, otherwise 1 and 0.
inline double pointwise_default_a(int kind, std::optional<double> a) {
  return a ? *a : (kind == kPointwiseGelu ? 0.70710678118654752440 : 1.0);
}
inline double pointwise_default_b(int kind, std::optional<double> b) {
  return b ? *b : (kind == kPointwiseGelu ? 0.5 : 0.0);
}

// a, b: None for the kind's defaults (pointwise_default_a / _b)
py::array pointwise_forward(const py::array& x, const std::string& kind, std::optional<double> a,
                            std::optional<double> b, double lo, double hi, const std::optional<py::array>& out);
py::array linear_forward(const py::array& input, const py::array& weight, const std::optional<py::array>& bias,
                         const std::optional<py::array>& out);
// conv2d -> eval BatchNorm (bn = (running_mean, running_var, weight or None, bias or None, eps), or
// None) [-> + residual] -> activation act ('none', 'relu', or a pointwise kind with a, b, lo, hi)
// in one call.
py::array conv_bn_act_forward(const py::array& x, const py::array& w, const std::optional<py::array>& bias, Pair stride,
                              Pair padding, Pair dilation, int64_t groups, bool conv_relu,
                              const std::optional<py::tuple>& bn, const std::string& act, std::optional<double> a,
                              std::optional<double> b, double lo, double hi, const std::optional<py::array>& residual);
// Squeeze-and-excitation block of a 4-D input x (N, C, H, W): x * scale_act(fc2(act1(fc1(mean over H, W)))),
// fc1 / fc2 1x1 convs (S, C, 1, 1) / (C, S, 1, 1) with optional biases; act1 'relu', 'silu', 'hardswish'
// or 'none'; scale_act 'hardsigmoid' (min(max(alpha * v + beta, 0), 1)) or 'sigmoid'. out may be x.
py::array se_scale_forward(const py::array& x, const py::array& w1, const std::optional<py::array>& b1,
                           const py::array& w2, const std::optional<py::array>& b2, const std::string& activation,
                           const std::string& scale_activation, double alpha, double beta,
                           const std::optional<py::array>& out);
// Mean over H, W of a 4-D input: (N, C, 1, 1).
py::array global_avg_pool_forward(const py::array& x);

// [1x1 expand] -> depthwise -> [1x1 project], each with an eval BatchNorm (folded) and an activation,
// in one pass (kernels/dwchain); stages are (weight, bias, bn, act, a, b, lo, hi). None where the
// chain does not apply or would not pay (unless force).
py::object dw_chain_forward(const py::array& x, const std::optional<py::tuple>& expand, const py::tuple& dw,
                            const std::optional<py::tuple>& project, Pair stride, Pair padding, bool force);

}  // namespace cnnfast
