// Winograd F(4x4, 3x3) weight gradient for 3x3 (and F(2x2, 5x5) for 5x5: dy_group2, out_group5),
// stride-1, dense float32 layers, written once for
// any vector type V of common/simd.h next to the forward (conv2d_winograd.h, whose transforms,
// tiling and microkernel it reuses) and instantiated in conv2d_winograd_avx2.cpp / _avx512.cpp.
//
// The forward computes each 4x4 output tile as y = A^T [(G g G^T) . (B^T d B)] A. Transposing that
// bilinear algorithm gives the weight gradient of one tile as G^T [(A dy A^T) . (B^T d B)] G, with d
// the tile's 6x6 input patch (the forward's tiling and padding) and dy its 4x4 grad_output (zero
// outside the output). G^T . G is linear, so the products are summed over tiles first: with the 36
// frequencies xi of the 6x6 domain,
//   X[xi][c][t]  = (B^T d_ct B)[xi]            input transform (the forward's input_group)
//   DY[xi][t][k] = (A dy_kt A^T)[xi]           grad_output transform (dy_group below)
//   M[xi][c][k]  = sum_t X[xi][c][t] DY[xi][t][k]     36 GEMMs of C x K reducing over tiles
//   gw[k][c]     = G^T M[.][c][k] G            3x3 out of 6x6, once at the end
// which is 36 multiply-adds per tile and channel pair against 9 * 16 for im2col + GEMM: 4x fewer
// (the transforms are O(C + K) per tile). grad_bias is the plain sum of grad_output.
//
// The tiles of all images form one sequence, taken in chunks of a fixed number of tiles (from the
// shape only) so the transformed buffers stay bounded (36 * (C + K) * chunk floats, ~8 MB); M
// accumulates over the chunks. Per chunk: the input transform (parallel over input channels), the
// grad_output transform (parallel over tiles; vectors along output channels, written straight
// into K-panels of NR channels, the microkernel's B), then the GEMMs (parallel over xi and blocks
// of input channels; the microkernel's A rows are X rows, unit stride along tiles).
//
// Determinism: every M element sums its chunk's tiles in one sequence and the chunks in order;
// chunking and the transforms depend on the shape only, so results are bitwise identical for any
// thread count.
//
// Contract (conv2d.h): raw pointers, never throw; scratch comes from common/scratch.h and a
// failed allocation declines (returns false). In the fused mode a worker's failure can come after
// other workers wrote parts of gw; that is safe because every fallback overwrites all of gw.
//
// Internal linkage (anonymous namespace): see common/simd.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/conv2d/conv2d_winograd.h"

