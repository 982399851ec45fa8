// dwchain kernels for avx512 (dwchain_impl.h): 4 output rows x 2 column vectors per stride-1 3x3
// depthwise block (as the layer-wise dw_rows kernel), 2 rows per stride-2 block (keeps the
// phase-split ring of 96 channels x 112 columns under 0.5 MB), 8 x 3 register tiles for the 1x1
// stages (as conv2d_pointwise_avx512.cpp).
#include "dispatch/kernels.h"
#include "kernels/dwchain/dwchain_impl.h"

namespace cnnfast {

bool dwchain_fwd_f32_avx512(const DwChain& p, const float* x, const float* we, const float* be, const float* wd,
                            const float* bd, const float* wp, const float* bp, float* y) {
  return dwchain::fwd<Avx512F32, kDwChainRowsS1, 2, kDwChainRowsS2, 8, 3>(p, x, we, be, wd, bd, wp, bp, y);
}
bool dwchain_fwd_f64_avx512(const DwChain& p, const double* x, const double* we, const double* be, const double* wd,
                            const double* bd, const double* wp, const double* bp, double* y) {
  return dwchain::fwd<Avx512F64, kDwChainRowsS1, 2, kDwChainRowsS2, 8, 3>(p, x, we, be, wd, bd, wp, bp, y);
}

}  // namespace cnnfast
