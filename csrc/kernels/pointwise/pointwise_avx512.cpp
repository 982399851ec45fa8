// pointwise kernels for avx512: the width-generic algorithm of pointwise_impl.h on avx512 vectors.
#include "dispatch/kernels.h"
#include "kernels/pointwise/pointwise_impl.h"

namespace cnnfast {

bool pointwise_fwd_f32_avx512(int64_t n, const float* x, float* y, int kind, float a, float b, float lo, float hi) {
  return pointwise_simd::fwd<Avx512F32>(n, x, y, kind, a, b, lo, hi);
}
bool pointwise_fwd_f64_avx512(int64_t n, const double* x, double* y, int kind, double a, double b, double lo,
                              double hi) {
  return pointwise_simd::fwd<Avx512F64>(n, x, y, kind, a, b, lo, hi);
}

}  // namespace cnnfast
