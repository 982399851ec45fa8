// A depthwise-separable chain in one pass over the image: [1x1 expand + act] -> RxR depthwise
// (stride 1 or 2) + act -> [1x1 project + act], the body of MobileNet / EfficientNet / PP-LCNet
// blocks in eval inference, with the BatchNorms already folded into the weights (ops/dw_chain.cpp).
// Run layer by layer, the expanded tensor (e.g. 96 x 112 x 112 floats, 4.8 MB an image) is written
// to memory and read back twice; the SIMD kernels (dwchain_impl.h) keep it in a few cache-resident
// rows instead. Same contract as conv2d.h: raw pointers, no throwing; a kernel may decline (return
// false), ref accepts everything.
#pragma once
#include <cstdint>

#include "kernels/conv2d/conv2d.h"

namespace cnnfast {

// A stage's activation after its bias: none, relu = max(0, v), clamp = min(max(a*v + b, lo), hi),
// hardswish = v * min(max(a*v + b, lo), hi): the conv kernels' fused activation (conv2d.h).
using ChainAct = ConvAct;
constexpr int kChainNone = kActNone, kChainRelu = kActRelu, kChainClamp = kActClamp, kChainHardswish = kActHardswish;

struct DwChain {
  int64_t N, C, H, W;      // input
  int64_t E;               // channels of the depthwise stage (C without an expand stage)
  int64_t K;               // output channels (E without a project stage)
  int64_t R, stride, pad;  // depthwise R x R filter, stride and zero padding on both axes
  int64_t OH, OW;          // output plane
  bool expand, project;    // stages present
  ChainAct ea, da, pa;     // expand, depthwise, project activations
};

// Output rows per depthwise register block at stride 1 / 2 (every ISA's kernels use these).
constexpr int64_t kDwChainRowsS1 = 4, kDwChainRowsS2 = 2;

// Row chunks each image is cut into (work units = N x chunks): enough for `threads`, but with an
// expand stage each chunk re-expands the R - stride rows above its first row, so a chunk keeps at
// least 4x that many rows of its own (without one, nothing is recomputed). The ops layer declines
// chains that would leave threads idle (batch 1 on a 14x14 plane), which the layer-wise kernels use.
inline int64_t dwchain_row_chunks(const DwChain& p, int64_t threads) {
  const int64_t rb = p.stride == 1 ? kDwChainRowsS1 : kDwChainRowsS2, nblk = (p.OH + rb - 1) / rb;
  if (p.N >= threads) return 1;
  const int64_t halo = p.R - p.stride, per = p.expand ? (4 * halo + p.stride - 1) / p.stride : 0;
  const int64_t min_rows = per > rb ? per : rb, want = (threads + p.N - 1) / p.N;
  int64_t rc = nblk < want ? nblk : want;
  if (p.OH / min_rows < rc) rc = p.OH / min_rows;
  return rc < 1 ? 1 : rc;
}

// y[N, K, OH, OW]. we: E x C (expand), wd: E x R x R, wp: K x E (project); biases of E, E, K or null.
template <typename T>
using dwchain_fwd_sig = bool(const DwChain& p, const T* x, const T* we, const T* be, const T* wd, const T* bd,
                             const T* wp, const T* bp, T* y);

}  // namespace cnnfast
