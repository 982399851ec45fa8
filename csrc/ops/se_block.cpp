// Ops layer of the squeeze-and-excitation block and global average pooling (checks -> output ->
// dispatch: kernels/se for the plane reductions and the channel scaling, kernels/linear for the
// two 1x1 convolutions on the pooled vectors). Bound in bindings/bind_pointwise.cpp.
#include <cmath>
#include <vector>

#include "common/allocator.h"
#include "dispatch/dispatch.h"
#include "ops/array_util.h"
#include "ops/pointwise_ops.h"

namespace cnnfast {
namespace {

enum Act1 { kNone = 0, kRelu = 1, kSilu = 2, kHardswish = 3 };

int act1_of(const std::string& a) {
  if (a == "none") return kNone;
  if (a == "relu") return kRelu;
  if (a == "silu") return kSilu;
  if (a == "hardswish") return kHardswish;
  CNNFAST_CHECK(false, "se_scale_forward: activation must be 'relu', 'silu', 'hardswish' or 'none', got '", a, "'");
  return -1;
}

bool scale_act_is_sigmoid(const std::string& a) {
  CNNFAST_CHECK(a == "hardsigmoid" || a == "sigmoid",
                "se_scale_forward: scale_activation must be 'hardsigmoid' or 'sigmoid', got '", a, "'");
  return a == "sigmoid";
}

void check_x(const py::array& x, const char* op) {
  check_float(x, op, "input");
  CNNFAST_CHECK(x.ndim() == 4, op, ": input must be 4-D (N, C, H, W), got size ", shape_str(shape_of(x)));
}

// (rows, cols) of a 1x1 conv weight (rows, cols, 1, 1) or a matrix (rows, cols); -1 if neither.
std::pair<int64_t, int64_t> fc_shape(const py::array& w) {
  if (w.ndim() == 2) return {w.shape(0), w.shape(1)};
  if (w.ndim() == 4 && w.shape(2) == 1 && w.shape(3) == 1) return {w.shape(0), w.shape(1)};
  return {-1, -1};
}

void check_same_dtype(const py::array& x, const py::array& a, const char* what) {
  CNNFAST_CHECK(x.dtype().equal(a.dtype()), "se_scale_forward: input has dtype ", std::string(py::str(x.dtype())),
                " but ", what, " has dtype ", std::string(py::str(a.dtype())));
}

void check_bias(const py::array& x, const std::optional<py::array>& b, int64_t n, const char* what) {
  if (!b) return;
  check_same_dtype(x, *b, what);
  CNNFAST_CHECK(b->ndim() == 1 && b->shape(0) == n, "se_scale_forward: ", what, " of size ", shape_str(shape_of(*b)),
                " must be (", n, ",)");
}

// y (m, n) = a (m, k) @ w (n, k)^T + bias, through linear_fwd, whose SIMD kernels take at most 8 rows.
template <typename T>
void fc(int64_t m, int64_t n, int64_t k, const T* a, const T* w, const T* bias, T* y) {
  for (int64_t r = 0; r < m; r += 8) {
    const int64_t rows = m - r < 8 ? m - r : 8;
    dispatch<T>(&KernelTable<T>::linear_fwd, rows, n, k, a + r * k, w, bias, y + r * n);
  }
}

template <typename T>
py::array se(const py::array& x_, const py::array& w1_, const std::optional<py::array>& b1_, const py::array& w2_,
             const std::optional<py::array>& b2_, int act1, bool sigmoid, double alpha, double beta,
             const std::optional<py::array>& out) {
  carray<T> x(x_), w1(w1_), w2(w2_);
  const int64_t N = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3);
  const auto s1 = fc_shape(w1), s2 = fc_shape(w2);
  const int64_t S = s1.first;
  CNNFAST_CHECK(s1.second == C && S > 0 && s2.first == C && s2.second == S, "se_scale_forward: input of size ",
                shape_str(shape_of(x)), " needs fc1 weight (S, ", C, ", 1, 1) and fc2 weight (", C, ", S, 1, 1), got ",
                shape_str(shape_of(w1)), " and ", shape_str(shape_of(w2)));
  check_bias(x_, b1_, S, "fc1 bias");
  check_bias(x_, b2_, C, "fc2 bias");
  std::optional<carray<T>> b1, b2;
  if (b1_) b1.emplace(*b1_);
  if (b2_) b2.emplace(*b2_);
  const auto shape = shape_of(x);
  carray<T> y = out ? check_out<T>(*out, shape, "se_scale_forward") : new_array<T>(shape);
  const T* xp = x.data();
  const T* w1p = w1.data();
  const T* w2p = w2.data();
  const T* b1p = b1 ? b1->data() : nullptr;
  const T* b2p = b2 ? b2->data() : nullptr;
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;  // local py::array handles keep the buffers alive
    std::vector<T> pooled(N * C), hidden(N * S), scale(N * C);
    if (HW > 0) {
      dispatch<T>(&KernelTable<T>::gap_fwd, N * C, HW, xp, pooled.data());
    } else {
      for (auto& v : pooled) v = T(NAN);  // the mean of nothing, as NumPy's
    }
    fc<T>(N, S, C, pooled.data(), w1p, b1p, hidden.data());
    for (auto& h : hidden) {
      if (act1 == kRelu)
        h = h < T(0) ? T(0) : h;  // NaN kept
      else if (act1 == kSilu)
        h = h / (T(1) + std::exp(-h));
      else if (act1 == kHardswish) {
        T t = h * T(1.0 / 6) + T(0.5);
        t = t < T(0) ? T(0) : t;
        h = h * (t > T(1) ? T(1) : t);
      }
    }
    fc<T>(N, C, S, hidden.data(), w2p, b2p, scale.data());
    const T a = T(alpha), b = T(beta);
    for (auto& v : scale) {
      if (sigmoid) {
        v = T(1) / (T(1) + std::exp(-v));
      } else {
        T t = v * a + b;
        t = T(0) > t ? T(0) : t;  // NaN kept
        v = T(1) < t ? T(1) : t;
      }
    }
    dispatch<T>(&KernelTable<T>::chscale_fwd, N * C, HW, xp, scale.data(), yp);
  }
  return std::move(y);
}

