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
  // Forward packed B block (kc x nc): 512 KB, twice the AVX2 size. Each column tile streams every
  // weight once (the row blocks of A), so wider tiles cut that traffic: with 256 KB and C*R*S of
  // 600-6300 (5x5 and 7x7 layers) tiles were only 96 columns wide. chosen because (Xeon, AVX-512,
  // 1 thread, CPU time, median of 5 alternating rounds) 1 MB tiles ran the forward pass 5-14%
  // faster than 256 KB on 7x7 128->128 14x14 N=16, 5x5 64->64 14x14 N=8, 7x7 64 28x28 N=4, 5x5/s2
  // 48->96 56x56 N=4, 3x3/s2 64->128 56x56 N=16 and 1x1 512 7x7 N=64 (0.98x on 5x5 32->64 28x28
  // N=16), and 512 KB measured the same as 1 MB (0.97-1.02x) while leaving half of a 1 MB L2 to
  // the rest. A smaller reduction block (384) with 1 MB tiles measured 0.91-1.04x: kc_fwd stays
  // 640. (The AVX2 build measured 0.95-1.04x at 512 KB on this Xeon, and is tuned for Zen 4's
  // 1 MB L2: it keeps 256 KB.)
  static constexpr int64_t tile_bytes = 512 * 1024;
  // bwd_input as a forward conv (bwd_input_as_fwd) from 48 input channels per group (AVX2: 96).
  // chosen because (Xeon, 1 thread, CPU time, median of 5 alternating rounds) bwd_input ran
  // 1.13-1.24x faster than with 96 at C = 48, 64 and 80 (5x5 and 7x7, 14x14 to 32x32, N = 4-8;
  // 1x1 64 56x56 N=16), while at C = 32 the forward conv measured 0.85x (K = 64) and 1.27x (K = 32)
  // of col2im. With the AVX2 kernels the forward conv measured 0.90-1.07x of col2im at C = 48-80:
  // they keep 96.
  static constexpr int64_t bwd_input_fwd_min_cg = 48;
  // bwd_weight: 14 x 32 tiles over the im2col block laid out at a fixed row stride (kc_bww + 16).
  static constexpr int MRW = 14;
  static constexpr int64_t kc_bww = 256;
};
}  // namespace

bool conv2d_fwd_f32_avx512(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y, bool relu) {
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
// 1x1 layers with at most 16 output channels per group: the weight gradient's tiles are MRW rows x
// 32 output channels here, half of each padding, so the AVX2 build's 16-channel tiles run instead
// (256-bit vectors, its own blocking).
bool conv2d_bwd_weight_f32_avx512(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  if (p.R == 1 && p.S == 1 && p.Kg() <= 16) return conv2d_bwd_weight_f32_avx2(p, x, gy, gw, gb);
  return convgemm::bwd_weight<Avx512F32, Blocking>(p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f64_avx512(const Conv2dShape& p, const double* x, const double* gy, double* gw, double* gb) {
  return convgemm::bwd_weight<Avx512F64, Blocking>(p, x, gy, gw, gb);
}

}  // namespace cnnfast
