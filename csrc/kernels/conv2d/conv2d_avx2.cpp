// conv2d for AVX2 + FMA: the width-generic GEMM algorithm of conv2d_gemm.h instantiated with
// 256-bit vectors. 6 x 16 (f32) / 6 x 8 (f64) register tiles: 12 ymm accumulators + 2 B vectors
// + 1 broadcast out of 16 registers.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_gemm.h"

namespace cnnfast {
namespace {
constexpr int kMR = 6;  // rows of the register tile (see above)
}  // namespace

bool conv2d_fwd_f32_avx2(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y, bool relu) {
  return convgemm::fwd<Avx2F32, kMR>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx2(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                         bool relu) {
  return convgemm::fwd<Avx2F64, kMR>(p, x, w, b, y, relu);
}

}  // namespace cnnfast