namespace cnnfast {
namespace {
namespace wino {

// o = A z (4 -> 6), A = (A^T)^T: rows [1 0 0 0; 1 1 1 1; 1 -1 1 -1; 1 2 4 8; 1 -2 4 -8; 0 0 0 1].
template <class V>
CNNFAST_FORCE_INLINE void a6(const typename V::R (&z)[4], typename V::R (&o)[6]) {
  using R = typename V::R;
  const R s = V::add(z[0], z[2]), d = V::add(z[1], z[3]);
  const R p = V::fma(V::set1(4), z[2], z[0]), q = V::fma(V::set1(8), z[3], V::add(z[1], z[1]));
  o[0] = z[0];
  o[1] = V::add(s, d);
  o[2] = V::sub(s, d);
  o[3] = V::add(p, q);
  o[4] = V::sub(p, q);
  o[5] = z[3];
}

// o = G^T z (6 -> 3). G^T = [1/4 -1/6 -1/6 1/24 1/24 0; 0 -1/6 1/6 1/12 -1/12 0; 0 -1/6 -1/6 1/6 1/6 1]
template <class V>
CNNFAST_FORCE_INLINE void gt3(const typename V::R (&z)[6], typename V::R (&o)[3]) {
  using R = typename V::R;
  using T = typename V::T;
  const R p = V::add(z[1], z[2]), q = V::sub(z[2], z[1]), u = V::add(z[3], z[4]), v = V::sub(z[3], z[4]);
  const R sixth = V::set1(T(1) / T(6));
  o[0] = V::fma(V::set1(T(0.25)), z[0], V::fma(V::set1(T(1) / T(24)), u, V::mul(V::set1(T(-1) / T(6)), p)));
  o[1] = V::fma(sixth, q, V::mul(V::set1(T(1) / T(12)), v));
  o[2] = V::fma(sixth, V::sub(u, p), z[5]);
}

// F(2x2, 5x5): o = A z (2 -> 6), A rows [1 0; 1 1; 1 -1; 1 2; 1 -2; 0 1].
template <class V>
CNNFAST_FORCE_INLINE void a6m2(typename V::R z0, typename V::R z1, typename V::R (&o)[6]) {
  o[0] = z0;
  o[1] = V::add(z0, z1);
  o[2] = V::sub(z0, z1);
  o[3] = V::fma(V::set1(2), z1, z0);
  o[4] = V::fma(V::set1(-2), z1, z0);
  o[5] = z1;
}

// F(2x2, 5x5): o = G5^T z (6 -> 5), G5 as g6r5 in conv2d_winograd.h.
template <class V>
CNNFAST_FORCE_INLINE void gt5(const typename V::R (&z)[6], typename V::R (&o)[5]) {
  using R = typename V::R;
  using T = typename V::T;
  const R p = V::add(z[1], z[2]), q = V::sub(z[1], z[2]), u = V::add(z[3], z[4]), v = V::sub(z[3], z[4]);
  const R m6 = V::set1(T(-1) / T(6));
  o[0] = V::fma(V::set1(T(0.25)), z[0], V::fma(m6, p, V::mul(V::set1(T(1) / T(24)), u)));
  o[1] = V::fma(m6, q, V::mul(V::set1(T(1) / T(12)), v));
  o[2] = V::fma(m6, p, V::mul(V::set1(T(1) / T(6)), u));
  o[3] = V::fma(m6, q, V::mul(V::set1(T(1) / T(3)), v));
  o[4] = V::add(V::fma(m6, p, V::mul(V::set1(T(2) / T(3)), u)), z[5]);
}

// F(2x2, 5x5): dy_group for 2x2 tiles; each channel's 4 values gathered into slot[e * N + l].
template <class V>
CNNFAST_FORCE_INLINE void dy_group2(const Geometry& g, const typename V::T* gy, int64_t n, int64_t oh0, int64_t ow0,
                                    int64_t k0, typename V::T* slot, typename V::T* dst, int64_t xs) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  const int64_t OHW = g.OH * g.OW, K = g.Cout;
  const bool r2 = oh0 + 1 < g.OH, c2 = ow0 + 1 < g.OW;
  for (int l = 0; l < N; ++l) {
    const int64_t k = k0 + l;
    if (k >= K) {
      for (int e = 0; e < 4; ++e) slot[e * N + l] = T(0);
      continue;
    }
    const T* src = gy + (n * K + k) * OHW + oh0 * g.OW + ow0;
    slot[l] = src[0];
    slot[N + l] = c2 ? src[1] : T(0);
    slot[2 * N + l] = r2 ? src[g.OW] : T(0);
    slot[3 * N + l] = r2 && c2 ? src[g.OW + 1] : T(0);
  }
  R t[6][2];  // t[a][jj] = (A dy)[a][jj]
  for (int jj = 0; jj < 2; ++jj) {
    R o[6];
    a6m2<V>(V::load(slot + jj * N), V::load(slot + (2 + jj) * N), o);
    for (int a = 0; a < 6; ++a) t[a][jj] = o[a];
  }
  for (int a = 0; a < 6; ++a) {
    R o[6];
    a6m2<V>(t[a][0], t[a][1], o);
    for (int b = 0; b < 6; ++b) V::store(dst + (a * 6 + b) * xs, o[b]);
  }
}

// grad_output transform of tile j (image n, first output row oh0, column ow0) for the V::N output
// channels k0.. (zero from K on): the 36 vectors (A dy A^T)[xi] over those channels, stored at
// dst + xi * xs. Each channel's 4x4 tile goes to a 16-float slot, slot[l * 16 + i * 4 + jj] (zero
// outside the output), and 16 / N transposes turn the slots into the vectors of element (i, jj).
// slot: 16 * N floats, tr: 16 * N.
template <class V>
CNNFAST_FORCE_INLINE void dy_group(const Geometry& g, const typename V::T* gy, int64_t n, int64_t oh0, int64_t ow0,
                                   int64_t k0, typename V::T* slot, typename V::T* tr, typename V::T* dst, int64_t xs) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  static_assert(16 % N == 0, "16 tile elements split into whole N x N transposes");
  const int64_t OHW = g.OH * g.OW, K = g.Cout;
  const int64_t rows = std::min<int64_t>(4, g.OH - oh0), cols = std::min<int64_t>(4, g.OW - ow0);
  for (int l = 0; l < N; ++l) {
    T* s = slot + l * 16;
    const int64_t k = k0 + l;
    if (k >= K) {
      std::fill(s, s + 16, T(0));
      continue;
    }
    const T* src = gy + (n * K + k) * OHW + oh0 * g.OW + ow0;
    if (rows == 4 && cols == 4) {
      for (int i = 0; i < 4; ++i) std::memcpy(s + i * 4, src + i * g.OW, 4 * sizeof(T));
    } else {
      for (int i = 0; i < 4; ++i)
        for (int jj = 0; jj < 4; ++jj) s[i * 4 + jj] = (i < rows && jj < cols) ? src[i * g.OW + jj] : T(0);
    }
  }
  for (int h = 0; h < 16 / N; ++h) V::transpose(slot + h * N, 16, tr + h * N * N, N);  // tr[e * N + l]
  R t[6][4];                                                                           // t[a][jj] = (A dy)[a][jj]
  for (int jj = 0; jj < 4; ++jj) {
    R z[4], o[6];
    for (int i = 0; i < 4; ++i) z[i] = V::load(tr + (i * 4 + jj) * N);
    a6<V>(z, o);
    for (int a = 0; a < 6; ++a) t[a][jj] = o[a];
  }
  for (int a = 0; a < 6; ++a) {
    R o[6];
    a6<V>(t[a], o);
    for (int b = 0; b < 6; ++b) V::store(dst + (a * 6 + b) * xs, o[b]);
  }
}

// F(2x2, 5x5): gw[k][c] = G5^T m G5 (K x C x 5 x 5), as out_group below.
template <class V>
CNNFAST_FORCE_INLINE void out_group5(const typename V::T* src, int64_t xs, int64_t K, int64_t C, int64_t k0, int64_t c,
                                     typename V::T* gw) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  alignas(64) T out[25 * N];
  R t[6][5];  // t[a][s] = (m G5)[a][s]
  for (int a = 0; a < 6; ++a) {
    R z[6], o[5];
    for (int bb = 0; bb < 6; ++bb) z[bb] = V::load(src + (a * 6 + bb) * xs);
    gt5<V>(z, o);
    for (int s = 0; s < 5; ++s) t[a][s] = o[s];
  }
  for (int s = 0; s < 5; ++s) {
    R z[6], o[5];
    for (int a = 0; a < 6; ++a) z[a] = t[a][s];
    gt5<V>(z, o);
    for (int r = 0; r < 5; ++r) V::store(out + (r * 5 + s) * N, o[r]);
  }
  const int64_t lanes = std::min<int64_t>(N, K - k0);
  for (int64_t l = 0; l < lanes; ++l) {
    T* d = gw + ((k0 + l) * C + c) * 25;
    for (int rs = 0; rs < 25; ++rs) d[rs] = out[rs * N + l];
  }
}

