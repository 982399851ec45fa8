// Direct conv2d kernels (depthwise; dense small-C / small-plane) for avx512: thin instantiations of the
// width-generic algorithms in conv2d_direct.h with 512-bit vectors (256-bit for the dense weight
// gradient of output rows up to 8 values, below). Registered in conv2d.inc.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_direct.h"

namespace cnnfast {

bool conv2d_fwd_f32_avx512_depthwise(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                     bool relu) {
  return direct::dw_fwd_any<Avx512F32>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx512_depthwise(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                                     bool relu) {
  return direct::dw_fwd_any<Avx512F64>(p, x, w, b, y, relu);
}
bool conv2d_bwd_input_f32_avx512_depthwise(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return direct::dw_bwd_input_any<Avx512F32>(p, gy, w, gx);
}
bool conv2d_bwd_input_f64_avx512_depthwise(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return direct::dw_bwd_input_any<Avx512F64>(p, gy, w, gx);
}
bool conv2d_bwd_weight_f32_avx512_depthwise(const Conv2dShape& p, const float* x, const float* gy, float* gw,
                                            float* gb) {
  return direct::dw_bwd_weight_any<Avx512F32>(p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f64_avx512_depthwise(const Conv2dShape& p, const double* x, const double* gy, double* gw,
                                            double* gb) {
  return direct::dw_bwd_weight_any<Avx512F64>(p, x, gy, gw, gb);
}

bool conv2d_fwd_f32_avx512_dense(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                 bool relu) {
  return direct::dense_fwd<Avx512F32>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx512_dense(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                                 bool relu) {
  return direct::dense_fwd<Avx512F64>(p, x, w, b, y, relu);
}
bool conv2d_bwd_weight_f32_avx512_dense(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  // Output rows of at most 8 values (LeNet's c2 on the unpadded 28 x 28 input: 12 x 12 -> 8 x 8) on
  // 256-bit vectors: 512-bit ones were half empty. chosen because (Xeon, 1 thread, CPU=1 T=1
  // bench/ab_builds.py c2_12,c2_12_n8,c5_8_12 bwd_weight) AVX-512 ran them 0.81x-0.85x of the AVX2
  // build before, 1.12x-1.13x after. (The forward's dense kernel, same test: 0.83x-1.39x: unchanged.)
  if (p.OW <= 8) return direct::dense_bwd_weight<Avx2F32>(p, x, gy, gw, gb);
  return direct::dense_bwd_weight<Avx512F32>(p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f64_avx512_dense(const Conv2dShape& p, const double* x, const double* gy, double* gw,
                                        double* gb) {
  return direct::dense_bwd_weight<Avx512F64>(p, x, gy, gw, gb);
}

bool conv2d_bwd_input_f32_avx512_dense(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return direct::dense_bwd_input<Avx512F32>(p, gy, w, gx);
}
bool conv2d_bwd_input_f64_avx512_dense(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return direct::dense_bwd_input<Avx512F64>(p, gy, w, gx);
}
}  // namespace cnnfast
