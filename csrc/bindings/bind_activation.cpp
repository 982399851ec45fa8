#include <pybind11/stl.h>

#include "ops/ops.h"

namespace py = pybind11;
using namespace py::literals;

void bind_activation(py::module_& m) {
  m.def("relu_forward", &cnnfast::relu_forward, "input"_a, "out"_a = py::none(),
        "max(x, 0); out may be input itself (in place).");
  m.def("relu_backward", &cnnfast::relu_backward, "grad_output"_a, "input"_a, "out"_a = py::none(),
        "grad_output * (input > 0); input may also be the relu output.");
}
