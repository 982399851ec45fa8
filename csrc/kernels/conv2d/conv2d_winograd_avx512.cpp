// Winograd F(4x4, 3x3) conv2d for AVX-512F: the width-generic algorithm of conv2d_winograd.h
// instantiated with 512-bit vectors. 8 x 32 register tiles (8 output channels x 32 tiles): 16 zmm
// accumulators, MR as in the GEMM path (conv2d_avx512.cpp). Registered in conv2d.inc.
// The weight gradient of layers with fewer output channels than one 512-bit panel (NR = 32) runs
// the same algorithm on 256-bit vectors (16-channel panels, as on AVX2): with 512-bit panels half of
// each was padding, and the rule (C * K >= NR * NR) left C = K = 16 to the direct kernel, which ran
// these layers 0.83x-0.94x of the AVX2 build.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_winograd.h"
#include "kernels/conv2d/conv2d_winograd_wgrad.h"

namespace cnnfast {
namespace {
constexpr int kMR = 8;     // output channels per register tile (see above)
constexpr int kMR256 = 6;  // the 256-bit weight gradient's tile: conv2d_winograd_avx2.cpp's
}  // namespace

bool conv2d_fwd_f32_avx512_winograd(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                    bool relu) {
  return wino::fwd<Avx512F32, kMR>(p, x, w, b, y, relu);
}
bool conv2d_bwd_input_f32_avx512_winograd(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return wino::bwd_input<Avx512F32, kMR>(p, gy, w, gx);
}
bool conv2d_bwd_weight_f32_avx512_winograd(const Conv2dShape& p, const float* x, const float* gy, float* gw,
                                           float* gb) {
  if (p.K < 2 * Avx512F32::N) return wino::bwd_weight<Avx2F32, kMR256>(p, x, gy, gw, gb);
  return wino::bwd_weight<Avx512F32, kMR>(p, x, gy, gw, gb);
}

}  // namespace cnnfast
