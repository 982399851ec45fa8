#include <limits>

#include "common/allocator.h"
#include "dispatch/dispatch.h"
#include "ops/array_util.h"
#include "ops/pointwise_ops.h"

namespace cnnfast {
namespace {

int kind_of(const std::string& kind) {
  if (kind == "clamp") return kPointwiseClamp;
  if (kind == "hardswish") return kPointwiseHardswish;
  if (kind == "silu") return kPointwiseSilu;
  if (kind == "gelu") return kPointwiseGelu;
  if (kind == "erf") return kPointwiseErf;
  if (kind == "sigmoid") return kPointwiseSigmoid;
  if (kind == "leaky") return kPointwiseLeaky;
  CNNFAST_CHECK(
      false, "pointwise_forward: kind must be 'clamp', 'hardswish', 'silu', 'gelu', 'erf', 'sigmoid' or 'leaky', got '",
      kind, "'");
  return -1;
}

template <typename T>
py::array pw(const py::array& x_, int kind, double a, double b, double lo, double hi,
             const std::optional<py::array>& out) {
  carray<T> x(x_);
  const auto shape = shape_of(x);
  carray<T> y = out ? check_out<T>(*out, shape, "pointwise_forward") : new_array<T>(shape);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  const int64_t n = x.size();
  {
    // Safe to drop the GIL: local py::array handles keep the buffers alive; kernels touch no Python objects.
    py::gil_scoped_release release;
    dispatch<T>(&KernelTable<T>::pointwise_fwd, n, xp, yp, kind, T(a), T(b), T(lo), T(hi));
  }
  return std::move(y);
}

template <typename T>
py::array lin(const py::array& a_, const py::array& w_, const std::optional<py::array>& bias_,
              const std::optional<py::array>& out) {
  carray<T> a(a_), w(w_);
  CNNFAST_CHECK(a.ndim() == 2 && w.ndim() == 2 && a.shape(1) == w.shape(1), "linear_forward: input of size ",
                shape_str(shape_of(a)), " and weight of size ", shape_str(shape_of(w)),
                " must be 2-D with the same number of columns");
  const int64_t m = a.shape(0), k = a.shape(1), n = w.shape(0);
  std::optional<carray<T>> bias;
  if (bias_) {
    CNNFAST_CHECK(dtype_is<T>(bias_->dtype()), "linear_forward: bias has dtype ", std::string(py::str(bias_->dtype())),
                  " but input has dtype ", std::string(py::str(py::dtype::of<T>())));
    bias.emplace(*bias_);
    CNNFAST_CHECK(bias->ndim() == 1 && bias->shape(0) == n, "linear_forward: bias of size ", shape_str(shape_of(*bias)),
                  " does not match weight of size ", shape_str(shape_of(w)));
  }
  const std::vector<int64_t> shape{m, n};
  carray<T> y = out ? check_out<T>(*out, shape, "linear_forward") : new_array<T>(shape);
  const T* ap = a.data();
  const T* wp = w.data();
  const T* bp = bias ? bias->data() : nullptr;
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;  // see pw()
    dispatch<T>(&KernelTable<T>::linear_fwd, m, n, k, ap, wp, bp, yp);
  }
  return std::move(y);
}

}  // namespace

py::array pointwise_forward(const py::array& x, const std::string& kind, std::optional<double> a_,
                            std::optional<double> b_, double lo, double hi, const std::optional<py::array>& out) {
  check_float(x, "pointwise_forward", "input");
  const int k = kind_of(kind);
  const double a = pointwise_default_a(k, a_), b = pointwise_default_b(k, b_);
  return is_f64(x) ? pw<double>(x, k, a, b, lo, hi, out) : pw<float>(x, k, a, b, lo, hi, out);
}

py::array linear_forward(const py::array& input, const py::array& weight, const std::optional<py::array>& bias,
                         const std::optional<py::array>& out) {
  check_float(input, "linear_forward", "input");
  CNNFAST_CHECK(input.dtype().equal(weight.dtype()), "linear_forward: input has dtype ",
                std::string(py::str(input.dtype())), " but weight has dtype ", std::string(py::str(weight.dtype())));
  return is_f64(input) ? lin<double>(input, weight, bias, out) : lin<float>(input, weight, bias, out);
}

}  // namespace cnnfast
