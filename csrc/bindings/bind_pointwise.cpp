#include <pybind11/stl.h>

#include <limits>

#include "ops/pointwise_ops.h"

namespace py = pybind11;
using namespace py::literals;

void bind_pointwise(py::module_& m) {
  const double inf = std::numeric_limits<double>::infinity();
  m.def("pointwise_forward", &cnnfast::pointwise_forward, "input"_a, "kind"_a, "a"_a = py::none(), "b"_a = py::none(),
        "lo"_a = -inf, "hi"_a = inf, "out"_a = py::none(),
        "t = min(max(a*x + b, lo), hi); kind 'clamp': t, 'hardswish': x*t, 'silu': x/(1+exp(-x)), "
        "'gelu': b*x*(1+erf(a*x)), 'erf': erf(a*x), 'sigmoid': 1/(1+exp(-x)), 'leaky': x if x > 0 else a*x. a, b "
        "default to 1, 0 (GELU: 1/sqrt(2), "
        "1/2). out may be "
        "input itself (in place).");
  m.def("linear_forward", &cnnfast::linear_forward, "input"_a, "weight"_a, "bias"_a = py::none(), "out"_a = py::none(),
        "input (m, k) @ weight (n, k)^T + bias (n): the small-batch (matrix-vector) product.");
  m.def("conv_bn_act_forward", &cnnfast::conv_bn_act_forward, "input"_a, "weight"_a, "bias"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "relu"_a, "bn"_a, "act"_a, "a"_a = py::none(), "b"_a = py::none(), "lo"_a = -inf,
        "hi"_a = inf, "residual"_a = py::none(),
        "Eval inference step: conv2d (relu epilogue if relu) -> BatchNorm with running statistics "
        "(bn = (running_mean, running_var, weight, bias, eps) or None; folded into the weights when they are no "
        "larger than the output) -> + residual (an array of the output's shape and dtype, or None: a ResNet "
        "block's shortcut) -> act ('none', 'relu', or a pointwise_forward kind with a, b, lo, hi).");
  m.def("dw_chain_forward", &cnnfast::dw_chain_forward, "input"_a, "expand"_a, "dw"_a, "project"_a, "stride"_a,
        "padding"_a, "force"_a = false,
        "Eval inference of a depthwise-separable chain in one pass: [1x1 expand] -> depthwise -> [1x1 project], each "
        "stage (weight, bias, bn, act, a, b, lo, hi) with its eval BatchNorm (bn as in conv_bn_act_forward, or None) "
        "folded in and act 'none', 'relu', 'clamp' or 'hardswish'. Returns None where the chain does not apply or "
        "would not pay (unless force), for the caller to run the layers one by one.");
  m.def("se_scale_forward", &cnnfast::se_scale_forward, "input"_a, "fc1_weight"_a, "fc1_bias"_a, "fc2_weight"_a,
        "fc2_bias"_a, "activation"_a = "relu", "scale_activation"_a = "hardsigmoid", "alpha"_a = 1.0 / 6,
        "beta"_a = 0.5, "out"_a = py::none(),
        "Squeeze-and-excitation of a 4-D input: input * scale_activation(fc2(activation(fc1(mean over H, W)))); "
        "fc1/fc2 weights (S, C, 1, 1) / (C, S, 1, 1) or 2-D; activation 'relu', 'silu', 'hardswish' or 'none'; "
        "scale_activation 'hardsigmoid' (clip(alpha * v + beta, 0, 1)) or 'sigmoid'. out may be input itself.");
  m.def("global_avg_pool_forward", &cnnfast::global_avg_pool_forward, "input"_a,
        "Mean over H, W of a 4-D input (N, C, H, W): (N, C, 1, 1).");
}
