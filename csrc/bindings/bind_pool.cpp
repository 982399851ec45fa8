#include <pybind11/stl.h>

#include "ops/maxpool2d_checks.h"
#include "ops/ops.h"

namespace py = pybind11;
using namespace py::literals;

void bind_pool(py::module_& m) {
  m.def(
      "max_pool2d_output_size",
      [](const std::vector<int64_t>& input_size, cnnfast::Pair kernel, cnnfast::Pair stride, cnnfast::Pair padding,
         cnnfast::Pair dilation, bool ceil_mode) {
        return cnnfast::maxpool2d_output_size(
            cnnfast::maxpool2d_shape(input_size, kernel, stride, padding, dilation, ceil_mode));
      },
      "input_size"_a, "kernel_size"_a, "stride"_a, "padding"_a, "dilation"_a, "ceil_mode"_a,
      "Validate max_pool2d arguments exactly as the kernels do (no data needed); returns the output size.");
  m.def("max_pool2d_forward", &cnnfast::max_pool2d_forward, "input"_a, "kernel_size"_a, "stride"_a, "padding"_a,
        "dilation"_a, "ceil_mode"_a, "return_indices"_a,
        "2-D max pooling; returns output, or (output, indices) with int64 flat indices into each input plane.");
  m.def("max_pool2d_backward", &cnnfast::max_pool2d_backward, "grad_output"_a, "input_size"_a, "indices"_a,
        "kernel_size"_a, "stride"_a, "padding"_a, "dilation"_a, "ceil_mode"_a,
        "Gradient of max_pool2d: scatters grad_output to the argmax indices.");
}
