// gap / chscale kernels for avx512: the width-generic loops of se_impl.h on avx512 vectors.
#include "dispatch/kernels.h"
#include "kernels/se/se_impl.h"

namespace cnnfast {

bool gap_fwd_f32_avx512(int64_t planes, int64_t hw, const float* x, float* mean) {
  return se_simd::gap<Avx512F32>(planes, hw, x, mean);
}
bool gap_fwd_f64_avx512(int64_t planes, int64_t hw, const double* x, double* mean) {
  return se_simd::gap<Avx512F64>(planes, hw, x, mean);
}
bool chscale_fwd_f32_avx512(int64_t planes, int64_t hw, const float* x, const float* s, float* y) {
  return se_simd::chscale<Avx512F32>(planes, hw, x, s, y);
}
bool chscale_fwd_f64_avx512(int64_t planes, int64_t hw, const double* x, const double* s, double* y) {
  return se_simd::chscale<Avx512F64>(planes, hw, x, s, y);
}

}  // namespace cnnfast
