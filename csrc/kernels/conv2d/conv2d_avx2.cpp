// conv2d for AVX2 + FMA: the width-generic GEMM algorithm of conv2d_gemm.h instantiated with
// 256-bit vectors. 6 x 16 (f32) / 6 x 8 (f64) register tiles: 12 ymm accumulators + 2 B vectors
// + 1 broadcast out of 16 registers. Weights read in place (no packing: with vbroadcastss as a
// separate instruction, packing gains nothing at 16 registers and measured no faster on Zen 4).
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_gemm.h"

namespace cnnfast {
namespace {
struct Blocking {
  static constexpr int MR = 6;  // rows of the register tile (see above)
  static constexpr int MRP = 0;
  static constexpr int64_t pack_min_cols = 0;
  static constexpr int64_t kc_fwd = convgemm::kKcFwd;
  static constexpr int64_t tile_bytes = convgemm::kTileBytes;
  static constexpr int64_t bwd_input_fwd_min_cg = convgemm::kBwdInputFwdMinCg;
  static constexpr int MRW = 0;  // bwd_weight: MR row pointers
  static constexpr int64_t kc_bww = convgemm::kKc;
};
}  // namespace

bool conv2d_fwd_f32_avx2(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y, bool relu) {
  return convgemm::fwd<Avx2F32, Blocking>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx2(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                         bool relu) {
  return convgemm::fwd<Avx2F64, Blocking>(p, x, w, b, y, relu);
}

bool conv2d_bwd_input_f32_avx2(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return convgemm::bwd_input<Avx2F32, Blocking>(p, gy, w, gx);
}
bool conv2d_bwd_input_f64_avx2(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return convgemm::bwd_input<Avx2F64, Blocking>(p, gy, w, gx);
}
bool conv2d_bwd_weight_f32_avx2(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  return convgemm::bwd_weight<Avx2F32, Blocking>(p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f64_avx2(const Conv2dShape& p, const double* x, const double* gy, double* gw, double* gb) {
  return convgemm::bwd_weight<Avx2F64, Blocking>(p, x, gy, gw, gb);
}

}  // namespace cnnfast
