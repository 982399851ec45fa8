// conv2d for AVX-512F: the width-generic GEMM algorithm of conv2d_gemm.h instantiated with
// 512-bit vectors and its own blocking (32 zmm registers, two 512-bit FMA units on Intel).
#include "dispatch/kernels.h"
#include "kernels/conv2d/conv2d_gemm.h"

namespace cnnfast {
namespace {
struct Blocking {
  // Row-pointer tiles (weights read in place, small N*OH*OW; bwd_weight; bwd_input): 8 x 32 (f32),
  // 16 zmm accumulators; more rows would spill the general registers holding the row pointers.
  static constexpr int MR = 8;
  // Packed weights: up to 14 x 32, 28 zmm accumulators + 2 B vectors, the broadcasts folded into
  // the multiply-adds. chosen because (Xeon, one thread, B block in L2) 14 x 32 packed ran at
  // ~90% of the FMA peak against ~70% for 8 x 32 row pointers, 12 x 32 ~83%, 8 x 48 ~78%.
  static constexpr int MRP = 14;
  static constexpr int64_t pack_min_cols = 256;
  static constexpr int64_t kc_fwd = convgemm::kKcFwd;
  static constexpr int64_t tile_bytes = convgemm::kTileBytes;
  // bwd_weight: 14 x 32 tiles over the im2col block laid out at a fixed row stride (kc_bww + 16).
  static constexpr int MRW = 14;
  static constexpr int64_t kc_bww = 256;
};
}  // namespace

bool conv2d_fwd_f32_avx512(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                           bool relu) {
  return convgemm::fwd<Avx512F32, Blocking>(p, x, w, b, y, relu);
}
bool conv2d_fwd_f64_avx512(const Conv2dShape& p, const double* x, const double* w, const double* b, double* y,
                           bool relu) {
  return convgemm::fwd<Avx512F64, Blocking>(p, x, w, b, y, relu);
}

bool conv2d_bwd_input_f32_avx512(const Conv2dShape& p, const float* gy, const float* w, float* gx) {
  return convgemm::bwd_input<Avx512F32, Blocking>(p, gy, w, gx);
}
bool conv2d_bwd_input_f64_avx512(const Conv2dShape& p, const double* gy, const double* w, double* gx) {
  return convgemm::bwd_input<Avx512F64, Blocking>(p, gy, w, gx);
}
bool conv2d_bwd_weight_f32_avx512(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  return convgemm::bwd_weight<Avx512F32, Blocking>(p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f64_avx512(const Conv2dShape& p, const double* x, const double* gy, double* gw, double* gb) {
  return convgemm::bwd_weight<Avx512F64, Blocking>(p, x, gy, gw, gb);
}

}  // namespace cnnfast
