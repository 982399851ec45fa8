// Ops layer of the pointwise activations and the small-batch linear product: checks -> output ->
// dispatch (kernels/pointwise, kernels/linear). Bound in bindings/bind_pointwise.cpp.
#pragma once
#include <pybind11/numpy.h>

#include <optional>
#include <string>

namespace cnnfast {
namespace py = pybind11;

py::array pointwise_forward(const py::array& x, const std::string& kind, double a, double b, double lo, double hi,
                            const std::optional<py::array>& out);
py::array linear_forward(const py::array& input, const py::array& weight, const std::optional<py::array>& bias,
                         const std::optional<py::array>& out);

}  // namespace cnnfast
