#include "common/allocator.h"
#include "dispatch/autotune.h"
#include "ops/array_util.h"
#include "ops/ops.h"

namespace cnnfast {
namespace {

template <typename T>
py::array fwd(const py::array& x_, const py::array& w_, const std::optional<py::array>& b_, Pair stride, Pair padding,
              Pair dilation, int64_t groups, bool relu, const ConvAct& act, bool* act_done) {
  // Check shapes first, then convert: a bad call never allocates or copies anything.
  if (b_)
    CNNFAST_CHECK(b_->ndim() == 1, "conv2d: Given weight of size ", shape_str(shape_of(w_)),
                  ", expected bias to be 1-dimensional with ", w_.ndim() > 0 ? w_.shape(0) : 0,
                  " elements, but got bias of size ", shape_str(shape_of(*b_)), " instead");
  Conv2dShape p = conv2d_shape(shape_of(x_), shape_of(w_), b_ ? b_->shape(0) : -1, stride, padding, dilation, groups);
  p.act = act;
  carray<T> x(x_), w(w_);
  std::optional<carray<T>> b;
  if (b_) b = carray<T>(*b_);
  carray<T> y = new_array<T>(conv2d_output_size(p));
  const T* xp = x.data();
  const T* wp = w.data();
  const T* bp = b ? b->data() : nullptr;
  T* yp = y.mutable_data();
  {
    // Safe to drop the GIL: the buffers above are owned by local py::array handles that keep
    // them alive, and the kernels touch no Python objects.
    py::gil_scoped_release release;
    // Through the autotuner (dispatch/autotune.h); flags: what else changes the kernels' work.
    if (p.N * p.K * p.OH * p.OW > 0)
      autotune::dispatch_conv2d<T>(&KernelTable<T>::conv2d_fwd, autotune::Pass::fwd,
                                   (bp ? 1 : 0) | (relu ? 2 : 0) | (int64_t{act.kind} << 2), p, xp, wp, bp, yp, relu);
  }
  if (act_done) *act_done = act.kind != kActNone && (p.act_done || p.N * p.K * p.OH * p.OW == 0);
  return std::move(y);
}

template <typename T>
py::array bwd_input(const std::vector<int64_t>& input_size, const py::array& gy_, const py::array& w_, Pair stride,
                    Pair padding, Pair dilation, int64_t groups) {
  const Conv2dShape p = conv2d_shape(input_size, shape_of(w_), -1, stride, padding, dilation, groups);
  conv2d_check_grad_output(p, shape_of(gy_));
  carray<T> gy(gy_), w(w_);
  carray<T> gx = new_array<T>(input_size);
  const T* gyp = gy.data();
  const T* wp = w.data();
  T* gxp = gx.mutable_data();
  {
    py::gil_scoped_release release;  // see fwd()
    if (p.N * p.C * p.H * p.W > 0)
      autotune::dispatch_conv2d<T>(&KernelTable<T>::conv2d_bwd_input, autotune::Pass::bwd_input, 0, p, gyp, wp, gxp);
  }
  return std::move(gx);
}

template <typename T>
py::tuple bwd_weight(const py::array& x_, const std::vector<int64_t>& weight_size, const py::array& gy_, Pair stride,
                     Pair padding, Pair dilation, int64_t groups, bool bias) {
  const Conv2dShape p = conv2d_shape(shape_of(x_), weight_size, -1, stride, padding, dilation, groups);
  conv2d_check_grad_output(p, shape_of(gy_));
  carray<T> x(x_), gy(gy_);
  carray<T> gw = new_array<T>(weight_size);
  std::optional<carray<T>> gb;
  if (bias) gb = carray<T>(std::vector<int64_t>{p.K});
  const T* xp = x.data();
  const T* gyp = gy.data();
  T* gwp = gw.mutable_data();
  T* gbp = gb ? gb->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;  // see fwd()
    autotune::dispatch_conv2d<T>(&KernelTable<T>::conv2d_bwd_weight, autotune::Pass::bwd_weight, gbp ? 1 : 0, p, xp,
                                 gyp, gwp, gbp);
  }
  return py::make_tuple(gw, gb ? py::object(*gb) : py::none());
}

}  // namespace

py::array conv2d_forward_act(const py::array& x, const py::array& w, const std::optional<py::array>& b, Pair stride,
                             Pair padding, Pair dilation, int64_t groups, bool relu, const ConvAct& act,
                             bool* act_done) {
  check_float(x, "conv2d", "input");
  return is_f64(x) ? fwd<double>(x, w, b, stride, padding, dilation, groups, relu, act, act_done)
                   : fwd<float>(x, w, b, stride, padding, dilation, groups, relu, act, act_done);
}

py::array conv2d_forward(const py::array& x, const py::array& w, const std::optional<py::array>& b, Pair stride,
                         Pair padding, Pair dilation, int64_t groups, bool relu) {
  return conv2d_forward_act(x, w, b, stride, padding, dilation, groups, relu, ConvAct{}, nullptr);
}

py::array conv2d_backward_input(const std::vector<int64_t>& input_size, const py::array& gy, const py::array& w,
                                Pair stride, Pair padding, Pair dilation, int64_t groups) {
  check_float(gy, "conv2d_backward_input", "grad_output");
  return is_f64(gy) ? bwd_input<double>(input_size, gy, w, stride, padding, dilation, groups)
                    : bwd_input<float>(input_size, gy, w, stride, padding, dilation, groups);
}

py::tuple conv2d_backward_weight(const py::array& x, const std::vector<int64_t>& weight_size, const py::array& gy,
                                 Pair stride, Pair padding, Pair dilation, int64_t groups, bool bias) {
  check_float(x, "conv2d_backward_weight", "input");
  return is_f64(x) ? bwd_weight<double>(x, weight_size, gy, stride, padding, dilation, groups, bias)
                   : bwd_weight<float>(x, weight_size, gy, stride, padding, dilation, groups, bias);
}

}  // namespace cnnfast
