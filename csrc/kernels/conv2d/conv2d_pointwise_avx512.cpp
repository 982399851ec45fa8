// Direct pointwise (1x1) conv2d forward (conv2d_pointwise.h) with the avx512 vectors: register
// tile 6 output channels x 4 pixel vectors for planes of 50..64 floats (32..64 doubles: the whole
// plane in one tile), else 8 x 3 (24 zmm accumulators; a 7x7 plane is 3 vectors + a tail pixel).
// Registered in conv2d.inc.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_pointwise.h"

namespace cnnfast {
namespace {
template <class V>
bool pointwise_avx512(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* b,
                      typename V::T* y, bool relu) {
  const int64_t P = p.OH * p.OW;
  if (P <= 4 * V::N && 8 * (P % V::N) > V::N)
    return pointwise::fwd<V, 6, 4>(p, x, w, b, y, relu, pointwise::prefers_gemm_avx512);
  return pointwise::fwd<V, 8, 3>(p, x, w, b, y, relu, pointwise::prefers_gemm_avx512);
}
}  // namespace

bool conv2d_fwd_f32_avx512_pointwise(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                                     bool relu) {
  return pointwise_avx512<Avx512F32>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx512_pointwise(const Conv2dShape& p, const double* x, const double* w, const double* b,
                                     double* y, bool relu) {
  return pointwise_avx512<Avx512F64>(p, x, w, b, y, relu);
}

}  // namespace cnnfast
