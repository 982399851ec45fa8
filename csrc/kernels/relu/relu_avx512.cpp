// relu kernels for avx512: the width-generic algorithm of relu_impl.h on avx512 vectors.
#include "dispatch/kernels.h"
#include "kernels/relu/relu_impl.h"

namespace cnnfast {

bool relu_fwd_f32_avx512(int64_t n, const float* x, float* y) { return relu_simd::fwd<Avx512F32>(n, x, y); }
bool relu_fwd_f64_avx512(int64_t n, const double* x, double* y) { return relu_simd::fwd<Avx512F64>(n, x, y); }
bool relu_bwd_f32_avx512(int64_t n, const float* gy, const float* x, float* gx) {
  return relu_simd::bwd<Avx512F32>(n, gy, x, gx);
}
bool relu_bwd_f64_avx512(int64_t n, const double* gy, const double* x, double* gx) {
  return relu_simd::bwd<Avx512F64>(n, gy, x, gx);
}

}  // namespace cnnfast
