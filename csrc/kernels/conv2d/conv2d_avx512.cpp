// conv2d for AVX-512F: the width-generic GEMM algorithm of conv2d_gemm.h instantiated with
// 512-bit vectors. 8 x 32 (f32) / 8 x 16 (f64) register tiles: 16 zmm accumulators; MR stays at 8
// because forward broadcasts A from MR row pointers, and more would spill general registers.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_gemm.h"

namespace cnnfast {
namespace {
constexpr int kMR = 8;  // rows of the register tile (see above)
}  // namespace

bool conv2d_fwd_f32_avx512(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                           bool relu) {
  return convgemm::fwd<Avx512F32, kMR>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx512(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                           bool relu) {
  return convgemm::fwd<Avx512F64, kMR>(p, x, w, b, y, relu);
}

}  // namespace cnnfast