// gw[k][c] = G^T m G for the V::N output channels k0.. (those below K) and input channel c, m[xi]
// the vector at src + xi * xs (lanes along output channels). gw is K x C x 3 x 3 (RR = 5: out_group5).
template <class V, int RR = 3>
CNNFAST_FORCE_INLINE void out_group(const typename V::T* src, int64_t xs, int64_t K, int64_t C, int64_t k0, int64_t c,
                                    typename V::T* gw) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  if constexpr (RR == 5) {
    out_group5<V>(src, xs, K, C, k0, c, gw);
    return;
  }
  alignas(64) T out[9 * N];
  R t[6][3];  // t[a][s] = (m G)[a][s]
  for (int a = 0; a < 6; ++a) {
    R z[6], o[3];
    for (int bb = 0; bb < 6; ++bb) z[bb] = V::load(src + (a * 6 + bb) * xs);
    gt3<V>(z, o);
    for (int s = 0; s < 3; ++s) t[a][s] = o[s];
  }
  for (int s = 0; s < 3; ++s) {
    R z[6], o[3];
    for (int a = 0; a < 6; ++a) z[a] = t[a][s];
    gt3<V>(z, o);
    for (int r = 0; r < 3; ++r) V::store(out + (r * 3 + s) * N, o[r]);
  }
  const int64_t lanes = std::min<int64_t>(N, K - k0);
  for (int64_t l = 0; l < lanes; ++l) {
    T* d = gw + ((k0 + l) * C + c) * 9;
    for (int rs = 0; rs < 9; ++rs) d[rs] = out[rs * N + l];
  }
}

