// linear kernels for avx512: the width-generic algorithm of linear_impl.h on avx512 vectors.
#include "dispatch/kernels.h"
#include "kernels/linear/linear_impl.h"

namespace cnnfast {

bool linear_fwd_f32_avx512(int64_t m, int64_t n, int64_t k, const float* a, const float* b, const float* bias,
                           float* y) {
  return linear_simd::fwd<Avx512F32>(m, n, k, a, b, bias, y);
}
bool linear_fwd_f64_avx512(int64_t m, int64_t n, int64_t k, const double* a, const double* b, const double* bias,
                           double* y) {
  return linear_simd::fwd<Avx512F64>(m, n, k, a, b, bias, y);
}

}  // namespace cnnfast
