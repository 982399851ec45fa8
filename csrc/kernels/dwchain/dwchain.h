// A depthwise-separable chain in one pass over the image: [1x1 expand + act] -> RxR depthwise
// (stride 1 or 2) + act -> [1x1 project + act], the body of MobileNet / EfficientNet / PP-LCNet
// blocks in eval inference, with the BatchNorms already folded into the weights (ops/dw_chain.cpp).
// Run layer by layer, the expanded tensor (e.g. 96 x 112 x 112 floats, 4.8 MB an image) is written
// to memory and read back twice; the SIMD kernels (dwchain_impl.h) keep it in a few cache-resident
// rows instead. Same contract as conv2d.h: raw pointers, no throwing; a kernel may decline (return
// false), ref accepts everything.
#pragma once
#include <cstdint>

namespace cnnfast {

// A stage's activation after its bias: none, relu = max(0, v), clamp = min(max(a*v + b, lo), hi),
// hardswish = v * min(max(a*v + b, lo), hi) (kernels/pointwise's kinds).
enum ChainActKind : int { kChainNone = 0, kChainRelu = 1, kChainClamp = 2, kChainHardswish = 3 };
struct ChainAct {
  int kind;
  double a, b, lo, hi;
};

struct DwChain {
  int64_t N, C, H, W;      // input
  int64_t E;               // channels of the depthwise stage (C without an expand stage)
  int64_t K;               // output channels (E without a project stage)
  int64_t R, stride, pad;  // depthwise R x R filter, stride and zero padding on both axes
  int64_t OH, OW;          // output plane
  bool expand, project;    // stages present
  ChainAct ea, da, pa;     // expand, depthwise, project activations
};

// y[N, K, OH, OW]. we: E x C (expand), wd: E x R x R, wp: K x E (project); biases of E, E, K or null.
template <typename T>
using dwchain_fwd_sig = bool(const DwChain& p, const T* x, const T* we, const T* be, const T* wd, const T* bd,
                             const T* wp, const T* bp, T* y);

}  // namespace cnnfast
