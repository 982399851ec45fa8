#include <pybind11/stl.h>

#include "ops/ops.h"

namespace py = pybind11;
using namespace py::literals;

void bind_conv2d(py::module_& m) {
  m.def(
      "conv2d_output_size",
      [](const std::vector<int64_t>& input_size, const std::vector<int64_t>& weight_size, int64_t bias_len,
         cnnfast::Pair stride, cnnfast::Pair padding, cnnfast::Pair dilation, int64_t groups) {
        return cnnfast::conv2d_output_size(
            cnnfast::conv2d_shape(input_size, weight_size, bias_len, stride, padding, dilation, groups));
      },
      "input_size"_a, "weight_size"_a, "bias_len"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a,
      "Validate conv2d arguments exactly as the kernels do (no data needed); returns the output size.");
  m.def("conv2d_forward", &cnnfast::conv2d_forward, "input"_a, "weight"_a, "bias"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "relu"_a = false,
        "y = conv2d(input, weight) + bias (optionally fused ReLU); float32/float64, NCHW.");
  m.def("conv2d_backward_input", &cnnfast::conv2d_backward_input, "input_size"_a, "grad_output"_a, "weight"_a,
        "stride"_a, "padding"_a, "dilation"_a, "groups"_a, "Gradient of conv2d with respect to its input.");
  m.def("conv2d_backward_weight", &cnnfast::conv2d_backward_weight, "input"_a, "weight_size"_a, "grad_output"_a,
        "stride"_a, "padding"_a, "dilation"_a, "groups"_a, "bias"_a,
        "Gradients of conv2d with respect to weight and bias: returns (grad_weight, grad_bias or None).");
}
