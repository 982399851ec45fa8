// Eval BatchNorm (running statistics) as a per-channel affine map, and folded into the weights of
// the conv before it: shared by the fused eval steps (conv_bn_act.cpp, dw_chain.cpp).
#pragma once
#include <cmath>
#include <optional>
#include <vector>

#include "common/allocator.h"
#include "common/parallel.h"
#include "common/portable.h"
#include "ops/array_util.h"

namespace cnnfast {

// bn = (running_mean, running_var, weight or None, bias or None, eps), each of size O:
// scale = weight / sqrt(var + eps), shift = bias - mean * scale.
template <typename T>
void bn_scale_shift(const py::tuple& bn, int64_t O, const char* op, std::vector<T>& scale, std::vector<T>& shift) {
  CNNFAST_CHECK(bn.size() == 5, op, ": bn must be (running_mean, running_var, weight, bias, eps)");
  auto vec = [&](const py::handle& h, const char* what) {
    carray<T> a = py::cast<carray<T>>(h);
    CNNFAST_CHECK(a.ndim() == 1 && a.shape(0) == O, op, ": BatchNorm ", what, " of size ", shape_str(shape_of(a)),
                  " does not match the conv's ", O, " output channels");
    return a;
  };
  carray<T> mean = vec(bn[0], "running_mean"), var = vec(bn[1], "running_var");
  std::optional<carray<T>> gamma, beta;
  if (!bn[2].is_none()) gamma.emplace(vec(bn[2], "weight"));
  if (!bn[3].is_none()) beta.emplace(vec(bn[3], "bias"));
  const T eps = T(bn[4].cast<double>());
  scale.resize(O);
  shift.resize(O);
  // restrict pointers: the loops vectorise (sqrt and division per channel were the cost)
  T* CNNFAST_RESTRICT sc = scale.data();
  T* CNNFAST_RESTRICT sh = shift.data();
  const T* CNNFAST_RESTRICT mp = mean.data();
  const T* CNNFAST_RESTRICT vp = var.data();
  for (int64_t o = 0; o < O; ++o) sc[o] = T(1) / std::sqrt(vp[o] + eps);
  if (gamma) {
    const T* CNNFAST_RESTRICT gp = gamma->data();
    for (int64_t o = 0; o < O; ++o) sc[o] *= gp[o];
  }
  for (int64_t o = 0; o < O; ++o) sh[o] = -mp[o] * sc[o];
  if (beta) {
    const T* CNNFAST_RESTRICT bp = beta->data();
    for (int64_t o = 0; o < O; ++o) sh[o] += bp[o];
  }
}

// w (O x ...) scaled per output channel and the bias (b or 0) * scale + shift, as new arrays.
template <typename T>
void fold_bn(carray<T>& w, std::optional<py::array>& bias, const std::vector<T>& scale, const std::vector<T>& shift) {
  const int64_t O = w.shape(0), per = O > 0 ? w.size() / O : 0;
  carray<T> wf = new_array<T>(shape_of(w));
  carray<T> bf = new_array<T>({O});
  const T* CNNFAST_RESTRICT wp = w.data();
  T* CNNFAST_RESTRICT wfp = wf.mutable_data();
  T* CNNFAST_RESTRICT bfp = bf.mutable_data();
  const T* CNNFAST_RESTRICT sc = scale.data();
  const T* CNNFAST_RESTRICT sh = shift.data();
  std::optional<carray<T>> b0;
  if (bias) b0.emplace(*bias);
  // (on the pool's threads: the GIL is held but the loop touches no Python object. Run serially
  // it kept the other workers spinning; perf put it at 8% of the CPU time of MobileNetV2's
  // 96 -> 576 1x1 layer at batch 1, a layer of 65 us on 2 threads)
  parallel_for(O, per, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const T s = sc[o];
      for (int64_t i = 0; i < per; ++i) wfp[o * per + i] = wp[o * per + i] * s;
    }
  });
  const T* b0p = b0 ? b0->data() : nullptr;
  for (int64_t o = 0; o < O; ++o) bfp[o] = b0p ? b0p[o] * sc[o] + sh[o] : sh[o];
  w = wf;
  bias = bf;
}

}  // namespace cnnfast
