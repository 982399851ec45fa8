// Winograd F(4x4, 3x3) convolution for 3x3, stride-1 float32 layers (forward and, as a forward
// convolution of grad_output, backward-input), written once for any vector type V of
// common/simd.h and instantiated per ISA in conv2d_winograd_avx2.cpp / conv2d_winograd_avx512.cpp.
// The same 6x6 domain (same points, same B^T, same GEMMs) also gives F(2x2, 5x5) for 5x5 layers:
// only G (5 -> 6), A^T (6 -> 2) and the tile step differ (Geometry::m, r); and grouped layers run
// group by group (fwd_groups). The notes below describe F(4x4, 3x3).
// The weight gradient, which reuses this file's transforms and input_group, is in
// conv2d_winograd_wgrad.h.
//
// Each output is cut into 4x4 tiles; tile t reads a 6x6 input patch d (zero outside the image).
// With the 36 "frequencies" xi = (i, j) of the 6x6 transformed domain,
//   U[xi][k][c] = (G g_kc G^T)[i][j]        weight transform, once per call (shared scratch)
//   V[xi][c][t] = (B^T d_ct B)[i][j]        input transform, per block of tiles (thread scratch)
//   M[xi][k][t] = sum_c U[xi][k][c] V[xi][c][t]     36 GEMMs (a register-blocked microkernel)
//   y[k][tile t] = A^T M[.][k][t] A (+ bias, ReLU)  output transform, stored straight into y
// which is 36*C*K multiply-adds per 16 outputs instead of 16*9*C*K: 4x fewer (the transforms
// are O(C + K) per tile). The interpolation points are 0, +-1, +-2, +-1/2 (Lavin & Gray 2016).
//
// Work split: the tiles of all images form one sequence (a block may span images, so N = 16
// small planes still make long GEMMs). A work item is a block of tiles and a range of output
// channels; the channel range is split only when there are fewer tile blocks than threads
// (batch 1, small planes). An item transforms its block's input for all C (redundantly per
// channel range: that is O(C) per tile against O(C*K) for the GEMMs), runs the 36 GEMMs for its
// channels and transforms the result into y. With several blocks the weight transform U is
// computed once up front (parallel) and shared; with a single block each item transforms the
// weight rows it needs right before using them (see "fused" in conv()). With at most half a
// panel of tiles (N=1 7x7 planes: 4 tiles) the GEMMs run along output channels instead, with the
// weight transform fused into their registers (see "Few tiles").
//
// Vectorisation: both transforms run across V::N consecutive tiles of a block (which may sit in
// different tile rows or images). Each tile's six patch rows are copied into 8-float slots (one
// vector copy per row inside the image, zero-filled scalar copies at the borders), and a V::N x
// V::N register transpose turns the slots into the V::N-tile vectors of each patch element. The
// output side goes the other way: the 16 result vectors are transposed back into rows of 4
// values per tile and copied into y, clipped at the image edge (partial tiles).
//
// Determinism: every output sums its C products in one sequence (the microkernel runs the
// whole reduction), and a tile's transforms do not depend on which block or lane it lands in,
// so results are bitwise identical for any thread count and blocking.
//
// Contract (conv2d.h): raw pointers, never throw; scratch comes from common/scratch.h and a
// failed allocation declines (returns false). A worker's failure can come after other workers
// wrote parts of y; that is safe because every fallback overwrites all of y.
//
// Internal linkage (anonymous namespace): see common/simd.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common/parallel.h"
#include "common/portable.h"
#include "common/scratch.h"
#include "common/simd.h"
#include "dispatch/heuristics.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/conv2d_ukernel.h"
#include "kernels/conv2d/winograd_switch.h"

