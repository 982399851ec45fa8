// Direct pointwise (1x1, stride 1, no padding, groups 1) forward conv for small planes, written
// once for any vector type V of common/simd.h and instantiated in conv2d_pointwise_avx512.cpp (AVX2: measured no faster than the GEMM path).
//
// Per image, y[k][p] = bias[k] + sum_c w[k][c] * x[c][p] (p = pixels, contiguous in NCHW) is a
// GEMM whose operands are already in a usable layout: the register tile is MR output channels x
// NV pixel vectors, the weights are broadcast from their natural [k][c] rows and the NV x vectors
// of channel c are loaded in place, so nothing is packed (the general GEMM path copies x into
// panels and, on AVX-512, packs the weights on every call, which at batch 1-8 on 7x7..28x28
// planes costs as much as the multiply-adds). Bias and ReLU are applied at the store.
//
// Pixel tails (49, 196, ... pixels): lanes never mix, so a tail vector may read past the plane
// into the next channel's pixels (its extra lanes are computed and dropped); only the very last
// channel of the last image, where that would leave the buffer, uses a masked load.
//
// Work units are (image, MR-channel block, pixel block) register tiles, pixel blocks fastest (of
// whole vectors, balanced: at most NV each), in
// contiguous per-thread chunks; every output is reduced over c in order, so results do not
// depend on the thread count. No scratch memory: nothing to decline on allocation failure.
//
// Internal linkage (anonymous namespace): see common/simd.h.
#pragma once
#include <cstdint>
#include <type_traits>

#include "common/parallel.h"
#include "common/portable.h"
#include "common/simd.h"
#include "kernels/conv2d/conv2d.h"

