// conv2d kernels: 2-D cross-correlation (no kernel flip), NCHW, weight (K, C/groups, R, S).
//
// Kernel contract (XNNPACK-style microkernels): raw pointers to C-contiguous buffers, all shapes
// already validated by the ops layer (csrc/ops/conv2d_checks.h), no throwing. A kernel returns
// false to *decline* a configuration it does not handle; the dispatcher then falls back to the
// next implementation and finally to the `_ref` twin, which accepts everything.
// Names follow <op>_<dir>_<dtype>_<isa>; the list of kernels is csrc/kernels/kernels.inc.
#pragma once
#include <cstdint>

namespace cnnfast {

// An activation a forward kernel may apply as it stores each output (after the bias and ReLU),
// saving the caller a pass over the output: kinds as below; clamp = min(max(a*v + b, lo), hi),
// hardswish = v * clamp (ReLU6, Hardsigmoid and Hardswish are these with constants). The ops layer
// (ops/conv_bn_act.cpp) sets Conv2dShape::act; a kernel that applied it sets act_done, and where
// none did (kernels that take only ReLU), the ops layer runs the activation as a pass of its own.
// kActSilu (v / (1 + exp(-v)), kernels/pointwise's float32 SiLU) is float32 only (the ops layer never
// asks a float64 kernel for it), and taken by the kernels that sweep the activation over blocks in
// L1 or that run it as an epilogue type of its own (SiluEpi, conv2d_epilogue.h).
enum ConvActKind : int { kActNone = 0, kActRelu = 1, kActClamp = 2, kActHardswish = 3, kActSilu = 4 };
struct ConvAct {
  int kind = kActNone;
  double a = 1, b = 0, lo = 0, hi = 0;
};

struct Conv2dShape {
  int64_t N, C, H, W;                        // input
  int64_t K, R, S;                           // output channels, kernel height, kernel width
  int64_t OH, OW;                            // output spatial size
  int64_t sh, sw;                            // stride
  int64_t ph, pw;                            // zero padding (top = bottom = ph, left = right = pw)
  int64_t dh, dw;                            // dilation
  int64_t groups;                            // C % groups == 0 and K % groups == 0
  ConvAct act{};                             // forward: the activation to fuse, if the kernel can
  mutable bool act_done = false;             // set by a forward kernel that applied `act`
  int64_t Cg() const { return C / groups; }  // input channels per group
  int64_t Kg() const { return K / groups; }  // output channels per group
};

// y[N,K,OH,OW] = conv(x[N,C,H,W], w[K,C/g,R,S]) + bias[K] (bias may be null); if relu, max(y,0);
// then p.act if the kernel applies it (setting p.act_done). A shape a kernel derives from p and
// hands to another kernel carries no act (no_act below), so nothing is applied twice.
inline Conv2dShape no_act(Conv2dShape q) {
  q.act = ConvAct{};
  q.act_done = false;
  return q;
}

template <typename T>
using conv2d_fwd_sig = bool(const Conv2dShape& p, const T* x, const T* w, const T* bias, T* y, bool relu);
// gx[N,C,H,W] = dL/dx given gy[N,K,OH,OW] (gx is fully overwritten).
template <typename T>
using conv2d_bwd_input_sig = bool(const Conv2dShape& p, const T* gy, const T* w, T* gx);
// gw[K,C/g,R,S] = dL/dw; gb[K] = dL/dbias (gb may be null). Both fully overwritten.
template <typename T>
using conv2d_bwd_weight_sig = bool(const Conv2dShape& p, const T* x, const T* gy, T* gw, T* gb);

}  // namespace cnnfast
