// Winograd F(4x4, 3x3) convolution for 3x3, stride-1, dense float32 layers (forward and, as a
// forward convolution of grad_output, backward-input), written once for any vector type V of
// common/simd.h and instantiated per ISA in conv2d_winograd_avx2.cpp / conv2d_winograd_avx512.cpp.
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
// channels and transforms the result into y.
//
// Vectorisation: both transforms run across V::N neighbouring tiles of one tile row. The patch
// rows are first copied into a zero-padded line, so borders and padding need no branches, and a
// V::N x V::N register transpose with source stride 4 turns the line into the V::N-tile vectors
// of patch columns 0..5 (patch s of tile l is line[4l + s]). The output side goes the other way:
// the 16 result vectors are transposed back into rows of 4 values per tile.
//
// Determinism: every output sums its C products in one sequence (the microkernel runs the
// whole reduction), and a tile's transforms do not depend on which block or lane it lands in,
// so results are bitwise identical for any thread count and blocking.
//
// Contract (conv2d.h): raw pointers, never throw; scratch comes from common/scratch.h and a
// failed allocation declines (returns false) before anything is written.
//
// Internal linkage (anonymous namespace): see common/simd.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "common/parallel.h"
#include "common/scratch.h"
#include "common/simd.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/winograd_switch.h"

#define CNNFAST_WINO_INLINE inline __attribute__((always_inline))

