// Ops layer of the pointwise activations, the small-batch linear product (checks -> output ->
// dispatch: kernels/pointwise, kernels/linear) and the fused eval step conv -> BatchNorm -> activation. Bound in
// bindings/bind_pointwise.cpp.
#pragma once
#include <pybind11/numpy.h>

#include <optional>
#include <string>

#include "ops/conv2d_checks.h"

namespace cnnfast {
namespace py = pybind11;

py::array pointwise_forward(const py::array& x, const std::string& kind, double a, double b, double lo, double hi,
                            const std::optional<py::array>& out);
py::array linear_forward(const py::array& input, const py::array& weight, const std::optional<py::array>& bias,
                         const std::optional<py::array>& out);
// conv2d -> eval BatchNorm (bn = (running_mean, running_var, weight or None, bias or None, eps), or
// None) -> activation act ('none', 'relu', or a pointwise kind with a, b, lo, hi) in one call.
py::array conv_bn_act_forward(const py::array& x, const py::array& w, const std::optional<py::array>& bias, Pair stride,
                              Pair padding, Pair dilation, int64_t groups, bool conv_relu,
                              const std::optional<py::tuple>& bn, const std::string& act, double a, double b, double lo,
                              double hi);

// [1x1 expand] -> depthwise -> [1x1 project], each with an eval BatchNorm (folded) and an activation,
// in one pass (kernels/dwchain); stages are (weight, bias, bn, act, a, b, lo, hi). None where the
// chain does not apply or would not pay (unless force).
py::object dw_chain_forward(const py::array& x, const std::optional<py::tuple>& expand, const py::tuple& dw,
                            const std::optional<py::tuple>& project, Pair stride, Pair padding, bool force);

}  // namespace cnnfast
