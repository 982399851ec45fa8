// Direct conv2d kernels (depthwise; dense small-C / small-plane) for avx2: thin instantiations of the
// width-generic algorithms in conv2d_direct.h with 256-bit vectors. Registered in conv2d.inc.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_direct.h"

namespace cnnfast {

bool conv2d_fwd_f32_avx2_depthwise(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                   bool relu) {
  return direct::dw_fwd_any<Avx2F32>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx2_depthwise(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                                   bool relu) {
  return direct::dw_fwd_any<Avx2F64>(p, x, w, b, y, relu);
}
bool conv2d_bwd_input_f32_avx2_depthwise(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return direct::dw_bwd_input_any<Avx2F32>(p, gy, w, gx);
}
bool conv2d_bwd_input_f64_avx2_depthwise(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return direct::dw_bwd_input_any<Avx2F64>(p, gy, w, gx);
}
bool conv2d_bwd_weight_f32_avx2_depthwise(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  return direct::dw_bwd_weight_any<Avx2F32>(p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f64_avx2_depthwise(const Conv2dShape& p, const double* x, const double* gy, double* gw,
                                          double* gb) {
  return direct::dw_bwd_weight_any<Avx2F64>(p, x, gy, gw, gb);
}

bool conv2d_fwd_f32_avx2_dense(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                               bool relu) {
  return direct::dense_fwd<Avx2F32>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx2_dense(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                               bool relu) {
  return direct::dense_fwd<Avx2F64>(p, x, w, b, y, relu);
}
bool conv2d_bwd_weight_f32_avx2_dense(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  return direct::dense_bwd_weight<Avx2F32>(p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f64_avx2_dense(const Conv2dShape& p, const double* x, const double* gy, double* gw, double* gb) {
  return direct::dense_bwd_weight<Avx2F64>(p, x, gy, gw, gb);
}

bool conv2d_bwd_input_f32_avx2_dense(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return direct::dense_bwd_input<Avx2F32>(p, gy, w, gx);
}
bool conv2d_bwd_input_f64_avx2_dense(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return direct::dense_bwd_input<Avx2F64>(p, gy, w, gx);
}
}  // namespace cnnfast
