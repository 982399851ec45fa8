// Eval BatchNorm (running statistics) as a per-channel affine map, and folded into the weights of
// the conv before it: shared by the fused eval steps (conv_bn_act.cpp, dw_chain.cpp).
#pragma once
#include <cmath>
#include <optional>
#include <vector>

#include "common/allocator.h"
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
  for (int64_t o = 0; o < O; ++o) {
    const T s = (gamma ? gamma->data()[o] : T(1)) / std::sqrt(var.data()[o] + eps);
    scale[o] = s;
    shift[o] = (beta ? beta->data()[o] : T(0)) - mean.data()[o] * s;
  }
}

// w (O x ...) scaled per output channel and the bias (b or 0) * scale + shift, as new arrays.
template <typename T>
void fold_bn(carray<T>& w, std::optional<py::array>& bias, const std::vector<T>& scale, const std::vector<T>& shift) {
  const int64_t O = w.shape(0), per = O > 0 ? w.size() / O : 0;
  carray<T> wf = new_array<T>(shape_of(w));
  carray<T> bf = new_array<T>({O});
  const T* wp = w.data();
  T* wfp = wf.mutable_data();
  T* bfp = bf.mutable_data();
  std::optional<carray<T>> b0;
  if (bias) b0.emplace(*bias);
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t i = 0; i < per; ++i) wfp[o * per + i] = wp[o * per + i] * scale[o];
    bfp[o] = b0 ? b0->data()[o] * scale[o] + shift[o] : shift[o];
  }
  w = wf;
  bias = bf;
}

}  // namespace cnnfast
