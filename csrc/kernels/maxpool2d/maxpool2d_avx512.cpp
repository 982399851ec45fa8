// max_pool2d kernels for avx512: the width-generic algorithm of maxpool2d_impl.h on avx512 vectors.
#include "dispatch/kernels.h"
#include "kernels/maxpool2d/maxpool2d_impl.h"

namespace cnnfast {

bool maxpool2d_fwd_f32_avx512(const Pool2dShape& p, const float* x, float* y, int64_t* idx) {
  return pool_simd::fwd<Avx512F32>(p, x, y, idx);
}
bool maxpool2d_fwd_f64_avx512(const Pool2dShape& p, const double* x, double* y, int64_t* idx) {
  return pool_simd::fwd<Avx512F64>(p, x, y, idx);
}
bool maxpool2d_bwd_f32_avx512(const Pool2dShape& p, const float* gy, const int64_t* idx, float* gx) {
  return pool_simd::bwd(p, gy, idx, gx);
}
bool maxpool2d_bwd_f64_avx512(const Pool2dShape& p, const double* gy, const int64_t* idx, double* gx) {
  return pool_simd::bwd(p, gy, idx, gx);
}

}  // namespace cnnfast
