// Winograd F(4x4, 3x3) conv2d for AVX2 + FMA: the width-generic algorithm of conv2d_winograd.h
// instantiated with 256-bit vectors. 6 x 16 register tiles (6 output channels x 16 tiles): 12 ymm
// accumulators + 2 B vectors + 1 broadcast, as in the GEMM path. Registered in conv2d.inc.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_winograd.h"
#include "kernels/conv2d/conv2d_winograd_wgrad.h"

namespace cnnfast {
namespace {
constexpr int kMR = 6;  // output channels per register tile (see above)
}  // namespace

bool conv2d_fwd_f32_avx2_winograd(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                  bool relu) {
  return wino::fwd<Avx2F32, kMR>(p, x, w, b, y, relu);
}
bool conv2d_bwd_input_f32_avx2_winograd(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return wino::bwd_input<Avx2F32, kMR>(p, gy, w, gx);
}
bool conv2d_bwd_weight_f32_avx2_winograd(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  return wino::bwd_weight<Avx2F32, kMR>(p, x, gy, gw, gb);
}

}  // namespace cnnfast