// Tiles per chunk: the transformed input and grad_output of a chunk, 36 * (C + K) * chunk floats,
// within kWgradChunkFloats (8 MB), between kWgradMinChunk and kWgradMaxChunk tiles (a chunk adds
// its GEMM results into M: a read and a write of M per chunk, amortised over the chunk's tiles).
constexpr int64_t kWgradChunkFloats = 2 * 1024 * 1024;
constexpr int64_t kWgradMinChunk = 64;
constexpr int64_t kWgradMaxChunk = 256;
// M, 36 * C * K floats, is whole: decline above this many (48 MB; 512 x 512 channels is 37.7 MB).
constexpr int64_t kWgradMaxMFloats = 12 * 1024 * 1024;
// At most this many tiles (in one chunk): the GEMMs of one work item run for all 36 frequencies and
// their results go straight into gw, instead of through M (36 * C * K floats written and read back,
// which outweighs the 36 * C * K * T multiply-adds when T is small: 512 x 512 channels at N=1,
// 7 x 7 planes, 4 tiles, ran 0.5x the GEMM path through M). Above it the 36 B slices of a panel
// (36 * T * NR floats) outgrow L2.
constexpr int64_t kWgradFusedMaxTiles = 128;
// Input channels per GEMM work item (with the 36 frequencies, the parallel items).
constexpr int64_t kWgradCBlock = 64;