namespace cnnfast {
namespace {
namespace pointwise {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The shapes this kernel takes: plain 1x1, groups 1, planes small enough that the general GEMM
// path's packing is not amortised (kMaxPixels), and one of C, K at most kMaxMinCK. Xeon AVX-512,
// bench/ab_builds.py pw* shapes vs the GEMM, CPU time at 1 thread: 1.14x at 576->96 14x14 and
// 1.13x at 32->192 28x28 (N 1), 1.10x at 160->960 7x7 (N 1), 1.08x at 960->160 7x7 and 1.02x at
// 96->576 14x14 (N 8). Wall time at 2 threads (noisy) gave 0.8-1.0x at 256->256 14x14 (N 8) and
// 512->512 7x7, where the GEMM's packed weights and batched columns pay off: the min(C, K) bound.
constexpr int64_t kMaxPixels = 1024;  // up to 32x32
constexpr int64_t kMaxMinCK = 192;

inline bool applies(const Conv2dShape& p) {
  return p.R == 1 && p.S == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0 && p.groups == 1 &&
         p.OH == p.H && p.OW == p.W && p.OH * p.OW <= kMaxPixels && (p.C <= kMaxMinCK || p.K <= kMaxMinCK);
}

// Calls f(std::integral_constant<int, m>{}) for a runtime 1 <= m <= MAX.
template <int MAX, class F>
CNNFAST_FORCE_INLINE void with_n(int m, F&& f) {
  if constexpr (MAX > 1) {
    if (m < MAX) return with_n<MAX - 1>(m, f);
  }
  f(std::integral_constant<int, MAX>{});
}

// One M x NVv tile: rows k0..k0+M of y[n], pixels p0..p0+nvalid (nvalid <= NVv * V::N).
// `guard`: the last vector must not read past x's buffer on the last channel (masked load).
template <class V, int M, int NVv>
CNNFAST_FORCE_INLINE void tile(int64_t C, int64_t P, const typename V::T* xn, const typename V::T* w,
                               const typename V::T* bias, typename V::T* yn, int64_t k0, int64_t p0,
                               int64_t nvalid, bool guard, bool relu) {
  using T = typename V::T;
  using R = typename V::R;
  R acc[M][NVv];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NVv; ++v) acc[i][v] = V::zero();
  const T* wk = w + k0 * C;
  const T* xp = xn + p0;
  const int64_t cend = guard ? C - 1 : C;
  for (int64_t c = 0; c < cend; ++c) {
    R xv[NVv];
#pragma GCC unroll 4
    for (int v = 0; v < NVv; ++v) xv[v] = V::load(xp + c * P + v * V::N);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const R wv = V::set1(wk[i * C + c]);
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) acc[i][v] = V::fma(wv, xv[v], acc[i][v]);
    }
  }
  if (guard) {  // last channel: vectors reaching past the plane are masked
    const int64_t c = C - 1;
    R xv[NVv];
#pragma GCC unroll 4
    for (int v = 0; v < NVv; ++v) {
      const int64_t left = nvalid - v * V::N;
      xv[v] = left >= V::N ? V::load(xp + c * P + v * V::N) : V::load_part(xp + c * P + v * V::N, 0, int(left), T(0));
    }
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const R wv = V::set1(wk[i * C + c]);
#pragma GCC unroll 4
      for (int v = 0; v < NVv; ++v) acc[i][v] = V::fma(wv, xv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    const R b = V::set1(bias ? bias[k0 + i] : T(0));
    T* yr = yn + (k0 + i) * P + p0;
#pragma GCC unroll 4
    for (int v = 0; v < NVv; ++v) {
      R c = V::add(acc[i][v], b);
      if (relu) c = V::max(V::zero(), c);  // max(0, NaN) = NaN, as in ref
      const int64_t left = nvalid - v * V::N;
      if (left >= V::N)
        V::store(yr + v * V::N, c);
      else
        V::store_n(yr + v * V::N, c, int(left));
    }
  }
}

template <class V, int MR, int NV>
bool fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
         typename V::T* y, bool relu) {
  if (!applies(p)) return false;
  const int64_t N = p.N, C = p.C, K = p.K, P = p.OH * p.OW;
  if (N == 0 || K == 0 || P == 0) return true;
  if (C == 0) return false;  // bias-only output: leave to the general path
  // A plane narrower than one vector: a tail load of channel c would run past channel c + 1 (and,
  // near the end, past the input buffer). Leave such planes (1x1 heads, SE blocks) to the GEMM.
  if (P < V::N) return false;
  // Pixel blocks of whole vectors, balanced (49 floats on AVX-512: 4 vectors, 2 + 2 with NV = 3,
  // not 3 + 1, whose last tile would do a full tile's loads and broadcasts for one pixel).
  const int64_t nvec = ceil_div(P, V::N), nblk = ceil_div(nvec, NV);
  const int64_t PB = ceil_div(nvec, nblk) * V::N;  // pixels per block, at most NV vectors
  const int64_t npb = ceil_div(P, PB), nkb = ceil_div(K, MR);
  const int64_t units = N * nkb * npb;
  parallel_for(units, MR * PB * C, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t pb = u % npb, kb = (u / npb) % nkb, n = u / (npb * nkb);
      const int64_t k0 = kb * MR, p0 = pb * PB;
      const int mrows = int(K - k0 < MR ? K - k0 : MR);
      const int64_t nvalid = P - p0 < PB ? P - p0 : PB;
      const int nv = int(ceil_div(nvalid, V::N));
      // Reading nv whole vectors past the plane's end stays inside x except on the last row.
      const bool guard = n == N - 1 && p0 + nv * V::N > P;
      const auto* xn = x + n * C * P;
      auto* yn = y + n * K * P;
      with_n<MR>(mrows, [&](auto mc) {
        constexpr int M = decltype(mc)::value;
        with_n<NV>(nv, [&](auto vc) {
          constexpr int NVv = decltype(vc)::value;
          tile<V, M, NVv>(C, P, xn, w, bias, yn, k0, p0, nvalid, guard, relu);
        });
      });
    }
  });
  return true;
}

}  // namespace pointwise
}  // namespace
}  // namespace cnnfast
