// dwchain kernels for avx2 (dwchain_impl.h): 4 output rows x 1 column vector per depthwise block
// (16 registers), 2 rows at stride 2, 4 x 3 register tiles for the 1x1 stages (6 x 2 for doubles,
// as conv2d_pointwise_avx2.cpp).
#include "dispatch/kernels.h"
#include "kernels/dwchain/dwchain_impl.h"

namespace cnnfast {

bool dwchain_fwd_f32_avx2(const DwChain& p, const float* x, const float* we, const float* be, const float* wd,
                          const float* bd, const float* wp, const float* bp, float* y) {
  return dwchain::fwd<Avx2F32, kDwChainRowsS1, 1, kDwChainRowsS2, 4, 3>(p, x, we, be, wd, bd, wp, bp, y);
}
bool dwchain_fwd_f64_avx2(const DwChain& p, const double* x, const double* we, const double* be, const double* wd,
                          const double* bd, const double* wp, const double* bp, double* y) {
  return dwchain::fwd<Avx2F64, kDwChainRowsS1, 1, kDwChainRowsS2, 6, 2>(p, x, we, be, wd, bd, wp, bp, y);
}

}  // namespace cnnfast
