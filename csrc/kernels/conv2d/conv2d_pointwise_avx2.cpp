// Direct pointwise (1x1) conv2d forward (conv2d_pointwise.h) with the avx2 vectors: register tile
// 4 output channels x 3 pixel vectors for float32 (6 x 2 for float64): 12 ymm accumulators, the
// input vectors and 1 broadcast.
// Registered in conv2d.inc.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_pointwise.h"

namespace cnnfast {

bool conv2d_fwd_f32_avx2_pointwise(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                   bool relu) {
  return pointwise::fwd<Avx2F32, 4, 3>(p, x, w, b, y, relu, pointwise::prefers_gemm_avx2);
}
bool conv2d_fwd_f64_avx2_pointwise(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                                   bool relu) {
  return pointwise::fwd<Avx2F64, 6, 2>(p, x, w, b, y, relu, pointwise::prefers_gemm_avx2);
}

bool conv2d_bwd_input_f32_avx2_pointwise(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return pointwise::bwd_input<Avx2F32>(p, gy, w, gx, conv2d_fwd_f32_avx2_pointwise);
}
bool conv2d_bwd_input_f64_avx2_pointwise(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return pointwise::bwd_input<Avx2F64>(p, gy, w, gx, conv2d_fwd_f64_avx2_pointwise);
}

}  // namespace cnnfast
