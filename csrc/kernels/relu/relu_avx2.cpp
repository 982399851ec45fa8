// relu kernels for avx2: the width-generic algorithm of relu_impl.h on avx2 vectors.
#include "dispatch/kernels.h"
#include "kernels/relu/relu_impl.h"

namespace cnnfast {

bool relu_fwd_f32_avx2(int64_t n, const float* x, float* y) { return relu_simd::fwd<Avx2F32>(n, x, y); }
bool relu_fwd_f64_avx2(int64_t n, const double* x, double* y) { return relu_simd::fwd<Avx2F64>(n, x, y); }
bool relu_bwd_f32_avx2(int64_t n, const float* gy, const float* x, float* gx) {
  return relu_simd::bwd<Avx2F32>(n, gy, x, gx);
}
bool relu_bwd_f64_avx2(int64_t n, const double* gy, const double* x, double* gx) {
  return relu_simd::bwd<Avx2F64>(n, gy, x, gx);
}

}  // namespace cnnfast
