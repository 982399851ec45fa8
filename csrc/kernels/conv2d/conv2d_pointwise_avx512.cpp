// Direct pointwise (1x1) conv2d forward for small planes (conv2d_pointwise.h) with the avx512 vectors:
// register tile 6 output channels x 4 pixel vectors for planes of at most 4 vectors (7x7 floats: the
// whole plane in one tile), else 8 x 3. Registered in conv2d.inc.
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_pointwise.h"

namespace cnnfast {

bool conv2d_fwd_f32_avx512_pointwise(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y, bool relu) { return p.OH * p.OW <= 4 * Avx512F32::N ? pointwise::fwd<Avx512F32, 6, 4>(p, x, w, b, y, relu) : pointwise::fwd<Avx512F32, 8, 3>(p, x, w, b, y, relu); }
bool conv2d_fwd_f64_avx512_pointwise(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y, bool relu) { return p.OH * p.OW <= 4 * Avx512F64::N ? pointwise::fwd<Avx512F64, 6, 4>(p, x, w, b, y, relu) : pointwise::fwd<Avx512F64, 8, 3>(p, x, w, b, y, relu); }

}  // namespace cnnfast
