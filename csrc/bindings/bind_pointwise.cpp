#include <pybind11/stl.h>

#include <limits>

#include "ops/pointwise_ops.h"

namespace py = pybind11;
using namespace py::literals;

void bind_pointwise(py::module_& m) {
  const double inf = std::numeric_limits<double>::infinity();
  m.def("pointwise_forward", &cnnfast::pointwise_forward, "input"_a, "kind"_a, "a"_a = 1.0, "b"_a = 0.0, "lo"_a = -inf,
        "hi"_a = inf, "out"_a = py::none(),
        "t = min(max(a*x + b, lo), hi); kind 'clamp': t, 'hardswish': x*t, 'silu': x/(1+exp(-x)). "
        "out may be input itself (in place).");
  m.def("linear_forward", &cnnfast::linear_forward, "input"_a, "weight"_a, "bias"_a = py::none(), "out"_a = py::none(),
        "input (m, k) @ weight (n, k)^T + bias (n): the small-batch (matrix-vector) product.");
}
