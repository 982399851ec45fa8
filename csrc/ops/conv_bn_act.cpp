// One eval-mode inference step of an imported or built network: conv2d -> BatchNorm (running
// statistics) -> activation, in a single call from Python (cnnfast/onnx/_fuse.py,
// cnnfast/nn/_eval_fusion.py). It replaces a dozen NumPy calls per layer, whose fixed cost
// dominated small networks at batch 1. The BatchNorm is folded into the weights when they are no
// larger than the output (one pass over the weights instead of one over the output), else applied
// to the output per channel; ReLU runs in the conv kernel's epilogue, clamp and hardswish too where
// the kernel takes them (Conv2dShape::act: the 1x1 and depthwise kernels), else in place on the
// output (kernels/pointwise). A 1x1 conv on a 1x1 plane with few images runs as matrix-vector
// products (kernels/linear).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/allocator.h"
#include "common/parallel.h"
#include "dispatch/dispatch.h"
#include "ops/array_util.h"
#include "ops/bn_fold.h"
#include "ops/ops.h"
#include "ops/pointwise_ops.h"

namespace cnnfast {
namespace {

constexpr int64_t kMatvecMaxN = 4;  // bench/activation_kernels.py: linear_forward vs the conv GEMM

template <typename T>
py::array run(const py::array& x_, const py::array& w_, const std::optional<py::array>& b_, Pair stride, Pair padding,
              Pair dilation, int64_t groups, bool conv_relu, const std::optional<py::tuple>& bn, int act, double a,
              double b, double lo, double hi, const std::optional<py::array>& residual) {
  carray<T> w(w_);
  CNNFAST_CHECK(w.ndim() == 4, "conv_bn_act_forward: weight must be 4-D, got size ", shape_str(shape_of(w)));
  CNNFAST_CHECK(x_.ndim() == 4, "conv_bn_act_forward: input must be 4-D, got size ", shape_str(shape_of(x_)));
  const int64_t O = w.shape(0);
  std::optional<py::array> bias = b_;
  std::vector<T> scale, shift;
  bool fold = false;
  if (bn) {
    bn_scale_shift<T>(*bn, O, "conv_bn_act_forward", scale, shift);
    const int64_t oh = std::max<int64_t>(x_.shape(2) / stride[0], 1),
                  ow = std::max<int64_t>(x_.shape(3) / stride[1], 1);
    // The conv's own ReLU (an imported Conv -> Relu) comes before the BatchNorm: relu(conv) * s + t
    // is no conv of folded weights, so that BatchNorm is applied to the output.
    fold = !conv_relu && w.size() <= x_.shape(0) * O * oh * ow;
    if (fold) fold_bn<T>(w, bias, scale, shift);
  }
  // (with a residual, the activation comes after the addition: never in the conv kernel)
  const bool relu_in_kernel = conv_relu || (act == -1 && (!bn || fold) && !residual);
  bool act_fused = false;  // the conv kernel applied the clamp / hardswish
  py::array y_;
  if (x_.shape(2) == 1 && x_.shape(3) == 1 && w.shape(2) == 1 && w.shape(3) == 1 && padding[0] == 0 &&
      padding[1] == 0 && groups == 1 && x_.shape(0) <= kMatvecMaxN && x_.shape(1) == w.shape(1)) {
    carray<T> x(x_);
    const int64_t N = x.shape(0), C = x.shape(1);
    std::optional<carray<T>> bb;
    if (bias) bb.emplace(*bias);
    carray<T> y = new_array<T>({N, O, 1, 1});
    const T* xp = x.data();
    const T* wp = w.data();
    const T* bp = bb ? bb->data() : nullptr;
    T* yp = y.mutable_data();
    {
      py::gil_scoped_release release;
      dispatch<T>(&KernelTable<T>::linear_fwd, N, O, C, xp, wp, bp, yp);
      if (relu_in_kernel)
        dispatch<T>(&KernelTable<T>::pointwise_fwd, N * O, yp, yp, int(kPointwiseClamp), T(1), T(0), T(0),
                    std::numeric_limits<T>::infinity());
    }
    y_ = y;
  } else {
    // clamp and hardswish after a folded (or no) BatchNorm: offered to the kernel's store
    // (kernels/conv2d/conv2d_epilogue.h); the pass below runs only where the kernel did not apply it
    ConvAct ca{};
    if ((!bn || fold) && !residual && (act == kPointwiseClamp || act == kPointwiseHardswish))
      ca = ConvAct{act == kPointwiseClamp ? kActClamp : kActHardswish, a, b, lo, hi};
    else if ((!bn || fold) && !residual && act == kPointwiseSilu && std::is_same_v<T, float>)
      ca = ConvAct{kActSilu, 1, 0, 0, 0};  // (float32 only: conv2d.h kActSilu)
    y_ = conv2d_forward_act(x_, w, bias, stride, padding, dilation, groups, relu_in_kernel, ca, &act_fused);
  }
  carray<T> y = py::reinterpret_borrow<carray<T>>(y_);
  T* yp = y.mutable_data();
  std::optional<carray<T>> res;
  if (residual) {
    CNNFAST_CHECK(residual->dtype().equal(y.dtype()), "conv_bn_act_forward: residual has dtype ",
                  std::string(py::str(residual->dtype())), " but the output has dtype ",
                  std::string(py::str(y.dtype())));
    CNNFAST_CHECK(shape_of(*residual) == shape_of(y), "conv_bn_act_forward: residual of size ",
                  shape_str(shape_of(*residual)), " does not match the output's size ", shape_str(shape_of(y)));
    res.emplace(*residual);
  }
  const T* rp = res ? res->data() : nullptr;
  const int64_t N = y.shape(0), plane = y.shape(2) * y.shape(3), n = y.size();
  {
    py::gil_scoped_release release;
    // the activation after the conv (and BatchNorm): kind -1 none; relu not run in the kernel is a clamp
    int post = -1;
    T pa = T(1), pb = T(0), plo = T(0), phi = std::numeric_limits<T>::infinity();
    if (act == -1 && (!relu_in_kernel || rp))  // (after a residual, ReLU again even after the conv's own)
      post = int(kPointwiseClamp);
    else if (act >= 0 && !act_fused)
      post = act, pa = T(a), pb = T(b), plo = T(lo), phi = T(hi);
    if (bn && !fold) {
      // BatchNorm per channel and the activation in one pass, plane by plane (the plane in L1)
      const T* sp = scale.data();
      const T* tp = shift.data();
      // (the activation over runs of planes of at least kRun elements: one kernel call per run)
      constexpr int64_t kRun = 4096;
      parallel_for(N * O, 2 * plane, [&](int64_t pb_, int64_t pe) {
        int64_t run0 = pb_;
        for (int64_t p = pb_; p < pe; ++p) {
          const T s = sp[p % O], t = tp[p % O];
          T* q = yp + p * plane;
          if (rp) {
            const T* r = rp + p * plane;
            for (int64_t i = 0; i < plane; ++i) q[i] = q[i] * s + t + r[i];
          } else {
            for (int64_t i = 0; i < plane; ++i) q[i] = q[i] * s + t;
          }
          if (post >= 0 && ((p + 1 - run0) * plane >= kRun || p + 1 == pe)) {
            dispatch<T>(&KernelTable<T>::pointwise_fwd, (p + 1 - run0) * plane, yp + run0 * plane, yp + run0 * plane,
                        post, pa, pb, plo, phi);
            run0 = p + 1;
          }
        }
      });
    } else if (rp) {
      // the residual and the activation in one pass, in runs of kRun elements (in L1 for the activation)
      constexpr int64_t kRun = 4096;
      parallel_for((n + kRun - 1) / kRun, 2 * kRun, [&](int64_t ub, int64_t ue) {
        for (int64_t u = ub; u < ue; ++u) {
          const int64_t s = u * kRun, e = std::min(n, s + kRun);
          for (int64_t i = s; i < e; ++i) yp[i] += rp[i];
          if (post >= 0) dispatch<T>(&KernelTable<T>::pointwise_fwd, e - s, yp + s, yp + s, post, pa, pb, plo, phi);
        }
      });
    } else if (post >= 0) {
      dispatch<T>(&KernelTable<T>::pointwise_fwd, n, yp, yp, post, pa, pb, plo, phi);
    }
  }
  (void)N;
  return y_;
}

}  // namespace

py::array conv_bn_act_forward(const py::array& x, const py::array& w, const std::optional<py::array>& bias, Pair stride,
                              Pair padding, Pair dilation, int64_t groups, bool conv_relu,
                              const std::optional<py::tuple>& bn, const std::string& act, std::optional<double> a_,
                              std::optional<double> b_, double lo, double hi,
                              const std::optional<py::array>& residual) {
  check_float(w, "conv_bn_act_forward", "weight");
  CNNFAST_CHECK(x.dtype().equal(w.dtype()), "conv_bn_act_forward: input has dtype ", std::string(py::str(x.dtype())),
                " but weight has dtype ", std::string(py::str(w.dtype())));
  int k = -2;  // -2: none, -1: relu, else a PointwiseKind
  if (act == "relu")
    k = -1;
  else if (act == "clamp")
    k = kPointwiseClamp;
  else if (act == "hardswish")
    k = kPointwiseHardswish;
  else if (act == "silu")
    k = kPointwiseSilu;
  else if (act == "gelu")
    k = kPointwiseGelu;
  else if (act == "leaky")
    k = kPointwiseLeaky;
  else
    CNNFAST_CHECK(
        act == "none",
        "conv_bn_act_forward: act must be 'none', 'relu', 'clamp', 'hardswish', 'silu', 'gelu' or 'leaky', got '", act,
        "'");
  const double a = pointwise_default_a(k, a_), b = pointwise_default_b(k, b_);
  return is_f64(w)
             ? run<double>(x, w, bias, stride, padding, dilation, groups, conv_relu, bn, k, a, b, lo, hi, residual)
             : run<float>(x, w, bias, stride, padding, dilation, groups, conv_relu, bn, k, a, b, lo, hi, residual);
}

}  // namespace cnnfast