// gw (K x C x 3 x 3) and gb (K, may be null) of x (N x C x H x W) and gy (N x K x OH x OW).
// RR: the filter size (3 or 5, = g.r), a template parameter so that each compiles on its own.
template <class V, int MR, int RR>
bool wgrad(const Geometry& g, const typename V::T* x, const typename V::T* gy, typename V::T* gw, typename V::T* gb) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  constexpr int NR = 2 * N;  // output channels per microkernel panel
  const int64_t C = g.Cin, K = g.Cout, T_ = g.T;
  const int64_t npk = ceil_div(K, NR), ldk = npk * NR;
  const int64_t tc = std::clamp(kWgradChunkFloats / (kXi * (C + ldk)) / N * N, kWgradMinChunk, kWgradMaxChunk);
  const int64_t chunk = std::min(tc, round_up(T_, N));  // tiles per chunk, a multiple of N
  const int64_t nchunks = ceil_div(T_, chunk);
  // One chunk of few tiles: each GEMM work item keeps its 36 results in registers / a small buffer
  // and transforms them into gw at once (see kWgradFusedMaxTiles), no M.
  const bool fused = nchunks == 1 && T_ <= kWgradFusedMaxTiles;
  if (!fused && kXi * C * ldk > kWgradMaxMFloats) return false;
  // Shared scratch (the calling thread's second slot): X[xi * xs_x + c * chunk + j],
  // DY[xi * xs_dy + (kp * chunk + j) * NR + k % NR] (panel kp = k / NR), M[xi * xs_m + c * ldk + k],
  // the chunk's tile table. Distances padded to an odd number of cache lines (see conv()).
  const int64_t xs_x = pad_lines(C * chunk), xs_dy = pad_lines(npk * chunk * NR), xs_m = fused ? 0 : pad_lines(C * ldk);
  const size_t shared_floats = size_t(kXi * (xs_x + xs_dy + xs_m)) + 16;
  char* mem = static_cast<char*>(thread_scratch<1>(shared_floats * sizeof(T) + size_t(3 * chunk) * sizeof(int64_t)));
  if (!mem) return false;
  T* X = reinterpret_cast<T*>(mem);
  T* DY = X + kXi * xs_x;
  T* M = DY + kXi * xs_dy;
  int64_t* tn = reinterpret_cast<int64_t*>(mem + shared_floats * sizeof(T));
  int64_t* toh = tn + chunk;
  int64_t* tow = toh + chunk;
  // Per worker: the input transform's patch slots and transpose, the grad_output slots and
  // transpose (see input_group, dy_group); fused: the 36 register tiles of one GEMM item.
  const size_t g_floats = size_t(6 * N * 8 + N), d_floats = size_t(6 * N * N), s_floats = size_t(32 * N);
  const size_t f_floats = fused ? size_t(kXi * MR * NR) : 0;
  const size_t worker_bytes = (g_floats + d_floats + std::max(s_floats, f_floats) + 16) * sizeof(T);
  std::atomic<bool> ok{true};
  const int64_t HW = g.H * g.W;
  const int64_t ncb = ceil_div(C, kWgradCBlock);

  if (gb) convgemm::bias_grad<V>(gy, g.N, K, g.OH * g.OW, gb);  // grad_bias (conv2d_ukernel.h)
  for (int64_t ch = 0; ch < nchunks; ++ch) {
    const int64_t t0 = ch * chunk, nvalid = std::min(chunk, T_ - t0);
    tile_coords(g, t0, nvalid, tn, toh, tow);
    // 1. Input transform, per input channel, V::N tiles at a time (tiles from nvalid on are zero:
    //    the GEMMs read only nvalid, but the last group's vectors are written whole).
    parallel_for(C, nvalid * 36 * 8, [&](int64_t b, int64_t e) {
      T* gbuf = static_cast<T*>(thread_scratch(worker_bytes));
      if (!gbuf) {
        ok = false;
        return;
      }
      T* dbuf = gbuf + g_floats;
      for (int64_t c = b; c < e; ++c)
        for (int64_t j0 = 0; j0 < nvalid; j0 += N)
          input_group<V>(g, x + c * HW, tn, toh, tow, j0, nvalid, gbuf, dbuf, X + c * chunk + j0, xs_x);
    });
    // 2. grad_output transform, per tile, V::N output channels at a time (channels K..ldk zero).
    parallel_for(nvalid, ldk * 36, [&](int64_t b, int64_t e) {
      T* slot = static_cast<T*>(thread_scratch(worker_bytes));
      if (!slot) {
        ok = false;
        return;
      }
      T* tr = slot + 16 * N;
      for (int64_t j = b; j < e; ++j)
        for (int64_t k0 = 0; k0 < ldk; k0 += N) {
          T* dst = DY + ((k0 / NR) * chunk + j) * NR + k0 % NR;
          if constexpr (RR == 5)
            dy_group2<V>(g, gy, tn[j], toh[j], tow[j], k0, slot, dst, xs_dy);
          else
            dy_group<V>(g, gy, tn[j], toh[j], tow[j], k0, slot, tr, dst, xs_dy);
        }
    });
    if (!ok) return false;  // gw not written yet (gb may be: every fallback overwrites both)
    // 3. The 36 GEMMs, M[xi][c][k] (+)= sum_j X[xi][c][j] DY[xi][j][k], per (xi, block of input
    //    channels); MR input channels x NR output channels per register tile.
    const bool first = ch == 0;
    if (fused) {
      // 3'+4'. Per (block of input channels, panel of NR output channels): per MR input channels,
      //        the 36 register tiles to Mt[xi][i][k] (worker scratch), then their G^T . G into gw.
      //        The panel's 36 B slices (36 * nvalid * NR floats) stay in L2 across the block.
      parallel_for(ncb * npk, kWgradCBlock * NR * nvalid * kXi, [&](int64_t b, int64_t e) {
        T* ws = static_cast<T*>(thread_scratch(worker_bytes));
        if (!ws) {
          ok = false;
          return;
        }
        T* Mt = ws + g_floats + d_floats;
        for (int64_t it = b; it < e; ++it) {
          const int64_t kp = it % npk, c0 = (it / npk) * kWgradCBlock, c1 = std::min(C, c0 + kWgradCBlock);
          for (int64_t c = c0; c < c1; c += MR) {
            const int mr = int(std::min<int64_t>(MR, c1 - c));
            for (int xi = 0; xi < kXi; ++xi) {
              const T* a[MR];
#pragma GCC unroll 16
              for (int i = 0; i < MR; ++i) a[i] = X + xi * xs_x + (c + std::min(i, mr - 1)) * chunk;
              R acc[MR][2];
              convgemm::ukernel_rows<V, MR, 2>(nvalid, a, DY + xi * xs_dy + kp * chunk * NR, NR, acc);
              T* dst = Mt + xi * MR * NR;
#pragma GCC unroll 16
              for (int i = 0; i < MR; ++i) {
                V::store(dst + i * NR, acc[i][0]);
                V::store(dst + i * NR + N, acc[i][1]);
              }
            }
            for (int i = 0; i < mr; ++i)
              for (int v = 0; v < 2 && kp * NR + v * N < K; ++v)
                out_group<V, RR>(Mt + i * NR + v * N, MR * NR, K, C, kp * NR + v * N, c + i, gw);
          }
        }
      });
      return ok;  // gw written; grad_bias was computed first
    }
    parallel_for(kXi * ncb, kWgradCBlock * ldk * nvalid, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t xi = it / ncb, c0 = (it % ncb) * kWgradCBlock, c1 = std::min(C, c0 + kWgradCBlock);
        const T* Xx = X + xi * xs_x;
        const T* Dx = DY + xi * xs_dy;
        T* Mx = M + xi * xs_m;
        for (int64_t c = c0; c < c1; c += MR) {
          const int mr = int(std::min<int64_t>(MR, c1 - c));
          const T* a[MR];  // rows past the edge repeat the last one (computed, not stored)
#pragma GCC unroll 16
          for (int i = 0; i < MR; ++i) a[i] = Xx + (c + std::min(i, mr - 1)) * chunk;
          for (int64_t kp = 0; kp < npk; ++kp) {
            R acc[MR][2];
            convgemm::ukernel_rows<V, MR, 2>(nvalid, a, Dx + kp * chunk * NR, NR, acc);
            T* dst = Mx + c * ldk + kp * NR;
#pragma GCC unroll 16
            for (int i = 0; i < MR; ++i) {
              if (i >= mr) break;
              T* d = dst + i * ldk;
              if (first) {
                V::store(d, acc[i][0]);
                V::store(d + N, acc[i][1]);
              } else {
                V::store(d, V::add(V::load(d), acc[i][0]));
                V::store(d + N, V::add(V::load(d + N), acc[i][1]));
              }
            }
          }
        }
      }
    });
  }

  // 4. gw[k][c] = G^T M[.][c][k] G, V::N output channels at a time, per input channel.
  parallel_for(C, ldk * 36 * 2, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      for (int64_t k0 = 0; k0 < K; k0 += N) out_group<V, RR>(M + c * ldk + k0, xs_m, K, C, k0, c, gw);
  });

  return true;
}

