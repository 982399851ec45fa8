#include <pybind11/stl.h>

#include "ops/ops.h"

namespace py = pybind11;
using namespace py::literals;

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &cnnfast::max_pool2d_forward, "input"_a, "kernel_size"_a, "stride"_a, "padding"_a,
        "dilation"_a, "ceil_mode"_a, "return_indices"_a,
        "2-D max pooling; returns output, or (output, indices) with int64 flat indices into each input plane.");
  m.def("max_pool2d_backward", &cnnfast::max_pool2d_backward, "grad_output"_a, "input_size"_a, "indices"_a,
        "kernel_size"_a, "stride"_a, "padding"_a, "dilation"_a, "ceil_mode"_a,
        "Gradient of max_pool2d: scatters grad_output to the argmax indices.");
}