namespace cnnfast {
namespace {
namespace wino {

constexpr int kXi = 36;  // 6 x 6 transformed domain

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// A stride-1 3x3 convolution in the terms of the algorithm: Cin input planes of H x W, Cout
// output planes of OH x OW, zero padding ph/pw (0..2), and TH x TW output tiles per image.
struct Geometry {
  int64_t N, Cin, H, W, Cout, OH, OW, ph, pw;
  int64_t TH, TW, T;  // tiles per column / row of an image, tiles in all
};

// ---------------------------------------------------------------------------------------------
// The 1-D transforms, applied to the rows and then the columns of a 6x6 (3x3 for G) block.
// ---------------------------------------------------------------------------------------------

// o = B^T z (6 -> 6). B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
//                            0 2 -1 -2 1 0; 0 4 0 -5 0 1]
template <class V>
CNNFAST_WINO_INLINE void bt6(const typename V::R (&z)[6], typename V::R (&o)[6]) {
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
CNNFAST_WINO_INLINE void g6(typename V::R z0, typename V::R z1, typename V::R z2, typename V::R (&o)[6]) {
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
CNNFAST_WINO_INLINE void at4(const typename V::R (&m)[6], typename V::R (&o)[4]) {
  using R = typename V::R;
  const R a = V::add(m[1], m[2]), b = V::sub(m[1], m[2]), c = V::add(m[3], m[4]), d = V::sub(m[3], m[4]);
  o[0] = V::add(V::add(m[0], a), c);
  o[1] = V::fma(V::set1(2), d, b);
  o[2] = V::fma(V::set1(4), c, a);
  o[3] = V::add(V::fma(V::set1(8), d, b), m[5]);
}

// ---------------------------------------------------------------------------------------------
// Weight transform: U[(xi * Cout + o) * ldu + i] for all o, i (columns Cin..ldu are zero).
// Forward: g = w[o][i] (w is Cout x Cin x 3 x 3). rotate (backward-input as forward): w is
// Cin x Cout x 3 x 3 (the layer's K x C) and g = w[i][o] rotated by 180 degrees, so the rotated,
// channel-swapped weights are never materialised.
// ---------------------------------------------------------------------------------------------

template <class V>
void transform_weights(const Geometry& g, const typename V::T* w, bool rotate, typename V::T* U, int64_t ldu) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  const int64_t Cout = g.Cout, Cin = g.Cin;
  parallel_for(Cout, 40 * ldu, [&](int64_t b, int64_t e) {
    alignas(64) T tmp[9 * N];
    for (int64_t o = b; o < e; ++o) {
      for (int64_t i0 = 0; i0 < ldu; i0 += N) {
        // Gather the 9 taps of N input channels (zero beyond Cin) into tmp[tap][lane].
        for (int l = 0; l < N; ++l) {
          const int64_t i = i0 + l;
          if (i >= Cin) {
            for (int t = 0; t < 9; ++t) tmp[t * N + l] = T(0);
          } else if (rotate) {
            const T* src = w + (i * Cout + o) * 9;
            for (int t = 0; t < 9; ++t) tmp[t * N + l] = src[8 - t];
          } else {
            const T* src = w + (o * Cin + i) * 9;
            for (int t = 0; t < 9; ++t) tmp[t * N + l] = src[t];
          }
        }
        R col[3][6];  // G applied to each column s of g: col[s][a]
        for (int s = 0; s < 3; ++s)
          g6<V>(V::load(tmp + s * N), V::load(tmp + (3 + s) * N), V::load(tmp + (6 + s) * N), col[s]);
        for (int a = 0; a < 6; ++a) {  // row a of G g, times G^T
          R u[6];
          g6<V>(col[0][a], col[1][a], col[2][a], u);
          for (int bb = 0; bb < 6; ++bb) V::store(U + ((a * 6 + bb) * Cout + o) * ldu + i0, u[bb]);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Microkernel: acc[i][v] = sum_c A(i, c) * B(c, v*N .. v*N+N); A given as MR rows (unit stride
// along c, ldu apart), B rows ldb apart. One sequence over the whole reduction.
// ---------------------------------------------------------------------------------------------

template <class V, int MR, int NV>
CNNFAST_WINO_INLINE void ukernel(int64_t kc, const typename V::T* const (&a)[MR], const typename V::T* b, int64_t ldb,
                                 typename V::R (&acc)[MR][NV]) {
  using R = typename V::R;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  for (int64_t k = 0; k < kc; ++k) {
    R bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * V::N);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const R av = V::set1(a[i][k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(av, bv[v], acc[i][v]);
    }
    b += ldb;
  }
}

// Segments of a tile block: runs of consecutive tiles in one tile row of one image.
struct Segment {
  int64_t n, th, tw, len, j0;  // image, tile row, first tile column, tiles, first block column
};
template <typename F>
CNNFAST_WINO_INLINE void for_each_segment(const Geometry& g, int64_t t0, int64_t t1, const F& f) {
  const int64_t per_image = g.TH * g.TW;
  for (int64_t t = t0; t < t1;) {
    const int64_t n = t / per_image, rem = t % per_image, th = rem / g.TW, tw = rem % g.TW;
    const int64_t len = std::min(g.TW - tw, t1 - t);
    f(Segment{n, th, tw, len, t - t0});
    t += len;
  }
}

// ---------------------------------------------------------------------------------------------
// The whole convolution. x is N x Cin x H x W; w as for transform_weights; y is N x Cout x OH x OW.
// ---------------------------------------------------------------------------------------------

// Tiles per block: at most this many input-transform floats (36 * Cin * TB) per block, so the
// block's V (and M) stay in L2 while the 36 GEMMs sweep them. Chosen because ...
constexpr int64_t kBlockFloats = 36 * 64 * 128;
constexpr int64_t kMinBlockTiles = 16;
constexpr int64_t kMaxBlockTiles = 128;

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
  int64_t nblocks = ceil_div(T_, tb_max);
  if (nt > 1 && nblocks >= nt && nblocks < 16 * nt && nblocks % nt) nblocks = std::min(T_, round_up(nblocks, nt));
  const int64_t tb = ceil_div(T_, nblocks);
  nblocks = ceil_div(T_, tb);
  int64_t ksplit = 1;
  if (nblocks < nt) ksplit = std::min<int64_t>(ceil_div(nt, nblocks), ceil_div(Cout, MR));
  const int64_t kchunk = round_up(ceil_div(Cout, ksplit), MR);
  ksplit = ceil_div(Cout, kchunk);
  const int64_t items = nblocks * ksplit;

  const int64_t ldu = round_up(Cin, N);
  const int64_t ldv = round_up(tb, NR) + NR;  // + NR: a last vector group may spill past the block
  const int64_t seg_max = std::min(tb, g.TW);
  const int64_t groups_max = ceil_div(seg_max, N);
  const int64_t line_len = 4 * (groups_max * N) + 2 * N;  // covers 4*(last group + N - 1) + N reads

  // U lives in the calling thread's second scratch slot (slot 0 is each worker's block scratch).
  T* U = thread_scratch_of<T, 1>(size_t(kXi * Cout * ldu));
  if (!U) return false;
  transform_weights<V>(g, w, rotate, U, ldu);

  // Per worker: the block's V and M, the patch vectors of one segment (6 N x N transposes per
  // vector group), the output vectors of one group, one zero-padded input line.
  const size_t v_floats = size_t(kXi * Cin * ldv), m_floats = size_t(kXi * kchunk * ldv);
  const size_t d_floats = size_t(groups_max * 6 * N * N), o_floats = size_t(16 * N);
  const size_t scratch_floats = v_floats + m_floats + d_floats + o_floats + size_t(line_len);
  std::atomic<bool> ok{true};

  parallel_for(items, tb * kchunk * Cin * kXi, [&](int64_t b, int64_t e) {
    T* Vb = thread_scratch_of<T>(scratch_floats);
    if (!Vb) {  // declining after a partial write is safe: every fallback overwrites all of y
      ok = false;
      return;
    }
    T* Mb = Vb + v_floats;
    T* dbuf = Mb + m_floats;
    T* obuf = dbuf + d_floats;
    T* line = obuf + o_floats;
    for (int64_t it = b; it < e; ++it) {
      const int64_t blk = it / ksplit, ks = it % ksplit;
      const int64_t t0 = blk * tb, t1 = std::min(T_, t0 + tb), nvalid = t1 - t0;
      const int64_t k0 = ks * kchunk, k1 = std::min(Cout, k0 + kchunk);
      const int64_t npan = ceil_div(nvalid, NR);

      // 1. Input transform of the block, all input channels: Vb[(xi * Cin + c) * ldv + j].
      for_each_segment(g, t0, t1, [&](const Segment& sg) {
        const int64_t ngroups = ceil_div(sg.len, N);
        const int64_t col0 = 4 * sg.tw - g.pw;  // input column of line[0]
        const int64_t lcount = 4 * (ngroups * N) + 2 * N;
        // line[u] = x[ih][col0 + u] for 0 <= col0 + u < W, else 0.
        const int64_t lo = std::clamp<int64_t>(-col0, 0, lcount), hi = std::clamp<int64_t>(g.W - col0, lo, lcount);
        for (int64_t c = 0; c < Cin; ++c) {
          const T* plane = x + (sg.n * Cin + c) * g.H * g.W;
          for (int r = 0; r < 6; ++r) {
            const int64_t ih = 4 * sg.th - g.ph + r;
            if (ih < 0 || ih >= g.H) {
              std::fill(line, line + lcount, T(0));
            } else {
              std::fill(line, line + lo, T(0));
              std::memcpy(line + lo, plane + ih * g.W + col0 + lo, size_t(hi - lo) * sizeof(T));
              std::fill(line + hi, line + lcount, T(0));
            }
            // dbuf[((gi * 6 + r) * N + s) * N + l] = patch (r, s) of tile gi*N + l (s < 6 used).
            for (int64_t gi = 0; gi < ngroups; ++gi) V::transpose(line + 4 * gi * N, 4, dbuf + (gi * 6 + r) * N * N, N);
          }
          for (int64_t gi = 0; gi < ngroups; ++gi) {
            const T* d = dbuf + gi * 6 * N * N;
            R t[6][6];  // t[i][s] = (B^T d)[i][s]
            for (int s = 0; s < 6; ++s) {
              R z[6], o[6];
              for (int r = 0; r < 6; ++r) z[r] = V::load(d + (r * N + s) * N);
              bt6<V>(z, o);
              for (int i = 0; i < 6; ++i) t[i][s] = o[i];
            }
            T* dst = Vb + c * ldv + sg.j0 + gi * N;
            for (int i = 0; i < 6; ++i) {
              R o[6];
              bt6<V>(t[i], o);
              for (int j = 0; j < 6; ++j) V::store(dst + (i * 6 + j) * Cin * ldv, o[j]);
            }
          }
        }
      });
      // Columns past the block up to the panel edge: zero, so the GEMMs never see stale data.
      if (npan * NR > nvalid)
        for (int64_t row = 0; row < kXi * Cin; ++row) std::fill(Vb + row * ldv + nvalid, Vb + row * ldv + npan * NR, T(0));

      // 2. The 36 GEMMs: Mb[(xi * kchunk + k - k0) * ldv + j] = sum_c U[xi][k][c] * Vb[xi][c][j].
      for (int xi = 0; xi < kXi; ++xi) {
        const T* Ux = U + xi * Cout * ldu;
        const T* Vx = Vb + xi * Cin * ldv;
        T* Mx = Mb + xi * kchunk * ldv;
        for (int64_t k = k0; k < k1; k += MR) {
          const int mr = int(std::min<int64_t>(MR, k1 - k));
          const T* a[MR];  // rows past the edge repeat the last one (computed, not stored)
#pragma GCC unroll 16
          for (int i = 0; i < MR; ++i) a[i] = Ux + (k + std::min(i, mr - 1)) * ldu;
          for (int64_t jp = 0; jp < npan; ++jp) {
            R acc[MR][2];
            ukernel<V, MR, 2>(Cin, a, Vx + jp * NR, ldv, acc);
            T* dst = Mx + (k - k0) * ldv + jp * NR;
#pragma GCC unroll 16
            for (int i = 0; i < MR; ++i) {
              if (i >= mr) break;
              V::store(dst + i * ldv, acc[i][0]);
              V::store(dst + i * ldv + N, acc[i][1]);
            }
          }
        }
      }

      // 3. Output transform into y, with bias and ReLU.
      for_each_segment(g, t0, t1, [&](const Segment& sg) {
        const int64_t ngroups = ceil_div(sg.len, N);
        const int64_t oh0 = 4 * sg.th, rows = std::min<int64_t>(4, g.OH - oh0);
        for (int64_t k = k0; k < k1; ++k) {
          const R bv = V::set1(bias ? bias[k] : T(0));
          T* yk = y + ((sg.n * Cout + k) * g.OH + oh0) * g.OW;
          for (int64_t gi = 0; gi < ngroups; ++gi) {
            const T* src = Mb + (k - k0) * ldv + sg.j0 + gi * N;
            R t[4][6];  // t[i][j] = (A^T M)[i][j]
            for (int j = 0; j < 6; ++j) {
              R m[6], o[4];
              for (int i = 0; i < 6; ++i) m[i] = V::load(src + (i * 6 + j) * kchunk * ldv);
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
            // Back to rows: after transposing N rows (i, j) at a time, tr[l][(i - i0) * 4 + j].
            const int64_t tiles = std::min<int64_t>(N, sg.len - gi * N);
            const int64_t tw = sg.tw + gi * N;
            for (int i0 = 0; i0 < 4; i0 += N / 4) {
              if (i0 >= rows) break;
              alignas(64) T tr[N * N];
              V::transpose(obuf + i0 * 4 * N, N, tr, N);
              for (int ii = 0; ii < N / 4 && i0 + ii < rows; ++ii) {
                T* yrow = yk + (i0 + ii) * g.OW + 4 * tw;
                for (int64_t l = 0; l < tiles; ++l) {
                  const int64_t cols = std::min<int64_t>(4, g.OW - 4 * (tw + l));
                  if (cols == 4)
                    std::memcpy(yrow + 4 * l, tr + l * N + ii * 4, 4 * sizeof(T));
                  else
                    for (int64_t j = 0; j < cols; ++j) yrow[4 * l + j] = tr[l * N + ii * 4 + j];
                }
              }
            }
          }
        }
      });
    }
  });
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Entry points: what Winograd takes, and the two passes.
// ---------------------------------------------------------------------------------------------

// Minimum channel counts and work for Winograd to beat the GEMM path. Chosen by measurement ...
constexpr int64_t kMinChannels = 8;

inline bool shape_ok(const Conv2dShape& p) {
  return winograd_enabled().load(std::memory_order_relaxed) && p.R == 3 && p.S == 3 && p.sh == 1 && p.sw == 1 &&
         p.dh == 1 && p.dw == 1 && p.groups == 1 && p.ph >= 0 && p.ph <= 2 && p.pw >= 0 && p.pw <= 2 &&
         p.C >= kMinChannels && p.K >= kMinChannels && p.OH >= 1 && p.OW >= 1;
}

inline Geometry geometry(int64_t N, int64_t Cin, int64_t H, int64_t W, int64_t Cout, int64_t OH, int64_t OW,
                         int64_t ph, int64_t pw) {
  Geometry g{N, Cin, H, W, Cout, OH, OW, ph, pw, ceil_div(OH, 4), ceil_div(OW, 4), 0};
  g.T = N * g.TH * g.TW;
  return g;
}

template <class V, int MR>
bool fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
         typename V::T* y, bool relu) {
  if (!shape_ok(p)) return false;
  return conv<V, MR>(geometry(p.N, p.C, p.H, p.W, p.K, p.OH, p.OW, p.ph, p.pw), x, w, false, bias, y, relu);
}

// gx = conv(gy, w') with w' the rotated, channel-swapped weights and padding 2 - p (stride 1;
// see bwd_input_as_fwd in conv2d_gemm.h): the output planes are H x W, the inputs OH x OW.
template <class V, int MR>
bool bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  if (!shape_ok(p)) return false;
  return conv<V, MR>(geometry(p.N, p.K, p.OH, p.OW, p.C, p.H, p.W, 2 - p.ph, 2 - p.pw), gy, w, true, nullptr, gx,
                     false);
}

}  // namespace wino
}  // namespace
}  // namespace cnnfast
