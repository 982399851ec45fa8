#include <pybind11/stl.h>

#include "ops/ops.h"

namespace py = pybind11;
using namespace py::literals;

void bind_conv2d(py::module_& m) {
  m.def("conv2d_forward", &cnnfast::conv2d_forward, "input"_a, "weight"_a, "bias"_a, "stride"_a, "padding"_a, "dilation"_a,
        "groups"_a, "relu"_a = false, "y = conv2d(input, weight) + bias (optionally fused ReLU); float32/float64, NCHW.");
  m.def("conv2d_backward_input", &cnnfast::conv2d_backward_input, "input_size"_a, "grad_output"_a, "weight"_a, "stride"_a,
        "padding"_a, "dilation"_a, "groups"_a, "Gradient of conv2d with respect to its input.");
  m.def("conv2d_backward_weight", &cnnfast::conv2d_backward_weight, "input"_a, "weight_size"_a, "grad_output"_a, "stride"_a,
        "padding"_a, "dilation"_a, "groups"_a, "bias"_a,
        "Gradients of conv2d with respect to weight and bias: returns (grad_weight, grad_bias or None).");
}
