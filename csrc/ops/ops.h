// The ops layer: binding -> check -> allocate -> dispatch -> kernel. Each function validates
// with the op's *_checks.h, allocates its NumPy outputs, releases the GIL and dispatches.
#pragma once
#include <pybind11/numpy.h>

#include <optional>
#include <tuple>
#include <vector>

#include "ops/conv2d_checks.h"

namespace cnnfast {
namespace py = pybind11;

py::array conv2d_forward(const py::array& x, const py::array& w, const std::optional<py::array>& b, Pair stride,
                         Pair padding, Pair dilation, int64_t groups, bool relu);
// conv2d_forward with an activation for the kernel to fuse (Conv2dShape::act); *act_done: whether
// it did (else the caller applies it).
py::array conv2d_forward_act(const py::array& x, const py::array& w, const std::optional<py::array>& b, Pair stride,
                             Pair padding, Pair dilation, int64_t groups, bool relu, const ConvAct& act,
                             bool* act_done);
py::array conv2d_backward_input(const std::vector<int64_t>& input_size, const py::array& gy, const py::array& w,
                                Pair stride, Pair padding, Pair dilation, int64_t groups);
py::tuple conv2d_backward_weight(const py::array& x, const std::vector<int64_t>& weight_size, const py::array& gy,
                                 Pair stride, Pair padding, Pair dilation, int64_t groups, bool bias);

py::object max_pool2d_forward(const py::array& x, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode,
                              bool return_indices);
py::array max_pool2d_backward(const py::array& gy, const std::vector<int64_t>& input_size, const py::array& indices,
                              Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode);

py::array relu_forward(const py::array& x, const std::optional<py::array>& out);
py::array relu_backward(const py::array& gy, const py::array& x, const std::optional<py::array>& out);

}  // namespace cnnfast
