// Direct (no im2col, no GEMM) conv2d kernels for the shapes a GEMM handles badly:
//
//   * depthwise: groups == C (one input channel per group), any depth multiplier M = K / C.
//     Sobel/blur filters on images (cnnfast.filters) and MobileNet-style layers.
//   * small-C dense: groups == 1 and C <= kSmallCMaxChannels (LeNet c1, the ResNet stem): the
//     reduction C*R*S is too short for a GEMM to reach its peak.
//   * small-plane dense: groups == 1 and a padded image small enough to copy whole (LeNet c2),
//     see "Small-plane dense" below; its forward pass also takes every small-C layer.
//
//
// Files: conv2d_direct_common.h (helpers, microkernels), conv2d_depthwise.h, conv2d_small_c.h,
// conv2d_plane.h; this header adds the registered "dense" entries and includes them all.
// Everything here is written once, templated on a small vector type V (Avx2F32/Avx2F64 or Avx512F32/Avx512F64
// from common/simd.h), and instantiated by the thin files conv2d_direct_<isa>.cpp, so the
// AVX2 build and its tests validate the algorithm the AVX-512 build runs.
//
// The one idea behind all passes: vectorise along a row (W), and never branch on borders in the
// inner loop. Every input row a pass reads is first copied into a small per-thread buffer that
// is zero-padded and, for a column stride sw > 1, split into sw phases (phase q holds padded
// columns q, q+sw, q+2sw, ...). Tap (r, s) of output column ow then reads phase (s*dw) % sw at
// index ow + (s*dw) / sw: a contiguous, unmasked vector load whatever the padding, stride or
// dilation. Copied rows live in a small ring (RowCache) so each is copied once per plane.
//
//   forward       y_row[j]  = bias + sum over taps t of w_t * src_t[j]                (row_engine)
//   bwd_input     the same engine on zero-padded grad_output rows, one pass per column phase of
//                 grad_input (the taps of phase q are the s with (s*dw) % sw == q)
//   bwd_weight    gw_t += dot(gy_row, src_t) with vector accumulators per tap      (dot_block;
//                 small C: dot_rows, the accumulators held over a group of rows);
//                 grad_bias is the tap whose source row is all ones.
//
// Results do not depend on the thread count: rows are computed identically whatever the
// partition, and bwd_weight splits its reduction into a fixed number of parts summed in order.
//
// Contract (conv2d.h): raw pointers, never throw. Scratch comes from malloc; if that fails the
// kernel declines (returns false) before writing anything, and the next implementation runs.
//
// Everything is in an anonymous namespace: each ISA file gets its own copy compiled with its own
// flags, so the linker can never pick an AVX-512 instantiation for the AVX2 path.
#pragma once
#include "kernels/conv2d/conv2d_depthwise.h"
#include "kernels/conv2d/conv2d_plane.h"
#include "kernels/conv2d/conv2d_small_c.h"

namespace cnnfast {
namespace direct {
namespace {

// The registered "dense" entries: small C first (streams rows of any size), then small planes.
template <class V>
bool dense_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
               typename V::T* y, bool relu) {
  return plane_fwd<V>(p, x, w, bias, y, relu) || sc_fwd<V>(p, x, w, bias, y, relu);
}
template <class V>
bool dense_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                      typename V::T* gb) {
  return sc_bwd_weight<V>(p, x, gy, gw, gb) || plane_bwd_weight<V>(p, x, gy, gw, gb);
}
template <class V>
bool dense_bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  return plane_bwd_input<V>(p, gy, w, gx) || plane_bwd_input_full<V>(p, gy, w, gx);
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
