#include "dispatch/dispatch.h"
#include "common/allocator.h"
#include "ops/array_util.h"
#include "ops/ops.h"

namespace cnnfast {
namespace {

template <typename T>
py::array fwd(const py::array& x_, const std::optional<py::array>& out) {
  carray<T> x(x_);
  const auto shape = shape_of(x);
  carray<T> y = out ? check_out<T>(*out, shape, "relu") : new_array<T>(shape);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  const int64_t n = x.size();
  {
    // Safe to drop the GIL: local py::array handles keep the buffers alive; kernels touch no Python objects.
    py::gil_scoped_release release;
    dispatch<T>(&KernelTable<T>::relu_fwd, n, xp, yp);
  }
  return std::move(y);
}

template <typename T>
py::array bwd(const py::array& gy_, const py::array& x_, const std::optional<py::array>& out) {
  carray<T> gy(gy_), x(x_);
  CNNFAST_CHECK(shape_of(gy) == shape_of(x), "relu_backward: grad_output of size ", shape_str(shape_of(gy)),
                " does not match input of size ", shape_str(shape_of(x)));
  const auto shape = shape_of(x);
  carray<T> gx = out ? check_out<T>(*out, shape, "relu_backward") : new_array<T>(shape);
  const T* gyp = gy.data();
  const T* xp = x.data();
  T* gxp = gx.mutable_data();
  const int64_t n = x.size();
  {
    py::gil_scoped_release release;  // see fwd()
    dispatch<T>(&KernelTable<T>::relu_bwd, n, gyp, xp, gxp);
  }
  return std::move(gx);
}

}  // namespace

py::array relu_forward(const py::array& x, const std::optional<py::array>& out) {
  check_float(x, "relu", "input");
  return is_f64(x) ? fwd<double>(x, out) : fwd<float>(x, out);
}

py::array relu_backward(const py::array& gy, const py::array& x, const std::optional<py::array>& out) {
  check_float(x, "relu_backward", "input");
  return is_f64(x) ? bwd<double>(gy, x, out) : bwd<float>(gy, x, out);
}

}  // namespace cnnfast
