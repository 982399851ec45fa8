// Direct pointwise (1x1) conv2d forward (conv2d_pointwise.h) with the avx512 vectors: register
// tile 6 output channels x 4 pixel vectors for planes of 50..64 floats (32..64 doubles: the whole
// plane in one tile), else 8 x 3 (24 zmm accumulators; a 7x7 plane is 3 vectors + a tail pixel).
// Channel blocks of up to 32 KB of one tile width (pointwise::fwd's ChannelBlockBytes; 20 KB on
// AVX2): chosen because (Xeon, 1 thread, CPU time, median of 5 fresh-process rounds,
// bench/pointwise_layers.py, batch 1) it ran the layers with 128-960 input channels 1.02-1.06x
// faster than 20 KB (fewer partial-sum passes; 0.96-0.97x at 576 -> 96 and 96 -> 576, 1.01x on
// all 31 mobile layers); strips of 32 KB as well measured 0.90-0.93x at 16-32 input channels on
// 112x112, so kStripBytes stays. Registered in conv2d.inc.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_pointwise.h"

namespace cnnfast {
namespace {
constexpr int64_t kChannelBlockBytes = 32 * 1024;

template <class V>
bool pointwise_avx512(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* b,
                      typename V::T* y, bool relu) {
  const int64_t P = p.OH * p.OW;
  if (P <= 4 * V::N && 8 * (P % V::N) > V::N)
    return pointwise::fwd<V, 6, 4, kChannelBlockBytes>(p, x, w, b, y, relu, pointwise::prefers_gemm_avx512);
  return pointwise::fwd<V, 8, 3, kChannelBlockBytes>(p, x, w, b, y, relu, pointwise::prefers_gemm_avx512);
}
}  // namespace

bool conv2d_fwd_f32_avx512_pointwise(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                     bool relu) {
  return pointwise_avx512<Avx512F32>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx512_pointwise(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                                     bool relu) {
  return pointwise_avx512<Avx512F64>(p, x, w, b, y, relu);
}

bool conv2d_bwd_input_f32_avx512_pointwise(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return pointwise::bwd_input<Avx512F32>(p, gy, w, gx, pointwise_avx512<Avx512F32>);
}
bool conv2d_bwd_input_f64_avx512_pointwise(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return pointwise::bwd_input<Avx512F64>(p, gy, w, gx, pointwise_avx512<Avx512F64>);
}

}  // namespace cnnfast