namespace cnnfast {
namespace {
namespace wino {

constexpr int kXi = 36;  // 6 x 6 transformed domain

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
// n floats rounded up to an odd number of 64-byte lines (see xs_u in conv()).
inline int64_t pad_lines(int64_t n) { return (ceil_div(n, 16) | 1) * 16; }

// A stride-1 3x3 convolution in the terms of the algorithm: Cin input planes of H x W, Cout
// output planes of OH x OW, zero padding ph/pw (0..r-1), and TH x TW output tiles per image.
// m x m output tiles of an r x r filter (m + r - 1 = 6): F(4x4, 3x3) or F(2x2, 5x5). Images are
// xn (input) and yn (output) elements apart: Cin * H * W and Cout * OH * OW unless the convolution
// is one group of a grouped one (fwd_groups).
struct Geometry {
  int64_t N, Cin, H, W, Cout, OH, OW, ph, pw;
  int64_t TH, TW, T;  // tiles per column / row of an image, tiles in all
  int64_t m = 4, r = 3;
  int64_t xn = 0, yn = 0;
};

// Tiles t0 .. t0 + count - 1 (numbered image by image, row-major within an image) as their image
// tn[j] and first output row toh[j] / column tow[j].
inline void tile_coords(const Geometry& g, int64_t t0, int64_t count, int64_t* tn, int64_t* toh, int64_t* tow) {
  const int64_t per_image = g.TH * g.TW;
  int64_t n = t0 / per_image, th = (t0 % per_image) / g.TW, tw = t0 % g.TW;
  for (int64_t j = 0; j < count; ++j) {
    tn[j] = n;
    toh[j] = g.m * th;
    tow[j] = g.m * tw;
    if (++tw == g.TW) {
      tw = 0;
      if (++th == g.TH) {
        th = 0;
        ++n;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The 1-D transforms, applied to the rows and then the columns of a 6x6 (3x3 for G) block.
// ---------------------------------------------------------------------------------------------

// o = B^T z (6 -> 6). B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
//                            0 2 -1 -2 1 0; 0 4 0 -5 0 1]
template <class V>
CNNFAST_FORCE_INLINE void bt6(const typename V::R (&z)[6], typename V::R (&o)[6]) {
  using R = typename V::R;
  const R four = V::set1(4), mfour = V::set1(-4), mfive = V::set1(-5), two = V::set1(2);
  o[0] = V::fma(four, z[0], V::fma(mfive, z[2], z[4]));
  const R a = V::fma(mfour, z[2], z[4]), b = V::fma(mfour, z[1], z[3]);
  o[1] = V::add(a, b);
  o[2] = V::sub(a, b);
  const R c = V::sub(z[4], z[2]), d = V::mul(two, V::sub(z[3], z[1]));
  o[3] = V::add(c, d);
  o[4] = V::sub(c, d);
  o[5] = V::fma(four, z[1], V::fma(mfive, z[3], z[5]));
}

// o = G z (3 -> 6). G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
template <class V>
CNNFAST_FORCE_INLINE void g6(typename V::R z0, typename V::R z1, typename V::R z2, typename V::R (&o)[6]) {
  using R = typename V::R;
  using T = typename V::T;
  const R s = V::add(z0, z2), m6 = V::set1(T(-1) / T(6));
  o[0] = V::mul(V::set1(T(0.25)), z0);
  o[1] = V::mul(m6, V::add(s, z1));
  o[2] = V::mul(m6, V::sub(s, z1));
  const R p = V::fma(V::set1(T(1) / T(6)), z2, V::mul(V::set1(T(1) / T(24)), z0));
  const R q = V::mul(V::set1(T(1) / T(12)), z1);
  o[3] = V::add(p, q);
  o[4] = V::sub(p, q);
  o[5] = z2;
}

// o = A^T m (6 -> 4). A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
template <class V>
CNNFAST_FORCE_INLINE void at4(const typename V::R (&m)[6], typename V::R (&o)[4]) {
  using R = typename V::R;
  const R a = V::add(m[1], m[2]), b = V::sub(m[1], m[2]), c = V::add(m[3], m[4]), d = V::sub(m[3], m[4]);
  o[0] = V::add(V::add(m[0], a), c);
  o[1] = V::fma(V::set1(2), d, b);
  o[2] = V::fma(V::set1(4), c, a);
  o[3] = V::add(V::fma(V::set1(8), d, b), m[5]);
}

// F(2x2, 5x5), same points and the same B^T (it depends on the points only; Lavin & Gray 2016):
// o = G5 z (5 -> 6), row a = D[a] (1, p, p^2, p^3, p^4) for the points p = 0, 1, -1, 2, -2 with
// the scales D of G above, and (0 0 0 0 1) for the point at infinity.
template <class V>
CNNFAST_FORCE_INLINE void g6r5(const typename V::R (&z)[5], typename V::R (&o)[6]) {
  using R = typename V::R;
  using T = typename V::T;
  const R e = V::add(V::add(z[0], z[2]), z[4]), od = V::add(z[1], z[3]), m6 = V::set1(T(-1) / T(6));
  o[0] = V::mul(V::set1(T(0.25)), z[0]);
  o[1] = V::mul(m6, V::add(e, od));
  o[2] = V::mul(m6, V::sub(e, od));
  const R p =
      V::fma(V::set1(T(2) / T(3)), z[4], V::fma(V::set1(T(1) / T(6)), z[2], V::mul(V::set1(T(1) / T(24)), z[0])));
  const R q = V::fma(V::set1(T(1) / T(3)), z[3], V::mul(V::set1(T(1) / T(12)), z[1]));
  o[3] = V::add(p, q);
  o[4] = V::sub(p, q);
  o[5] = z[4];
}

// o = A^T m (6 -> 2) for F(2x2, 5x5). A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1]
template <class V>
CNNFAST_FORCE_INLINE void at2(const typename V::R (&m)[6], typename V::R (&o)[2]) {
  const typename V::R b = V::sub(m[1], m[2]), d = V::sub(m[3], m[4]);
  o[0] = V::add(V::add(m[0], V::add(m[1], m[2])), V::add(m[3], m[4]));
  o[1] = V::add(V::fma(V::set1(2), d, b), m[5]);
}

// ---------------------------------------------------------------------------------------------
// Weight transform U = G g G^T for every pair (output channel o, input channel i).
// Forward: g = w[o][i] (w is Cout x Cin x 3 x 3). rotate (backward-input as forward): w is
// Cin x Cout x 3 x 3 (the layer's K x C) and g = w[i][o] rotated by 180 degrees, so the rotated,
// channel-swapped weights are never materialised.
// ---------------------------------------------------------------------------------------------

// U = G g G^T of the N channel pairs in tmp[t * N + lane] (RR x RR taps), stored as
// dst[xi * xs + lane].
template <class V, int RR>
CNNFAST_FORCE_INLINE void transform_taps(const typename V::T* tmp, typename V::T* dst, int64_t xs) {
  using R = typename V::R;
  constexpr int N = V::N;
  R col[RR][6];  // G applied to each column s of g: col[s][a]
  for (int s = 0; s < RR; ++s) {
    if constexpr (RR == 3) {
      g6<V>(V::load(tmp + s * N), V::load(tmp + (3 + s) * N), V::load(tmp + (6 + s) * N), col[s]);
    } else {
      R z[5];
      for (int r = 0; r < 5; ++r) z[r] = V::load(tmp + (5 * r + s) * N);
      g6r5<V>(z, col[s]);
    }
  }
  for (int a = 0; a < 6; ++a) {  // row a of G g, times G^T
    R u[6];
    if constexpr (RR == 3) {
      g6<V>(col[0][a], col[1][a], col[2][a], u);
    } else {
      const R z[5] = {col[0][a], col[1][a], col[2][a], col[3][a], col[4][a]};
      g6r5<V>(z, u);
    }
    for (int bb = 0; bb < 6; ++bb) V::store(dst + (a * 6 + bb) * xs, u[bb]);
  }
}

// U[xi * xs_u + (o - o0) * ldu + i] for o0 <= o < o1 and all i (columns Cin..ldu are zero), lanes
// along input channels (the tile-panel GEMMs).
template <class V>
void transform_weight_rows(const Geometry& g, const typename V::T* w, bool rotate, int64_t o0, int64_t o1,
                           typename V::T* U, int64_t ldu, int64_t xs_u) {
  using T = typename V::T;
  constexpr int N = V::N;
  const int64_t Cout = g.Cout, Cin = g.Cin;
  const int taps = int(g.r * g.r);
  alignas(64) T tmp[25 * N];
  for (int64_t o = o0; o < o1; ++o) {
    for (int64_t i0 = 0; i0 < ldu; i0 += N) {
      // Gather the r x r taps of N input channels (zero beyond Cin) into tmp[tap][lane].
      for (int l = 0; l < N; ++l) {
        const int64_t i = i0 + l;
        if (i >= Cin) {
          for (int t = 0; t < taps; ++t) tmp[t * N + l] = T(0);
        } else if (rotate) {
          const T* src = w + (i * Cout + o) * taps;
          for (int t = 0; t < taps; ++t) tmp[t * N + l] = src[taps - 1 - t];
        } else {
          const T* src = w + (o * Cin + i) * taps;
          for (int t = 0; t < taps; ++t) tmp[t * N + l] = src[t];
        }
      }
      if (g.r == 3)
        transform_taps<V, 3>(tmp, U + (o - o0) * ldu + i0, xs_u);
      else
        transform_taps<V, 5>(tmp, U + (o - o0) * ldu + i0, xs_u);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Few tiles (at most half a panel, e.g. N=1 7x7 planes: 4 tiles). The tile-panel GEMMs would leave
// most lanes idle, and the cost is the weight transform (36 values per channel pair against 36 x T
// multiply-adds), so lanes run along V::N output channels and the transform is fused into the
// GEMM registers. G = D G' with D = diag(1/4, -1/6, -1/6, 1/24, 1/24, 1) and
//   G' = [1 0 0; 1 1 1; 1 -1 1; 1 2 4; 1 -2 4; 0 0 1],
// so U[a][b] = D[a] D[b] (G' g G'^T)[a][b], and D[a] D[b] is applied to the sums M[xi] instead of
// to every U (one multiply per output frequency instead of per channel pair). Per group of V::N
// output channels:
//   1. the columns C'[c][a][s] = (G' g_c)[a][s] of all input channels c go to L2 scratch (the
//      only pass over w; 18 vectors per channel, 295 KB at 512 channels);
//   2. per row a of the 6x6 domain and half h of its columns, a register tile of 3 frequencies
//      x kFewMR tiles sums over c: the 3 values u = (C' G'^T)[a][3h..3h+2] come from the 3 loaded
//      column values with 2-3 adds, then 12 multiply-adds with the (broadcast) transformed inputs,
//      repacked so that one step reads 12 consecutive floats, Vr[a][h][c][b][t]; partial sums
//      over kFewCc channels at a time, added in order.
// Every M sums its Cin products in one sequence: results do not depend on the thread count.
// ---------------------------------------------------------------------------------------------

constexpr int kFewMR = 4;  // tiles per register tile (3 frequencies x 4 tiles: 12 accumulators)
// Input channels per partial sum; the partial sums are added in order. One 512-long sum per
// output had 2.4-4x the worst error (0.4-0.5 of the tests' tolerance at 512 x 512, 7x7) of the
// sums of 64 (0.13-0.17).
constexpr int64_t kFewCc = 64;
constexpr float kFewScale[6] = {0.25f, -1.0f / 6, -1.0f / 6, 1.0f / 24, 1.0f / 24, 1.0f};  // D

// o = G' z (3 -> 6), the unscaled G (see above).
template <class V>
CNNFAST_FORCE_INLINE void gp6(typename V::R z0, typename V::R z1, typename V::R z2, typename V::R (&o)[6]) {
  using R = typename V::R;
  const R s = V::add(z0, z2), p = V::fma(V::set1(4), z2, z0), q = V::add(z1, z1);
  o[0] = z0;
  o[1] = V::add(s, z1);
  o[2] = V::sub(s, z1);
  o[3] = V::add(p, q);
  o[4] = V::sub(p, q);
  o[5] = z2;
}

// tmp[t * N + l] = tap t of the pair (output channel og + l, input channel i), zero for og + l >= o1.
// With 8 lanes the taps come out of one 8 x 8 register transpose (tap 8 separately).
template <class V>
CNNFAST_FORCE_INLINE void gather_taps(const Geometry& g, const typename V::T* w, bool rotate, int64_t og, int64_t o1,
                                      int64_t i, typename V::T* tmp, typename V::T* tr) {
  using T = typename V::T;
  constexpr int N = V::N;
  const int64_t Cout = g.Cout, Cin = g.Cin;
  const bool full = og + N <= o1;
  // 16 lanes (AVX-512): one 16 x 16 register transpose of 16 values per lane (its 9 taps and 7 of
  // the next pair's, never used), its rows stored whole. Two 8-lane transposes stored each tap's
  // row as two 256-bit halves, which the 512-bit loads of tmp could not take from the store
  // buffer: perf put 31% of ResNet's 512 -> 512 7x7 forward at batch 1 on that one load (the
  // weight transform runs every call). Only where the 16 values of the last lane stay inside w.
  if constexpr (N == 16 && std::is_same_v<T, float>) {
    const int64_t total = Cout * Cin * 9;
    if (full && !rotate && (og + N - 1) * Cin * 9 + i * 9 + N <= total) {
      V::transpose(w + (og * Cin + i) * 9, Cin * 9, tr, N);  // tr[t * N + l], t < 16
      for (int t = 0; t < 9; ++t) V::store(tmp + t * N, V::load(tr + t * N));
      return;
    }
    if (full && rotate && (i * Cout + og + N - 1) * 9 + N <= total) {
      V::transpose(w + (i * Cout + og) * 9, 9, tr, N);
      for (int t = 0; t < 9; ++t) V::store(tmp + t * N, V::load(tr + (8 - t) * N));
      return;
    }
  }
  // 8-lane transposes: one for V::N = 8, two (lanes 0-7 and 8-15) for V::N = 16 where the 16 x 16
  // transpose above would read past w (the last pair).
  constexpr int H = N / 8;
  if constexpr ((N == 8 || N == 16) && std::is_same_v<T, float>) {
    if (full && !rotate) {  // rows: the 9 taps of (og + l, i), 9 * Cin apart
      const T* src = w + (og * Cin + i) * 9;
      for (int h = 0; h < H; ++h) Avx2F32::transpose(src + h * 8 * Cin * 9, Cin * 9, tmp + h * 8, N);
      for (int l = 0; l < N; ++l) tmp[8 * N + l] = src[l * Cin * 9 + 8];
      return;
    }
    if (full) {  // rotate: the taps of (og + l, i) are adjacent, 9 apart
      const T* src = w + (i * Cout + og) * 9;
      for (int h = 0; h < H; ++h) Avx2F32::transpose(src + h * 72, 9, tr + h * 8, N);  // tr[t * N + l], t < 8
      for (int l = 0; l < N; ++l) tmp[l] = src[l * 9 + 8];
      for (int t = 1; t < 9; ++t) V::store(tmp + t * N, V::load(tr + (8 - t) * N));
      return;
    }
  }
  for (int l = 0; l < N; ++l) {
    const int64_t o = og + l;
    for (int t = 0; t < 9; ++t)
      tmp[t * N + l] = o >= o1 ? T(0) : rotate ? w[(i * Cout + o) * 9 + 8 - t] : w[(o * Cin + i) * 9 + t];
  }
}

// Step 1: Cp[(i * 6 + a) * 3 * N + s * N + l] = (G' g)[a][s] of the pair (og + l, i), all i (one
// channel's 18 vectors together: one store pointer).
template <class V>
void few_columns(const Geometry& g, const typename V::T* w, bool rotate, int64_t og, int64_t o1, typename V::T* Cp) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  alignas(64) T tmp[9 * N], tr[N * N];
  const int64_t Cin = g.Cin;  // a local: stores through Cp may alias g
  for (int64_t i = 0; i < Cin; ++i) {
    gather_taps<V>(g, w, rotate, og, o1, i, tmp, tr);
    T* dst = Cp + i * 18 * N;
    for (int s = 0; s < 3; ++s) {
      R col[6];
      gp6<V>(V::load(tmp + s * N), V::load(tmp + (3 + s) * N), V::load(tmp + (6 + s) * N), col);
      for (int a = 0; a < 6; ++a) V::store(dst + a * 3 * N + s * N, col[a]);
    }
  }
}

// Step 2 for one row a and half H: acc[b][t] = sum_c (C'[c][a] G'^T)[3H + b] * Vr[c][b][t] (cp: C'[0][a]).
template <class V, int H>
CNNFAST_FORCE_INLINE void few_row(int64_t Cin, const typename V::T* cp, const typename V::T* vr,
                                  typename V::R (&acc)[3][kFewMR]) {
  using R = typename V::R;
  constexpr int N = V::N;
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < kFewMR; ++t) acc[b][t] = V::zero();
  for (int64_t c = 0; c < Cin; ++c) {
    const R z0 = V::load(cp), z1 = V::load(cp + N), z2 = V::load(cp + 2 * N);
    R u[3];
    if (H == 0) {
      const R s = V::add(z0, z2);
      u[0] = z0;
      u[1] = V::add(s, z1);
      u[2] = V::sub(s, z1);
    } else {
      const R p = V::fma(V::set1(4), z2, z0), q = V::add(z1, z1);
      u[0] = V::add(p, q);
      u[1] = V::sub(p, q);
      u[2] = z2;
    }
#pragma GCC unroll 3
    for (int b = 0; b < 3; ++b)
#pragma GCC unroll 4
      for (int t = 0; t < kFewMR; ++t) acc[b][t] = V::fma(u[b], V::set1(vr[b * kFewMR + t]), acc[b][t]);
    cp += 18 * N;
    vr += 3 * kFewMR;
  }
}

// Input transform of the V::N tiles j0.. of a tile table (image tn[j], first output row toh[j] and
// column tow[j]; tiles from nvalid on are zero) for one input channel: xc is that channel's plane
// in image 0 (images are Cin * H * W apart). Stores the 36 vectors (B^T d B)[xi] over the tiles at
// dst + xi * xs. Each tile's 6 patch rows go to 8-float slots, gbuf[(r * N + l) * 8 + s], one
// vector copy per row inside the image and a zero-filling scalar copy at the borders; a transpose
// with source stride 8 then gives the vectors of patch (r, s) over the N tiles. gbuf: 6 * N * 8 + N
// floats (the slack for the N-wide reads of the transpose), dbuf: 6 * N * N.
template <class V>
CNNFAST_FORCE_INLINE void input_group(const Geometry& g, const typename V::T* xc, const int64_t* tn, const int64_t* toh,
                                      const int64_t* tow, int64_t j0, int64_t nvalid, typename V::T* gbuf,
                                      typename V::T* dbuf, typename V::T* dst, int64_t xs) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  for (int l = 0; l < N; ++l) {
    const int64_t j = j0 + l;
    T* slot = gbuf + l * 8;
    if (j >= nvalid) {
      for (int r = 0; r < 6; ++r) std::fill(slot + r * N * 8, slot + r * N * 8 + 8, T(0));
      continue;
    }
    const int64_t ih0 = toh[j] - g.ph, iw0 = tow[j] - g.pw;
    const T* src = xc + tn[j] * g.xn;
    if (ih0 >= 0 && ih0 + 6 <= g.H && iw0 >= 0 && iw0 + 8 <= g.W) {
      for (int r = 0; r < 6; ++r) std::memcpy(slot + r * N * 8, src + (ih0 + r) * g.W + iw0, 8 * sizeof(T));
    } else {
      for (int r = 0; r < 6; ++r) {
        T* d = slot + r * N * 8;
        const int64_t ih = ih0 + r;
        if (ih < 0 || ih >= g.H) {
          std::fill(d, d + 8, T(0));
          continue;
        }
        const T* row = src + ih * g.W;
        for (int s = 0; s < 6; ++s) {
          const int64_t iw = iw0 + s;
          d[s] = (iw >= 0 && iw < g.W) ? row[iw] : T(0);
        }
      }
    }
  }
  for (int r = 0; r < 6; ++r) V::transpose(gbuf + r * N * 8, 8, dbuf + r * N * N, N);
  R t[6][6];  // t[i][s] = (B^T d)[i][s]
  for (int s = 0; s < 6; ++s) {
    R z[6], o[6];
    for (int r = 0; r < 6; ++r) z[r] = V::load(dbuf + (r * N + s) * N);
    bt6<V>(z, o);
    for (int i = 0; i < 6; ++i) t[i][s] = o[i];
  }
  for (int i = 0; i < 6; ++i) {
    R o[6];
    bt6<V>(t[i], o);
    for (int jj = 0; jj < 6; ++jj) V::store(dst + (i * 6 + jj) * xs, o[jj]);
  }
}

// ---------------------------------------------------------------------------------------------
// The whole convolution. x is N x Cin x H x W; w as for transform_weights; y is N x Cout x OH x OW.
// ---------------------------------------------------------------------------------------------

// Tiles per block: 36 * Cin * TB floats of V per block (and 36 * K * TB of M) at most
// kBlockFloats (4.7 MB: the per-xi slices the GEMMs sweep, Cin x TB, stay in L2), but at least 64
// tiles, since every block streams all of U (36 * C * K floats, 9.4 MB at 256 x 256) from memory
// once: 16-tile blocks left 16x512x7x7 memory-bound at a third of the FMA rate.
constexpr int64_t kBlockFloats = 36 * 256 * 128;
constexpr int64_t kMinBlockTiles = 64;
constexpr int64_t kMaxBlockTiles = 128;
// Fused weight transform: U rows of kb output channels at a time, kb chosen so that one U_xi
// slice (kb x Cin) and one V_xi (Cin x ldv) fit in this many floats (384 KB, within the 1 MB L2).
constexpr int64_t kFusedFloats = 96 * 1024;

template <class V, int MR>
bool conv(const Geometry& g, const typename V::T* x, const typename V::T* w, bool rotate, const typename V::T* bias,
          typename V::T* y, bool relu) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  constexpr int NR = 2 * N;  // tiles per microkernel panel
  static_assert(N >= 6, "the input transform reads 6 columns out of one N x N transpose");
  const int64_t Cin = g.Cin, Cout = g.Cout, T_ = g.T;
  if (T_ == 0 || Cout == 0) return true;
  const int nt = max_threads();

  // Blocking (may depend on the thread count: it does not change any result, see the top).
  const int64_t tb_max = std::clamp(kBlockFloats / (kXi * Cin) / NR * NR, kMinBlockTiles, kMaxBlockTiles);
  // Blocks of whole panels (a block of 98 tiles computes 128): among the panel multiples from
  // kMinBlockTiles to tb_max, the one with the fewest panels on the busiest thread (contiguous
  // static chunks of blocks as run_parallel cuts them, the last block partial), counting a
  // quarter panel per block for streaming U; larger on ties.
  int64_t tb = T_;
  if (T_ > tb_max) {
    int64_t best = std::numeric_limits<int64_t>::max();
    for (int64_t cand = tb_max; cand >= std::min(kMinBlockTiles, tb_max); cand -= NR) {
      const int64_t nb = ceil_div(T_, cand), chunk = ceil_div(nb, int64_t(nt));
      int64_t cost = 0;
      for (int64_t b0 = 0; b0 < nb; b0 += chunk) {  // quarter panels of the thread with blocks b0..b1
        const int64_t b1 = std::min(nb, b0 + chunk);
        int64_t panels = 0;
        for (int64_t bl = b0; bl < b1; ++bl) panels += ceil_div(std::min(T_, (bl + 1) * cand) - bl * cand, int64_t(NR));
        cost = std::max(cost, 4 * panels + (b1 - b0));
      }
      if (cost < best) best = cost, tb = cand;
    }
  }
  int64_t nblocks = ceil_div(T_, tb);
  const bool few = T_ <= NR / 2 && g.r == 3;  // see "Few tiles" above (3x3 only)
  const int64_t kq = few ? NR : MR;           // output channel granularity of the GEMMs
  int64_t ksplit = 1;
  if (nblocks < nt) ksplit = std::min<int64_t>(ceil_div(nt, nblocks), ceil_div(Cout, kq));
  const int64_t kchunk = round_up(ceil_div(Cout, ksplit), kq);
  ksplit = ceil_div(Cout, kchunk);
  const int64_t items = nblocks * ksplit;

  const int64_t ldu = round_up(Cin, N);
  // Columns of V: whole GEMM panels, or with few tiles (no panels: see "Few tiles") the one vector
  // group the input transform writes (half the footprint: 1.2 instead of 2.4 MB at 512 channels).
  const int64_t ldv = few ? round_up(tb, N) : round_up(tb, NR);
  // Distance between the 36 matrices of U, V and M: padded to an odd number of cache lines, since
  // the transforms touch all 36 at once and power-of-two distances (e.g. 512 x 512 floats) would
  // map them onto one cache set (measured: the 512x512 weight transform ran 5x slower).
  const int64_t xs_u = pad_lines(Cout * ldu), xs_v = pad_lines(Cin * ldv);

  // Weight transform. With several tile blocks, U is computed once into shared scratch (the
  // calling thread's second slot; slot 0 is each worker's block scratch) and read by every block.
  // With one block (few tiles: batch 1 or small planes, threads splitting K), each U row is used
  // once, so writing all of U to memory and reading it back is pure traffic (37.7 MB at 512 x 512,
  // measured ~4 ms of 6): then each item transforms its own rows, kb at a time, into L2/L3-sized
  // thread scratch right before using them ("fused").
  const bool fused = nblocks == 1 && !few;
  // Fused: the output transform of each chunk of kb channels follows its GEMMs. (Chunking M
  // without the fusion re-streams all of V once per chunk: V of 256 channels x 128 tiles, 4.7 MB,
  // outgrows L2; measured 1.4-2x slower at 16 x 256 x 14 x 14 in fresh processes.)
  const int64_t kb = fused ? std::clamp((kFusedFloats - Cin * ldv) / Cin / MR * MR, int64_t(MR), kchunk) : kchunk;
  const int64_t xs_m = pad_lines(kb * ldv);
  const int64_t xs_ub = pad_lines(kb * ldu);
  T* U = nullptr;
  if (!fused && !few) {
    U = thread_scratch_of<T, 1>(size_t(kXi * xs_u));
    if (!U) return false;
    parallel_for(Cout, 40 * ldu,
                 [&](int64_t b, int64_t e) { transform_weight_rows<V>(g, w, rotate, b, e, U + b * ldu, ldu, xs_u); });
  }

  // Per worker: the block's V and M; the patch rows of one vector group (8 floats per tile and
  // row, + slack for the N-wide reads of the transpose) and their transpose; the output vectors of
  // one group and their transpose; the tile table of the block; fused: kb rows of U.
  // Few tiles: M of NR channels per tile; the columns C' of V::N channels and the repacked V.
  const int64_t ntg = ceil_div(T_, kFewMR), xs_mp = pad_lines(ntg * kFewMR * NR);
  const size_t v_floats = size_t(kXi * xs_v), m_floats = size_t(kXi * (few ? xs_mp : xs_m));
  const size_t g_floats = size_t(6 * N * 8 + N), d_floats = size_t(6 * N * N), o_floats = size_t(16 * N + N * N);
  const size_t ub_floats = fused ? size_t(kXi * xs_ub) : few ? size_t(18 * Cin * N + ntg * kXi * Cin * kFewMR) : 0;
  const size_t scratch_floats = v_floats + m_floats + g_floats + d_floats + o_floats + ub_floats + 16;
  const size_t scratch_bytes = scratch_floats * sizeof(T) + size_t(3 * ldv) * sizeof(int64_t);
  std::atomic<bool> ok{true};

  parallel_for(items, tb * kchunk * Cin * kXi, [&](int64_t b, int64_t e) {
    char* mem = static_cast<char*>(thread_scratch(scratch_bytes));
    if (!mem) {  // declining after a partial write is safe: every fallback overwrites all of y
      ok = false;
      return;
    }
    T* Vb = reinterpret_cast<T*>(mem);
    T* Mb = Vb + v_floats;
    T* gbuf = Mb + m_floats;
    T* dbuf = gbuf + g_floats;
    T* obuf = dbuf + d_floats;
    T* Ub = obuf + o_floats;  // fused: the transformed weights of kb output channels
    int64_t* tn = reinterpret_cast<int64_t*>(mem + scratch_floats * sizeof(T));  // tile j: image,
    int64_t* toh = tn + ldv;                                                     // first output row
    int64_t* tow = toh + ldv;                                                    // and column
    const int64_t HW = g.H * g.W, OHW = g.OH * g.OW;
    for (int64_t it = b; it < e; ++it) {
      const int64_t blk = it / ksplit, ks = it % ksplit;
      const int64_t t0 = blk * tb, t1 = std::min(T_, t0 + tb), nvalid = t1 - t0;
      const int64_t k0 = ks * kchunk, k1 = std::min(Cout, k0 + kchunk);
      const int64_t npan = ceil_div(nvalid, NR);
      tile_coords(g, t0, nvalid, tn, toh, tow);

      // 1. Input transform of the block, all input channels: Vb[xi * xs_v + c * ldv + j], V::N
      //    tiles at a time (any tiles: a group may span tile rows and images; see input_group).
      for (int64_t c = 0; c < Cin; ++c)
        for (int64_t j0 = 0; j0 < nvalid; j0 += N)
          input_group<V>(g, x + c * HW, tn, toh, tow, j0, nvalid, gbuf, dbuf, Vb + c * ldv + j0, xs_v);
      // Columns past the last group up to the panel edge: zero, so the GEMMs never see stale data.
      // Few tiles run no panel GEMMs: V is only the written group wide there (ldv above) and the
      // repacking reads the first round_up(nvalid, kFewMR) columns, so there is nothing to zero
      // (zeroing whole panels made 512 x 512 at 7x7, batch 1, 1.31-1.33x slower: bench/ab_builds.py r512).
      const int64_t written = round_up(nvalid, N);
      if (!few && npan * NR > written)
        for (int xi = 0; xi < kXi; ++xi)
          for (int64_t c = 0; c < Cin; ++c)
            std::fill(Vb + xi * xs_v + c * ldv + written, Vb + xi * xs_v + c * ldv + npan * NR, T(0));

      // 2. The 36 GEMMs: Mb[xi * xs_m + (k - kb0) * ldv + j] = sum_c U[xi][k][c] * Vb[xi][c][j],
      //    kb output channels at a time, each chunk followed by its output transform (3).
      // 2'+3'. Few tiles: per group of V::N output channels, the weight columns C' and the GEMMs
      //       with the row transform fused in (see "Few tiles"); per panel of NR channels, the
      //       output transform with vectors along output channels.
      T* Cp = Ub;                 // few tiles: C' of V::N output channels
      T* Vr = Ub + 18 * Cin * N;  // and the repacked V (columns past nvalid are zero)
      if (few)
        for (int64_t tg = 0; tg < ntg; ++tg)
          for (int a = 0; a < 6; ++a)
            for (int h = 0; h < 2; ++h) {
              T* dst = Vr + ((tg * 6 + a) * 2 + h) * Cin * 3 * kFewMR;
              for (int64_t c = 0; c < Cin; ++c)
                for (int bb = 0; bb < 3; ++bb, dst += kFewMR)
                  std::memcpy(dst, Vb + (a * 6 + 3 * h + bb) * xs_v + c * ldv + tg * kFewMR, kFewMR * sizeof(T));
            }
      for (int64_t kp0 = k0; kp0 < k1 && few; kp0 += NR) {
        const int64_t kp1 = std::min(k1, kp0 + NR);
        for (int64_t og = kp0; og < kp1; og += N) {
          few_columns<V>(g, w, rotate, og, kp1, Cp);
          for (int64_t tg = 0; tg < ntg; ++tg)
            for (int a = 0; a < 6; ++a)
              for (int h = 0; h < 2; ++h) {
                R acc[3][kFewMR], part[3][kFewMR];
                const T* cp = Cp + a * 3 * N;
                const T* vr = Vr + ((tg * 6 + a) * 2 + h) * Cin * 3 * kFewMR;
                for (int64_t c0 = 0; c0 < Cin; c0 += kFewCc) {
                  const int64_t cc = std::min(kFewCc, Cin - c0);
                  if (h == 0)
                    few_row<V, 0>(cc, cp + c0 * 18 * N, vr + c0 * 3 * kFewMR, part);
                  else
                    few_row<V, 1>(cc, cp + c0 * 18 * N, vr + c0 * 3 * kFewMR, part);
                  for (int bb = 0; bb < 3; ++bb)
                    for (int t = 0; t < kFewMR; ++t)
                      acc[bb][t] = c0 == 0 ? part[bb][t] : V::add(acc[bb][t], part[bb][t]);
                }
                for (int bb = 0; bb < 3; ++bb) {
                  const int b6 = 3 * h + bb;
                  const R sc = V::set1(kFewScale[a] * kFewScale[b6]);
                  for (int t = 0; t < kFewMR; ++t)
                    V::store(Mb + (a * 6 + b6) * xs_mp + (tg * kFewMR + t) * NR + (og - kp0), V::mul(acc[bb][t], sc));
                }
              }
        }
        for (int64_t j = 0; j < nvalid; ++j) {
          const int64_t rows = std::min<int64_t>(4, g.OH - toh[j]), cols = std::min<int64_t>(4, g.OW - tow[j]);
          for (int64_t kv = kp0; kv < kp1; kv += N) {
            const int64_t lanes = std::min<int64_t>(N, kp1 - kv);
            alignas(64) T bl[N];
            for (int l = 0; l < N; ++l) bl[l] = (bias && l < lanes) ? bias[kv + l] : T(0);
            const R bv = V::load(bl);
            const T* src = Mb + j * NR + (kv - kp0);
            R t[4][6];  // t[i][jj] = (A^T M)[i][jj]
            for (int jj = 0; jj < 6; ++jj) {
              R m[6], o[4];
              for (int i = 0; i < 6; ++i) m[i] = V::load(src + (i * 6 + jj) * xs_mp);
              at4<V>(m, o);
              for (int i = 0; i < 4; ++i) t[i][jj] = o[i];
            }
            for (int i = 0; i < 4; ++i) {  // obuf[(i * 4 + jj) * N + l] = output (i, jj) of channel kv + l
              R o[4];
              at4<V>(t[i], o);
              for (int jj = 0; jj < 4; ++jj) {
                R v = V::add(o[jj], bv);
                if (relu) v = V::max(V::zero(), v);  // max(0, NaN) = NaN, as in ref
                V::store(obuf + (i * 4 + jj) * N, v);
              }
            }
            for (int64_t l = 0; l < lanes; ++l) {
              T* yt = y + tn[j] * g.yn + (kv + l) * OHW + toh[j] * g.OW + tow[j];
              for (int64_t i = 0; i < rows; ++i)
                for (int64_t jj = 0; jj < cols; ++jj) yt[i * g.OW + jj] = obuf[(i * 4 + jj) * N + l];
            }
          }
        }
      }
      if (few) continue;

      for (int64_t kb0 = k0; kb0 < k1; kb0 += kb) {
        const int64_t kb1 = std::min(k1, kb0 + kb);
        const T* Uk = U ? U + kb0 * ldu : Ub;  // row kb0 of every U_xi
        const int64_t xs = U ? xs_u : xs_ub;
        if (!U) transform_weight_rows<V>(g, w, rotate, kb0, kb1, Ub, ldu, xs_ub);
        for (int xi = 0; xi < kXi; ++xi) {
          const T* Ux = Uk + xi * xs;
          const T* Vx = Vb + xi * xs_v;
          T* Mx = Mb + xi * xs_m;
          for (int64_t k = kb0; k < kb1; k += MR) {
            const int mr = int(std::min<int64_t>(MR, kb1 - k));
            const T* a[MR];  // rows past the edge repeat the last one (computed, not stored)
#pragma GCC unroll 16
            for (int i = 0; i < MR; ++i) a[i] = Ux + (k - kb0 + std::min(i, mr - 1)) * ldu;
            for (int64_t jp = 0; jp < npan; ++jp) {
              R acc[MR][2];
              convgemm::ukernel_rows<V, MR, 2>(Cin, a, Vx + jp * NR, ldv, acc);
              T* dst = Mx + (k - kb0) * ldv + jp * NR;
#pragma GCC unroll 16
              for (int i = 0; i < MR; ++i) {
                if (i >= mr) break;
                V::store(dst + i * ldv, acc[i][0]);
                V::store(dst + i * ldv + N, acc[i][1]);
              }
            }
          }
        }

        // 3'. F(2x2, 5x5): output transform into y, V::N tiles at a time, the 4 results of each
        //     tile stored one by one (clipped at the image edge).
        for (int64_t k = kb0; k < kb1 && g.m == 2; ++k) {
          const R bv = V::set1(bias ? bias[k] : T(0));
          for (int64_t j0 = 0; j0 < nvalid; j0 += N) {
            const T* src = Mb + (k - kb0) * ldv + j0;
            R t[2][6];  // t[i][j] = (A^T M)[i][j]
            for (int j = 0; j < 6; ++j) {
              R m[6], o[2];
              for (int i = 0; i < 6; ++i) m[i] = V::load(src + (i * 6 + j) * xs_m);
              at2<V>(m, o);
              t[0][j] = o[0];
              t[1][j] = o[1];
            }
            for (int i = 0; i < 2; ++i) {  // obuf[(i * 2 + j) * N + l] = output (i, j) of tile l
              R o[2];
              at2<V>(t[i], o);
              for (int j = 0; j < 2; ++j) {
                R v = V::add(o[j], bv);
                if (relu) v = V::max(V::zero(), v);  // max(0, NaN) = NaN, as in ref
                V::store(obuf + (i * 2 + j) * N, v);
              }
            }
            const int64_t tiles = std::min<int64_t>(N, nvalid - j0);
            for (int64_t l = 0; l < tiles; ++l) {
              const int64_t j = j0 + l;
              T* yt = y + tn[j] * g.yn + k * OHW + toh[j] * g.OW + tow[j];
              const bool r2 = toh[j] + 1 < g.OH, c2 = tow[j] + 1 < g.OW;
              yt[0] = obuf[l];
              if (c2) yt[1] = obuf[N + l];
              if (r2) {
                yt[g.OW] = obuf[2 * N + l];
                if (c2) yt[g.OW + 1] = obuf[3 * N + l];
              }
            }
          }
        }

        // 3. Output transform into y, with bias and ReLU, V::N tiles at a time; the 16 result
        //    vectors are transposed N rows at a time into tr[l][(i - i0) * 4 + j] (tile l, row i,
        //    column j), then each tile's rows are copied out (clipped at the image edge).
        for (int64_t k = kb0; k < kb1 && g.m == 4; ++k) {
          const R bv = V::set1(bias ? bias[k] : T(0));
          for (int64_t j0 = 0; j0 < nvalid; j0 += N) {
            const T* src = Mb + (k - kb0) * ldv + j0;
            R t[4][6];  // t[i][j] = (A^T M)[i][j]
            for (int j = 0; j < 6; ++j) {
              R m[6], o[4];
              for (int i = 0; i < 6; ++i) m[i] = V::load(src + (i * 6 + j) * xs_m);
              at4<V>(m, o);
              for (int i = 0; i < 4; ++i) t[i][j] = o[i];
            }
            for (int i = 0; i < 4; ++i) {  // obuf[(i * 4 + j) * N + l] = output (i, j) of tile l
              R o[4];
              at4<V>(t[i], o);
              for (int j = 0; j < 4; ++j) {
                R v = V::add(o[j], bv);
                if (relu) v = V::max(V::zero(), v);  // max(0, NaN) = NaN, as in ref
                V::store(obuf + (i * 4 + j) * N, v);
              }
            }
            const int64_t tiles = std::min<int64_t>(N, nvalid - j0);
            T* tr = obuf + 16 * N;
            for (int i0 = 0; i0 < 4; i0 += N / 4) {
              V::transpose(obuf + i0 * 4 * N, N, tr, N);
              for (int64_t l = 0; l < tiles; ++l) {
                const int64_t j = j0 + l;
                const int64_t rows = std::min<int64_t>(4, g.OH - toh[j]), cols = std::min<int64_t>(4, g.OW - tow[j]);
                T* yt = y + tn[j] * g.yn + k * OHW + toh[j] * g.OW + tow[j];
                for (int ii = 0; ii < N / 4 && i0 + ii < rows; ++ii) {
                  const T* v = tr + l * N + ii * 4;
                  T* yrow = yt + (i0 + ii) * g.OW;
                  if (cols == 4)
                    std::memcpy(yrow, v, 4 * sizeof(T));
                  else
                    for (int64_t jj = 0; jj < cols; ++jj) yrow[jj] = v[jj];
                }
              }
            }
          }
        }
      }
    }
  });
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Entry points: what Winograd takes, and the two passes.
// ---------------------------------------------------------------------------------------------

// Where Winograd beats the GEMM path (measured forward, 2 threads, Zen 4; speedup = GEMM time /
// Winograd time):
// * Cin >= 16 input channels of the equivalent forward conv (K for backward-input): with 8 the
//   transforms are not amortised (0.91-0.99x at 56x56, 28x28, 16x16 and 7x7 planes with K = 64;
//   Cin = 16: 1.08-1.44x). Below 5 channels or at small K the direct kernels run first anyway.
// * Cout >= 8 (Cin = 64, K = 8: 1.26-1.93x).
// * Enough tiles to fill the vector lanes: a tile gives 16 outputs for 36 multiplies per channel
//   pair, but the GEMMs compute whole register tiles (NR tiles, or kFewMR in the few-tiles mode),
//   so Winograd does 36 * round_up(T, NR or kFewMR) multiplies per channel pair against
//   9 * N * OH * OW. Above the direct count it loses (N=1 5x5 planes, 4 tiles for 25 outputs:
//   0.73-0.78x at 256 x 256); above 1/2 of it, large layers lose (N=2 7x7 in tile panels, before
//   the few-tiles mode: 0.87x at 512 x 512, 1.30x at 256 x 256) and small ones still win (5x5 at
//   64 x 64: 1.02-1.07x; few tiles with the fused weight transform, N=1 7x7: 1.6x at 512 x 512 and
//   at 256 x 256, 1.2x at 64 x 64; these thresholds predate that mode and were not re-tuned). So:
//   decline above 1, and above 1/2 when Cin * Cout >= 256 * 256.
// * Cin <= 512, for accuracy rather than speed: the error grows with the reduction length faster
//   than the tests' float32 tolerance (rtol 1e-4, atol 1e-4 * sqrt(9 * Cin)); the worst element
//   used 0.7 of it at Cin = 768 and 0.97 at Cin = 1024 (N=1, 14x14, standard-normal data).
constexpr int64_t kMinCin = 16;
constexpr int64_t kMaxCin = 512;
constexpr int64_t kMinCout = 8;
constexpr int64_t kLargeLayer = 256 * 256;

// F(4x4, 3x3), groups 1: what the weight gradient (conv2d_winograd_wgrad.h), the plane kernel's
// hand-over (conv2d_plane.h) and the forward-type passes below share.
// The forward and backward-input passes also take 5x5 filters (F(2x2, 5x5), padding 0..4) and
// grouped convolutions (one call of conv() per group, see fwd_groups).
inline bool shape_ok_fwd(const Conv2dShape& p) {
  return winograd_enabled().load(std::memory_order_relaxed) && (p.R == 3 || p.R == 5) && p.S == p.R && p.sh == 1 &&
         p.sw == 1 && p.dh == 1 && p.dw == 1 && p.groups >= 1 && p.C % p.groups == 0 && p.K % p.groups == 0 &&
         p.ph >= 0 && p.ph < p.R && p.pw >= 0 && p.pw < p.R && p.OH >= 1 && p.OW >= 1 && p.N >= 1;
}

inline bool shape_ok(const Conv2dShape& p) { return p.R == 3 && p.groups == 1 && shape_ok_fwd(p); }

// 5x5: F(2x2, 5x5) does 36 multiplies per 4 outputs and channel pair against 25 x 4 direct (2.8x
// fewer), but its transforms are per 4 outputs instead of 16; declines above 1/2 of the direct
// count (tiles cut by the image edge: 7x7 planes give 16 tiles for 49 outputs, 0.47).
template <class V>
bool pays_off(const Geometry& g) {
  if (relax_heuristics()) return g.Cin <= kMaxCin;  // autotuning (dispatch/heuristics.h): accuracy limit only
  if (g.Cin < kMinCin || g.Cin > kMaxCin || g.Cout < kMinCout) return false;
  const int64_t NR = 2 * V::N;
  // 5x5 with more than twice as many input as output channels (the grad_input of an expanding
  // layer, e.g. AlexNet's conv2: 192 -> 64) took 0.70x of the GEMM path's time on AVX-512 while the
  // weight transform stalled on store forwarding (gather_taps); without the stall it runs 1.00x-1.21x
  // faster (Xeon, 1 thread, CPU time, bench/ab_builds.py alex2,alex2_n1,alex2_n4,g5x5_32_28_n8,
  // g5x5_48_14_n8 bwd_input), as it did with 256-bit vectors (1.40-1.45x).
  if (g.r == 5) return 2 * 36 * round_up(g.T, NR) <= 25 * g.N * g.OH * g.OW;
  const int64_t lanes = g.T <= NR / 2 ? round_up(g.T, kFewMR) : round_up(g.T, NR);  // see conv()
  const int64_t wino = 4 * lanes, direct = g.N * g.OH * g.OW;                       // multiplies / 9 per channel pair
  return wino <= direct && (2 * wino <= direct || g.Cin * g.Cout < kLargeLayer);
}

inline Geometry geometry(int64_t N, int64_t Cin, int64_t H, int64_t W, int64_t Cout, int64_t OH, int64_t OW, int64_t ph,
                         int64_t pw, int64_t r = 3) {
  const int64_t m = 7 - r;  // m + r - 1 = 6
  Geometry g{N, Cin, H, W, Cout, OH, OW, ph, pw, ceil_div(OH, m), ceil_div(OW, m), 0};
  g.T = N * g.TH * g.TW;
  g.m = m;
  g.r = r;
  g.xn = Cin * H * W;
  g.yn = Cout * OH * OW;
  return g;
}

// conv() once per group: groups of Cin input and Cout output channels of images with G * Cin and
// G * Cout channels; weights w[G][Cout][Cin][r][r] (forward) or w[G][Cin][Cout][r][r] (rotate).
template <class V, int MR>
bool fwd_groups(Geometry g, int64_t G, const typename V::T* x, const typename V::T* w, bool rotate,
                const typename V::T* bias, typename V::T* y, bool relu) {
  // Groups of at most 32 output channels are the GEMM path's grouped direct kernel's
  // (conv2d_gemm.h, is_grouped_direct), which does not transform anything.
  if (!pays_off<V>(g) || (G > 1 && g.Cout <= 32 && !relax_heuristics())) return false;
  const int64_t HW = g.H * g.W, OHW = g.OH * g.OW;
  g.xn = G * g.Cin * HW;
  g.yn = G * g.Cout * OHW;
  const auto one = [&](int64_t gi) {
    return conv<V, MR>(g, x + gi * g.Cin * HW, w + gi * g.Cin * g.Cout * g.r * g.r, rotate,
                       bias ? bias + gi * g.Cout : nullptr, y + gi * g.Cout * OHW, relu);
  };
  // Whole groups per thread when they divide evenly (or are many): each conv() then runs serially
  // inside the region (nested regions do), with no load imbalance between its tile blocks. The
  // results do not depend on the thread count either way.
  const int nt = max_threads();
  if (G > 1 && nt > 1 && (G % nt == 0 || G >= 4 * nt)) {
    std::atomic<bool> ok{true};
    parallel_for(G, g.T * g.Cin * g.Cout * kXi, [&](int64_t b, int64_t e) {
      for (int64_t gi = b; gi < e; ++gi)
        if (!one(gi)) ok = false;
    });
    return ok;
  }
  for (int64_t gi = 0; gi < G; ++gi)
    if (!one(gi)) return false;
  return true;
}

template <class V, int MR>
bool fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
         typename V::T* y, bool relu) {
  if (!shape_ok_fwd(p)) return false;
  const int64_t G = p.groups;
  const Geometry g = geometry(p.N, p.C / G, p.H, p.W, p.K / G, p.OH, p.OW, p.ph, p.pw, p.R);
  return fwd_groups<V, MR>(g, G, x, w, false, bias, y, relu);
}

// gx = conv(gy, w') with w' the rotated, channel-swapped weights and padding r - 1 - p (stride 1;
// see bwd_input_as_fwd in conv2d_gemm.h): the output planes are H x W, the inputs OH x OW.
template <class V, int MR>
bool bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  if (!shape_ok_fwd(p)) return false;
  const int64_t G = p.groups, r = p.R;
  const Geometry g = geometry(p.N, p.K / G, p.OH, p.OW, p.C / G, p.H, p.W, r - 1 - p.ph, r - 1 - p.pw, r);
  return fwd_groups<V, MR>(g, G, gy, w, true, nullptr, gx, false);
}

}  // namespace wino
}  // namespace
}  // namespace cnnfast