// Where the Winograd weight gradient beats the next kernel (GEMM, or the direct _dense kernel for
// small images), measured with bench/winograd_wgrad_choice.py --relaxed (2 threads, Sapphire
// Rapids, AVX-512 and CNNFAST_ISA=avx2; speedup = time without / time with Winograd):
// * C >= 16 and K >= 16: with 8 the transforms are not amortised (C = 8, K = 64, 28 x 28, N=16:
//   0.91x on both ISAs; C = 64, K = 8: 0.61x AVX-512, 0.89x AVX2).
// * C * K >= NR * NR (one register panel of output channels squared: 256 on AVX2, 1024 on
//   AVX-512): K below the panel width NR computes padding. At C = K = 16 AVX-512 lost to the
//   direct kernel on 14..112-pixel planes (0.55-0.85x), AVX2 won (1.0-1.5x); C = 16, K = 64 won
//   (1.27x / 1.37x) as did C = 64, K = 16 (1.19x / 1.62x). The AVX-512 build runs layers with
//   K < 32 on 256-bit vectors (conv2d_winograd_avx512.cpp), so this rule with NR = 16 applies there.
// Everything else measured won: C = K in 32..512, planes 7..112, batch 1..64 (1.1-2.6x; the few-tile
// layers through the fused mode, e.g. 512 x 512 on 7 x 7 planes: 2.0x at N=4, and 1.8x at N=1,
// which declines for accuracy, below).
// * N * OH * OW >= kWgradMinOutputs, for accuracy rather than speed (honoured when autotuning):
//   the transformed tiles have values up to ~100x the inputs' (B^T) and ~200x grad_output's (A),
//   so one tile's rounding error is far above a direct sum's, and only the sum over many tiles
//   brings it under the tests' float32 tolerance (c * eps * sqrt(L) * sum|terms|, L = N*OH*OW;
//   tests/reference.py). Worst element over 256 x 256 channels, standard-normal data, in units of
//   eps * sqrt(L) * sum|terms|: L = 16 (one tile): 50; 25: 18; 49: 4.1; 98: 2.0; 196: 1.1.
//   The test suite's Winograd c is 8; below 128 outputs declines.
constexpr int64_t kWgradMinC = 16;
constexpr int64_t kWgradMinK = 16;
constexpr int64_t kWgradMinOutputs = 128;