template <typename T>
py::array gap(const py::array& x_) {
  carray<T> x(x_);
  const int64_t N = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3);
  carray<T> y = new_array<T>({N, C, 1, 1});
  const T* xp = x.data();
  T* yp = y.mutable_data();
  if (HW == 0) {
    for (int64_t i = 0; i < N * C; ++i) yp[i] = T(NAN);
    return std::move(y);
  }
  {
    py::gil_scoped_release release;
    dispatch<T>(&KernelTable<T>::gap_fwd, N * C, HW, xp, yp);
  }
  return std::move(y);
}

}  // namespace

py::array se_scale_forward(const py::array& x, const py::array& w1, const std::optional<py::array>& b1,
                           const py::array& w2, const std::optional<py::array>& b2, const std::string& activation,
                           const std::string& scale_activation, double alpha, double beta,
                           const std::optional<py::array>& out) {
  check_x(x, "se_scale_forward");
  check_same_dtype(x, w1, "fc1 weight");
  check_same_dtype(x, w2, "fc2 weight");
  const int a1 = act1_of(activation);
  const bool sig = scale_act_is_sigmoid(scale_activation);
  return is_f64(x) ? se<double>(x, w1, b1, w2, b2, a1, sig, alpha, beta, out)
                   : se<float>(x, w1, b1, w2, b2, a1, sig, alpha, beta, out);
}

py::array global_avg_pool_forward(const py::array& x) {
  check_x(x, "global_avg_pool_forward");
  return is_f64(x) ? gap<double>(x) : gap<float>(x);
}

}  // namespace cnnfast
