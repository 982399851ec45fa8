// Register-blocked GEMM microkernels shared by the im2col+GEMM (conv2d_gemm.h) and Winograd
// (conv2d_winograd.h) conv kernels, written once for any vector type V of common/simd.h.
//
// acc[i][v] = sum_k A(i, k) * B(k, v*N .. v*N+N) over k < kc: per step, NV vectors of a B row are
// loaded and MR values of A broadcast (BLIS-style; AVX2 f32 MR=6, NV=2 is 12 ymm accumulators).
// B rows are ldb elements apart (the packed panel width NR for the GEMM, callers pass it as a
// constant so the inlined loop is the same as with a compile-time stride).
//
// Internal linkage (anonymous namespace): see common/simd.h.
#pragma once
#include <cstdint>
#include <type_traits>

#include "common/parallel.h"
#include "common/portable.h"
#include "common/simd.h"
#include "common/static_n.h"

namespace cnnfast {
namespace {
namespace convgemm {

// A given as MR row pointers, unit stride along k.
template <class V, int MR, int NV>
CNNFAST_FORCE_INLINE void ukernel_rows(int64_t kc, const typename V::T* const (&a)[MR], const typename V::T* b,
                                       int64_t ldb, typename V::R (&acc)[MR][NV]) {
  using R = typename V::R;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  for (int64_t k = 0; k < kc; ++k) {
    R bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + k * ldb + v * V::N);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const R av = V::set1(a[i][k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(av, bv[v], acc[i][v]);
    }
  }
}

// A row-major with the compile-time row stride LDA: A(i, k) = a[i * LDA + k]. One pointer, the MR
// rows at constant offsets, so a tall tile (14 rows on AVX-512) needs no register per row.
template <class V, int MR, int NV, int64_t LDA>
CNNFAST_FORCE_INLINE void ukernel_rows_lda(int64_t kc, const typename V::T* a, const typename V::T* b, int64_t ldb,
                                           typename V::R (&acc)[MR][NV]) {
  using R = typename V::R;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  for (int64_t k = 0; k < kc; ++k) {
    R bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + k * ldb + v * V::N);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const R av = V::set1(a[i * LDA + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(av, bv[v], acc[i][v]);
    }
  }
}

// A column-major: the MR values of step k are contiguous at a + k * lda. With A packed in
// MR-row panels (lda == MR) every broadcast is a constant offset from one pointer, so the AVX-512
// build folds it into the multiply-add ({1to16} memory operand) and a 14 x 32 tile (28 zmm
// accumulators + 2 B vectors) needs no register for A at all. PF: A is read in place with a long
// stride (grad_input reads W^T's columns: lda = C*R*S values), beyond what the hardware stride
// prefetchers follow (2 KB), so every step waited for a line from L2; the lines of step k + kPfA
// are prefetched.
constexpr int64_t kPfA = 8;
template <class V, int MR, int NV, bool PF = false>
CNNFAST_FORCE_INLINE void ukernel_cols(int64_t kc, const typename V::T* a, int64_t lda, const typename V::T* b,
                                       int64_t ldb, typename V::R (&acc)[MR][NV]) {
  using R = typename V::R;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  for (int64_t k = 0; k < kc; ++k) {
    if constexpr (PF) {
      __builtin_prefetch(a + kPfA * lda);
      __builtin_prefetch(a + kPfA * lda + MR - 1);
    }
    R bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + k * ldb + v * V::N);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const R av = V::set1(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(av, bv[v], acc[i][v]);
    }
    a += lda;
  }
}

// grad_bias[k] = the sum of gy[n][k][0 .. P) over every image n (NCHW, planes of P values), for the
// GEMM and Winograd weight-gradient kernels. Per channel, every image's plane into the same four
// vectors of lane-wise partial sums (add_run, simd.h; a scalar chain over 3.2 M values took 1.5 ms,
// as long as the MobileNetV2 stem's whole weight gradient): the order depends on the shape only,
// never on the thread count.
template <class V>
void bias_grad(const typename V::T* gy, int64_t N, int64_t K, int64_t P, typename V::T* gb) {
  parallel_for(K, N * P, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      typename V::R a[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
      for (int64_t n = 0; n < N; ++n) add_run<V>(gy + (n * K + k) * P, P, a);
      gb[k] = sum_of<V>(a);
    }
  });
}

}  // namespace convgemm
}  // namespace
}  // namespace cnnfast