// F(2x2, 5x5) (r = 5): at least kWgradMinOutputs tiles (4x the outputs: the same accuracy argument
// per tile), and at most half the direct multiplies (36 per tile against 25 per output, as the
// forward's pays_off).
template <class V>
bool wgrad_pays_off(const Geometry& g) {
  if (g.N * g.OH * g.OW < kWgradMinOutputs || (g.r == 5 && g.T < kWgradMinOutputs)) return false;
  if (relax_heuristics()) return true;
  constexpr int64_t NR = 2 * V::N;
  if (g.r == 5 && 2 * 36 * g.T > 25 * g.N * g.OH * g.OW) return false;
  return g.Cin >= kWgradMinC && g.Cout >= kWgradMinK && g.Cin * g.Cout >= NR * NR;
}

template <class V, int MR>
bool bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                typename V::T* gb) {
  if (!shape_ok_fwd(p) || p.groups != 1) return false;  // 3x3 or 5x5, groups 1
  const Geometry g = geometry(p.N, p.C, p.H, p.W, p.K, p.OH, p.OW, p.ph, p.pw, p.R);
  if (!wgrad_pays_off<V>(g)) return false;
  return g.r == 5 ? wgrad<V, MR, 5>(g, x, gy, gw, gb) : wgrad<V, MR, 3>(g, x, gy, gw, gb);
}

}  // namespace wino
}  // namespace
}  // namespace cnnfast
