// conv2d as register-blocked GEMM with implicit (tiled) im2col, written once for any vector type
// V from common/simd.h and instantiated per ISA in conv2d_avx2.cpp / conv2d_avx512.cpp.
//
// Per group g, with CRS = Cg*R*S, P = OH*OW and "columns" q = n*P + p running over the batch:
//   forward     Y[Kg x N*P]   = W[Kg x CRS] * col[CRS x N*P]           (+ bias, ReLU at the store)
//   bwd_weight  gW^T[CRS x Kg] = col[CRS x N*P] * gY^T[N*P x Kg]       (reduction over batch+space)
//   bwd_input   col[CRS x P]  = W^T[CRS x Kg] * gY[Kg x P], then col2im scatter-add, per image;
//               for stride 1 with enough channels and columns, a forward conv of gY with the
//               rotated, channel-swapped weights instead (bwd_input_as_fwd); 1x1 layers with
//               stride > 1 solve the compact stride-1 problem and scatter it (is_strided_1x1)
// col is never materialised whole: each thread builds the tile it needs (a few hundred KB, sized
// for L2) in its own scratch buffer (common/scratch.h). Stride-2 layers build it from the input
// split into its four phases (PhaseTile), and bwd_input scatters into the phases of gx
// (PhasePlane): contiguous runs instead of every-other-value gathers and scatters (is_phase_s2).
// Stride-1 layers build it from a zero-padded copy of the tile's input rows (PadTile; the forward
// writes the runs straight into its packed panels) and bwd_input's col2im adds into zero-padded
// gx planes (PadPlane): runs with no edge clamps (is_pad_s1).
// Grouped stride-1 layers with at most kGroupedDirectMaxKg output channels per group (ResNeXt)
// skip im2col: a direct kernel per (image, group) for the forward (and bwd_input as a forward
// conv) and the weight gradient (is_grouped_direct).
//
// The microkernel (conv2d_ukernel.h) computes an MR x (NV*V::N) block of C in registers: per reduction step it loads
// NV vectors of a packed B panel and broadcasts MR values of A (BLIS-style; AVX2 f32 MR=6, NV=2
// is 12 ymm accumulators). A is read in place (weights row-major for forward, column-major for
// bwd_input, a generated im2col block for bwd_weight), so no per-call weight packing is needed.
//
// Determinism: every output element is reduced in an order that depends on the shape only (the
// reduction blocking never depends on the thread count), so results are bitwise identical for
// any number of threads.
//
// Internal linkage (anonymous namespace): see common/simd.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "common/parallel.h"
#include "common/portable.h"
#include "common/scratch.h"
#include "common/simd.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/conv2d_ukernel.h"

namespace cnnfast {
namespace {
namespace convgemm {

// Reduction block: the packed B block (KC x NR) stays in L1 across one microkernel call and the
// A micro-panel (MR x KC) too; 256 is the usual BLIS choice for Zen's 32 KB L1d.
constexpr int64_t kKc = 256;
// Forward reduces over up to 640 (C*R*S) in one block: every extra block costs a read-modify-write
// of the output tile, which measured ~5% on 3x3x64 layers; the weight rows (6 x 640 floats) still
// fit L1 and the im2col block streams from L2.
constexpr int64_t kKcFwd = 640;
// Bytes of one packed B tile (KC x NC): about a quarter of Zen 4's 1 MB L2, leaving room for the
// weights streamed next to it.
constexpr int64_t kTileBytes = 256 * 1024;
// bwd_weight's reduction parts (see bwd_weight): one per kBwdWeightBlocksPerPart reduction blocks,
// at most kBwdWeightMaxParts, and kparts x K x C*R*S partial sums of at most 4M values.
constexpr int64_t kBwdWeightBlocksPerPart = 8;
constexpr int64_t kBwdWeightMaxParts = 4;
constexpr int64_t kBwdWeightPartValues = int64_t(1) << 22;

// Per-ISA blocking: each ISA file (conv2d_avx2.cpp, conv2d_avx512.cpp) passes a struct B with
//   MR             rows of the register tile where A is read in place (row pointers / columns)
//   MRP            forward: at most this many rows when the weights are packed (0: never packed)
//   pack_min_cols  forward: pack the weights when N*OH*OW >= this (the packing pass is ~1 cycle
//                  per weight, the GEMM N*OH*OW / (2 * vector width) cycles per weight)
//   kc_fwd         forward reduction block
//   tile_bytes     bytes of one packed B block (kc x nc) of the forward GEMM (bwd_input's col2im
//                  path uses kTileBytes)
//   bwd_input_fwd_min_cg  bwd_input runs as a forward conv from this many input channels per
//                  group (bwd_input_as_fwd)
// The AVX2 values are the ones above (kKcFwd, kTileBytes, MR = 6, no packing).

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Splits `total` into ceil(total / max) nearly equal blocks; returns the block size.
inline int64_t even_block(int64_t total, int64_t max) {
  if (total <= 0) return max;
  return ceil_div(total, ceil_div(total, max));
}

// ---------------------------------------------------------------------------------------------
// im2col / col2im rows. Row (c, r, s) of group g, columns q = n*P + oh*OW + ow (may cross images).
// ---------------------------------------------------------------------------------------------

struct ColCursor {  // position of column q
  int64_t n, oh, ow;
  ColCursor(const Conv2dShape& p, int64_t q) {
    const int64_t P = p.OH * p.OW;
    n = q / P;
    const int64_t rem = q % P;
    oh = rem / p.OW;
    ow = rem % p.OW;
  }
  void advance(const Conv2dShape& p, int64_t len) {  // len never crosses an output row
    ow += len;
    if (ow == p.OW) {
      ow = 0;
      if (++oh == p.OH) {
        oh = 0;
        ++n;
      }
    }
  }
};

// Pointwise stride-1 unpadded conv: the im2col row is the input plane itself.
inline bool is_plain_1x1(const Conv2dShape& p) {
  return p.R == 1 && p.S == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0;
}

// dst[0..n) = src[0..n), or zeros if src is null. Inline vector copies: im2col segments are one
// output row long (8 floats for LeNet's 5x5 layer), where a memcpy call costs more than the copy.
template <class V>
CNNFAST_FORCE_INLINE void copy_run(typename V::T* dst, const typename V::T* src, int64_t n) {
  using T = typename V::T;
  if (n >= V::N) {  // whole vectors; a ragged end is one more vector overlapping the previous one
    const int64_t last = n - V::N;
    if (src) {
      for (int64_t t = 0; t < last; t += V::N) V::store(dst + t, V::load(src + t));
      V::store(dst + last, V::load(src + last));
    } else {
      for (int64_t t = 0; t < last; t += V::N) V::store(dst + t, V::zero());
      V::store(dst + last, V::zero());
    }
  } else if (src) {
    for (int64_t t = 0; t < n; ++t) dst[t] = src[t];
  } else {
    for (int64_t t = 0; t < n; ++t) dst[t] = T(0);
  }
}

// dst[0..n) = src[0..n) for an im2col segment: copy_run's overlapping whole vectors from one vector
// up (AVX2's masked store costs ~14 cycles on AMD Zen 3, see run_positions), else one masked copy.
template <class V>
CNNFAST_FORCE_INLINE void copy_segment(typename V::T* dst, const typename V::T* src, int64_t n) {
  if (n >= V::N)
    copy_run<V>(dst, src, n);
  else
    V::store_n(dst, V::load_part(src, 0, int(n), typename V::T(0)), int(n));
}

// line[0..len) = im2col row (c, r, s) of group g (c within the group) for columns q0..q0+len.
template <class V, typename T = typename V::T>
void im2col_row(const Conv2dShape& p, const T* x, int64_t g, int64_t c, int64_t r, int64_t s, int64_t q0, int64_t len,
                T* line) {
  const int64_t HW = p.H * p.W, P = p.OH * p.OW;
  const int64_t plane_off = g * p.Cg() + c;
  if (is_plain_1x1(p)) {  // contiguous runs of whole planes
    int64_t n = q0 / P, pp = q0 % P, done = 0;
    while (done < len) {
      const int64_t seg = std::min(P - pp, len - done);
      std::memcpy(line + done, x + (n * p.C + plane_off) * HW + pp, seg * sizeof(T));
      done += seg;
      pp = 0;
      ++n;
    }
    return;
  }
  const int64_t roff = r * p.dh - p.ph, soff = s * p.dw - p.pw;
  ColCursor cur(p, q0);
  int64_t done = 0;
  while (done < len) {
    const int64_t seg = std::min(p.OW - cur.ow, len - done);
    T* dst = line + done;
    const int64_t ih = cur.oh * p.sh + roff;
    if (ih < 0 || ih >= p.H) {
      copy_run<V>(dst, nullptr, seg);
    } else {
      const T* src = x + (cur.n * p.C + plane_off) * HW + ih * p.W;
      if (p.sw == 1) {
        const int64_t iw0 = cur.ow + soff;  // dst[t] = src[iw0 + t] where 0 <= iw0 + t < W
        const int64_t lo = std::clamp<int64_t>(-iw0, 0, seg), hi = std::clamp<int64_t>(p.W - iw0, lo, seg);
        copy_run<V>(dst, nullptr, lo);
        copy_run<V>(dst + lo, src + iw0 + lo, hi - lo);
        copy_run<V>(dst + hi, nullptr, seg - hi);
      } else {
        // dst[t] = src[iw0 + t * sw] where 0 <= iw0 + t * sw < W: zero-fill both ends and keep the
        // strided copy branch-free so the compiler vectorises it (loads + de-interleave).
        const int64_t iw0 = cur.ow * p.sw + soff, sw = p.sw;
        const int64_t lo = std::clamp<int64_t>(iw0 >= 0 ? 0 : ceil_div(-iw0, sw), 0, seg);
        const int64_t hi = std::clamp<int64_t>(p.W > iw0 ? ceil_div(p.W - iw0, sw) : 0, lo, seg);
        std::fill(dst, dst + lo, T(0));
        if (sw == 2) {
          for (int64_t t = lo; t < hi; ++t) dst[t] = src[iw0 + 2 * t];
        } else {
          for (int64_t t = lo; t < hi; ++t) dst[t] = src[iw0 + t * sw];
        }
        std::fill(dst + hi, dst + seg, T(0));
      }
    }
    done += seg;
    cur.advance(p, seg);
  }
}

// The columns q0..q0+len of a tile cut into output-row segments, computed once per tile and
// shared by all its im2col rows: for short output rows (LeNet: 8 wide) the per-segment cursor
// arithmetic of im2col_row otherwise costs more than the copies.
struct ColSegments {
  int64_t count = 0;
  int64_t* img;  // image offset n * C * H * W
  int64_t* oh;
  int64_t* ow;
  int64_t* len;
  // Carve the four tables out of `mem`, which holds 4 * (cap + 1) int64 (cap = columns per tile).
  static ColSegments in(int64_t* mem, int64_t cap) {
    ColSegments s;
    s.img = mem;
    s.oh = mem + (cap + 1);
    s.ow = mem + 2 * (cap + 1);
    s.len = mem + 3 * (cap + 1);
    return s;
  }
  void build(const Conv2dShape& p, int64_t q0, int64_t total) {
    ColCursor cur(p, q0);
    count = 0;
    for (int64_t done = 0; done < total; ++count) {
      const int64_t seg = std::min(p.OW - cur.ow, total - done);
      img[count] = cur.n * p.C * p.H * p.W;
      oh[count] = cur.oh;
      ow[count] = cur.ow;
      len[count] = seg;
      done += seg;
      cur.advance(p, seg);
    }
  }
};

// line = im2col row (c, r, s) of group g over the columns described by `segs` (not plain 1x1).
template <class V, typename T = typename V::T>
void im2col_row_segs(const Conv2dShape& p, const T* x, int64_t g, int64_t c, int64_t r, int64_t s,
                     const ColSegments& segs, T* line) {
  const int64_t H = p.H, W = p.W, sh = p.sh, sw = p.sw;
  const int64_t roff = r * p.dh - p.ph, soff = s * p.dw - p.pw;
  const T* xc = x + (g * p.Cg() + c) * H * W;
  T* dst = line;
  for (int64_t i = 0; i < segs.count; ++i) {
    const int64_t seg = segs.len[i], ih = segs.oh[i] * sh + roff, iw0 = segs.ow[i] * sw + soff;
    if (ih < 0 || ih >= H) {
      copy_run<V>(dst, nullptr, seg);
    } else {
      const T* src = xc + segs.img[i] + ih * W;
      if (sw == 1 && iw0 >= 0 && iw0 + seg <= W) {  // interior: one contiguous run
        copy_run<V>(dst, src + iw0, seg);
      } else {
        const int64_t lo = std::clamp<int64_t>(iw0 >= 0 ? 0 : ceil_div(-iw0, sw), 0, seg);
        const int64_t hi = std::clamp<int64_t>(W > iw0 ? ceil_div(W - iw0, sw) : 0, lo, seg);
        copy_run<V>(dst, nullptr, lo);
        if (sw == 1) {
          copy_run<V>(dst + lo, src + iw0 + lo, hi - lo);
        } else if (sw == 2) {
          for (int64_t t = lo; t < hi; ++t) dst[t] = src[iw0 + 2 * t];
        } else {
          for (int64_t t = lo; t < hi; ++t) dst[t] = src[iw0 + t * sw];
        }
        copy_run<V>(dst + hi, nullptr, seg - hi);
      }
    }
    dst += seg;
  }
}

// ---------------------------------------------------------------------------------------------
// Stride-2 layers: polyphase im2col (is_phase_s2). Row (c, r, s) of im2col reads the padded input
// at (2*oh + r, 2*ow + s): every other value, which the strided gather above copies one by one
// (on ResNet-18's 3x3/s2 128x28 -> 256 layer it was ~18% of the forward pass). Split the input
// rows a tile needs once per channel into their four phases, ph[a][b][i][j] = xpad[2i + a][2j + b]
// (vector de-interleaves), and the row becomes one contiguous run per output row:
// ph[r % 2][s % 2][oh + r/2][ow + s/2 ..], the same run for the taps (r, s) and (r + 2, s) one
// phase row apart. The columns, the GEMM and its output are unchanged (no wasted columns).
// ---------------------------------------------------------------------------------------------
inline bool is_phase_s2(const Conv2dShape& p) {
  return p.sh == 2 && p.sw == 2 && p.dh == 1 && p.dw == 1 && p.R * p.S > 1 && p.OH > 0 && p.OW > 0;
}

// The images and rows of a column tile (its ColSegments), shared by PhaseTile and PadTile: image k
// of the tile has nrows[k] rows from its first output row oh0[k] (plus `halo` rows below), stored
// from row rowoff[k] at pitch `pitch`; poff[i] is segment i's first value.
template <class V>
struct TileRows {
  using T = typename V::T;
  int64_t pitch = 0, nimg = 0, halo = 0;
  int64_t* img;     // per image of the tile: image offset n*C*H*W
  int64_t* oh0;     //   first output row
  int64_t* nrows;   //   rows
  int64_t* rowoff;  //   first row
  int64_t* poff;    // per segment: offset of its first column
  T* buf;

  // int64s of scratch for tiles of at most `cap` columns.
  static int64_t ints(int64_t cap) { return 5 * (cap + 2); }
  void bind(int64_t pitch_, int64_t halo_, int64_t cap, T* vals, int64_t* mem) {
    pitch = pitch_, halo = halo_;
    const int64_t n = cap + 2;
    img = mem, oh0 = mem + n, nrows = mem + 2 * n, rowoff = mem + 3 * n, poff = mem + 4 * n;
    buf = vals;
  }
  // The images and rows of the tile whose columns `segs` describes; returns the rows in all.
  int64_t lay_out(const ColSegments& segs) {
    nimg = 0;
    int64_t rows = 0;
    for (int64_t i = 0; i < segs.count; ++i) {
      if (nimg == 0 || segs.img[i] != img[nimg - 1]) {
        if (nimg > 0) rows += nrows[nimg - 1];
        img[nimg] = segs.img[i];
        oh0[nimg] = segs.oh[i];
        rowoff[nimg] = rows;
        ++nimg;
      }
      nrows[nimg - 1] = segs.oh[i] - oh0[nimg - 1] + 1 + halo;
      poff[i] = (rowoff[nimg - 1] + segs.oh[i] - oh0[nimg - 1]) * pitch + segs.ow[i];
    }
    if (nimg > 0) rows += nrows[nimg - 1];
    return rows;
  }
};

// The phases of one input channel over the output rows of a tile (its ColSegments), at most
// `cap` columns. Layout: phase (a, b) at buf + (2a + b) * ps; in it, image k of the tile has
// rows (its first output row + i, i < nrows[k]) at pitch `pitch`, from row offset rowoff[k].
template <class V>
struct PhaseTile : TileRows<V> {
  using T = typename V::T;
  using B = TileRows<V>;
  using B::buf, B::halo, B::img, B::nimg, B::nrows, B::oh0, B::pitch, B::poff, B::rowoff;
  int64_t ps = 0;  // values per phase

  // Values (T) and int64s of scratch for tiles of at most `cap` columns.
  static int64_t values(const Conv2dShape& p, int64_t cap) {
    const int64_t pit = round_up(p.OW + (p.S - 1) / 2, V::N);
    return 4 * max_rows(p, cap) * pit;
  }
  static int64_t max_rows(const Conv2dShape& p, int64_t cap) {
    return (ceil_div(cap, p.OW) + 1) * (1 + (p.R - 1) / 2);  // segments x rows per segment
  }
  static PhaseTile in(const Conv2dShape& p, int64_t cap, T* vals, int64_t* mem) {
    PhaseTile t;
    t.bind(round_up(p.OW + (p.S - 1) / 2, V::N), (p.R - 1) / 2, cap, vals, mem);
    return t;
  }
  // The images and rows of the tile whose columns `segs` describes (rows and offsets within a phase).
  void setup(const ColSegments& segs) { ps = B::lay_out(segs) * pitch; }
  // Phases of input channel ci (absolute channel index). Each input row is read with (masked)
  // vector loads and split in registers: building it in memory first and reloading it stalled on
  // store forwarding (the short zero-fill stores under each whole-vector load). The load masks
  // depend on the column only: computed once per vector column, then every row of it.
  void build(const Conv2dShape& p, const T* x, int64_t ci) const {
    using R = typename V::R;
    constexpr int N = V::N;
    const int64_t H = p.H, W = p.W;
    for (int64_t k = 0; k < nimg; ++k) {
      const T* xc = x + img[k] + ci * H * W;
      for (int64_t j = 0; j < pitch; j += N) {
        // Phase column j .. j + N: padded input columns t = 2j .. 2j + 2N, x columns t - pw; the
        // lanes [lo, hi) of each half inside the row (a whole vector when lo = 0, hi = N).
        const int64_t o0 = 2 * j - p.pw, o1 = o0 + N;
        const int64_t lo0 = std::clamp<int64_t>(-o0, 0, N), hi0 = std::clamp<int64_t>(W - o0, lo0, N);
        const int64_t lo1 = std::clamp<int64_t>(-o1, 0, N), hi1 = std::clamp<int64_t>(W - o1, lo1, N);
        const bool full = lo0 == 0 && hi0 == N && lo1 == 0 && hi1 == N;
        for (int64_t a = 0; a < 2; ++a) {
          T* d0 = buf + 2 * a * ps + rowoff[k] * pitch + j;  // phase (a, 0); (a, 1) is ps further
          for (int64_t i = 0; i < nrows[k]; ++i, d0 += pitch) {
            const int64_t ih = 2 * (oh0[k] + i) + a - p.ph;
            R ev = V::zero(), od = V::zero();
            if (ih >= 0 && ih < H) {
              const T* xr = xc + ih * W;
              R v0, v1;
              if (full) {
                v0 = V::load(xr + o0);
                v1 = V::load(xr + o1);
              } else {
                v0 = lo0 < hi0 ? V::load_part(xr + o0, int(lo0), int(hi0), T(0)) : V::zero();
                v1 = lo1 < hi1 ? V::load_part(xr + o1, int(lo1), int(hi1), T(0)) : V::zero();
              }
              ev = V::unzip_fix(V::even(v0, v1));
              od = V::unzip_fix(V::odd(v0, v1));
            }
            V::store(d0, ev);
            V::store(d0 + ps, od);
          }
        }
      }
    }
  }
  // line = im2col row (c, r, s) of the built channel over the tile's columns.
  void emit(const ColSegments& segs, int64_t r, int64_t s, T* line) const {
    const T* base = buf + (2 * (r & 1) + (s & 1)) * ps + (r >> 1) * pitch + (s >> 1);
    T* dst = line;
    for (int64_t i = 0; i < segs.count; ++i) {
      const int64_t n = segs.len[i];
      const T* src = base + poff[i];
      copy_segment<V>(dst, src, n);
      dst += n;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Stride-1 layers (is_pad_s1): the input rows a tile needs, copied once per channel into a
// zero-padded block (pitch >= OW + dw*(S-1)), so every im2col row (c, r, s) is one contiguous run
// per output row with no edge cases: pad[row of oh + r*dh][ow + s*dw ..]. The forward writes
// these runs straight into the packed B panels (emit_panels; the line buffer and its second pass,
// scatter_row_to_panels, go away), the weight gradient into its im2col rows (emit).
// ---------------------------------------------------------------------------------------------
inline bool is_pad_s1(const Conv2dShape& p) {
  return p.sh == 1 && p.sw == 1 && !is_plain_1x1(p) && p.OH > 0 && p.OW > 0;
}

// Layout: image k of the tile has rows (its first output row + i - ph, i < nrows[k]) of the padded
// input at pitch `pitch` from row rowoff[k]; poff[i] is segment i's first value for (r, s) = 0.
template <class V>
struct PadTile : TileRows<V> {
  using T = typename V::T;
  using B = TileRows<V>;
  using B::buf, B::halo, B::img, B::nimg, B::nrows, B::oh0, B::pitch, B::poff, B::rowoff;

  static int64_t pitch_of(const Conv2dShape& p) { return round_up(p.OW + p.dw * (p.S - 1), V::N); }
  // Values (T; + V::N: whole-vector loads at the end of a run) of scratch for tiles of at most
  // `cap` columns.
  static int64_t values(const Conv2dShape& p, int64_t cap) {
    return (ceil_div(cap, p.OW) + 1) * (1 + p.dh * (p.R - 1)) * pitch_of(p) + V::N;
  }
  static PadTile in(const Conv2dShape& p, int64_t cap, T* vals, int64_t* mem) {
    PadTile t;
    t.bind(pitch_of(p), p.dh * (p.R - 1), cap, vals, mem);
    return t;
  }
  void setup(const ColSegments& segs) { B::lay_out(segs); }
  // The padded rows of input channel ci (absolute channel index).
  void build(const Conv2dShape& p, const T* x, int64_t ci) const {
    const int64_t H = p.H, W = p.W;
    const int64_t lo = std::min(p.pw, pitch), hi = std::clamp<int64_t>(p.pw + W, lo, pitch);
    for (int64_t k = 0; k < nimg; ++k) {
      const T* xc = x + img[k] + ci * H * W;
      T* dst = buf + rowoff[k] * pitch;
      for (int64_t i = 0; i < nrows[k]; ++i, dst += pitch) {
        const int64_t ih = oh0[k] + i - p.ph;
        if (ih < 0 || ih >= H) {
          copy_run<V>(dst, nullptr, pitch);
          continue;
        }
        copy_run<V>(dst, nullptr, lo);
        copy_run<V>(dst + lo, xc + ih * W + (lo - p.pw), hi - lo);
        copy_run<V>(dst + hi, nullptr, pitch - hi);
      }
    }
  }
  // line = im2col row (c, r, s) of the built channel over the tile's columns.
  void emit(const ColSegments& segs, int64_t dh, int64_t dw, int64_t r, int64_t s, T* line) const {
    const T* base = buf + r * dh * pitch + s * dw;
    T* dst = line;
    for (int64_t i = 0; i < segs.count; ++i) {
      const int64_t n = segs.len[i];
      const T* src = base + poff[i];
      copy_segment<V>(dst, src, n);
      dst += n;
    }
  }
  // The same row written into NR-wide panels `panel_stride` apart (the row of each panel at
  // dst + j * panel_stride), columns ncur..round_up(ncur, NR) zero.
  template <int NR>
  void emit_panels(const ColSegments& segs, int64_t dh, int64_t dw, int64_t r, int64_t s, T* dst,
                   int64_t panel_stride) const {
    const T* base = buf + r * dh * pitch + s * dw;
    int64_t j = 0, o = 0;  // panel and column in it
    for (int64_t i = 0; i < segs.count; ++i) {
      int64_t n = segs.len[i];
      const T* src = base + poff[i];
      while (n > 0) {
        const int64_t m = std::min<int64_t>(NR - o, n);
        T* d = dst + j * panel_stride + o;
        copy_segment<V>(d, src, m);
        src += m;
        n -= m;
        if ((o += m) == NR) {
          o = 0;
          ++j;
        }
      }
    }
    if (o > 0) std::fill(dst + j * panel_stride + o, dst + j * panel_stride + NR, T(0));
  }
};

// gx[n, ci] += col2im of row (c, r, s) over the columns described by `segs` (not plain 1x1).
template <class V, typename T = typename V::T>
void col2im_row_add_segs(const Conv2dShape& p, T* gx, int64_t ci, int64_t r, int64_t s, const ColSegments& segs,
                         const T* line) {
  const int64_t H = p.H, W = p.W, sh = p.sh, sw = p.sw;
  const int64_t roff = r * p.dh - p.ph, soff = s * p.dw - p.pw;
  T* gc = gx + ci * H * W;
  const T* src = line;
  for (int64_t i = 0; i < segs.count; ++i) {
    const int64_t seg = segs.len[i], ih = segs.oh[i] * sh + roff, iw0 = segs.ow[i] * sw + soff;
    if (ih >= 0 && ih < H) {
      T* d = gc + segs.img[i] + ih * W + iw0;  // column t adds into d[t * sw] where in range
      const int64_t lo = std::clamp<int64_t>(iw0 >= 0 ? 0 : ceil_div(-iw0, sw), 0, seg);
      const int64_t hi = std::clamp<int64_t>(W > iw0 ? ceil_div(W - iw0, sw) : 0, lo, seg);
      if (sw == 1) {
        int64_t t = lo;
        for (; t + V::N <= hi; t += V::N) V::store(d + t, V::add(V::load(d + t), V::load(src + t)));
        for (; t < hi; ++t) d[t] += src[t];
      } else {
        for (int64_t t = lo; t < hi; ++t) d[t * sw] += src[t];
      }
    }
    src += seg;
  }
}

// gx[n, ci] += col2im of row (c, r, s) for columns p0..p0+len of image n (ci = g*Cg + c).
template <typename T>
void col2im_row_add(const Conv2dShape& p, T* gx, int64_t n, int64_t ci, int64_t r, int64_t s, int64_t p0, int64_t len,
                    const T* line) {
  T* plane = gx + (n * p.C + ci) * p.H * p.W;
  if (is_plain_1x1(p)) {
    for (int64_t t = 0; t < len; ++t) plane[p0 + t] += line[t];
    return;
  }
  const int64_t roff = r * p.dh - p.ph, soff = s * p.dw - p.pw;
  int64_t oh = p0 / p.OW, ow = p0 % p.OW, done = 0;
  while (done < len) {
    const int64_t seg = std::min(p.OW - ow, len - done);
    const T* src = line + done;
    const int64_t ih = oh * p.sh + roff;
    if (ih >= 0 && ih < p.H) {
      T* dst = plane + ih * p.W;
      if (p.sw == 1) {
        const int64_t iw0 = ow + soff;
        const int64_t lo = std::clamp<int64_t>(-iw0, 0, seg), hi = std::clamp<int64_t>(p.W - iw0, lo, seg);
        T* d = dst + iw0;
        for (int64_t t = lo; t < hi; ++t) d[t] += src[t];
      } else {
        int64_t iw = ow * p.sw + soff;
        for (int64_t t = 0; t < seg; ++t, iw += p.sw)
          if (iw >= 0 && iw < p.W) dst[iw] += src[t];
      }
    }
    done += seg;
    ow += seg;
    if (ow == p.OW) {
      ow = 0;
      ++oh;
    }
  }
}

// Copies a contiguous row of `len` values into NR-wide panels: panel j, row kk of a packed block
// whose panels are `panel_stride` elements apart. Columns len..round_up(len, NR) become zero.
template <class V, int NR>
CNNFAST_FORCE_INLINE void scatter_row_to_panels(const typename V::T* line, int64_t len, typename V::T* dst,
                                                int64_t panel_stride) {
  using T = typename V::T;
  const int64_t full = len / NR;
  for (int64_t j = 0; j < full; ++j) {
#pragma GCC unroll 4
    for (int v = 0; v < NR / V::N; ++v) V::store(dst + j * panel_stride + v * V::N, V::load(line + j * NR + v * V::N));
  }
  if (full * NR < len) {
    T* d = dst + full * panel_stride;
    const int64_t rem = len - full * NR;
    for (int64_t t = 0; t < NR; ++t) d[t] = t < rem ? line[full * NR + t] : T(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

// w'[g*Cg + c, k, r, s] = w[g*Kg + k, c, R-1-r, S-1-s]. Blocks of kRotCBlock output rows (g, c):
// for each k the block reads one contiguous run of w and appends to kRotCBlock sequential write
// streams. (Row by row, the reads stride by Cg*R*S values, e.g. 9 KB at C = 256, which maps the
// Kg rows onto a few L1 sets and thrashes it: ~5 cycles per value instead of ~1.)
constexpr int64_t kRotCBlock = 16;
template <typename T>
void rotate_transpose_weights(const Conv2dShape& p, const T* w, T* wt) {
  const int64_t G = p.groups, Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S;
  const int64_t cblocks = ceil_div(Cg, kRotCBlock);
  parallel_for(G * cblocks, kRotCBlock * Kg * RS, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t g = it / cblocks, c0 = (it % cblocks) * kRotCBlock, c1 = std::min(Cg, c0 + kRotCBlock);
      for (int64_t k = 0; k < Kg; ++k) {
        const T* src = w + ((g * Kg + k) * Cg + c0) * RS;
        T* dst = wt + ((g * Cg + c0) * Kg + k) * RS;
        for (int64_t c = c0; c < c1; ++c, src += RS, dst += Kg * RS)
          for (int64_t i = 0; i < RS; ++i) dst[i] = src[RS - 1 - i];
      }
    }
  });
}

// Weights packed for the forward GEMM: per group, blocks of `mrb` output rows (the last one may be
// shorter), block b at ap + (g * nmb + b) * mrb * CRS holding the block's rows column by column:
// ap[k * rows + i] = A(b * mrb + i, k) with rows = the block's row count, so a register tile as
// tall as its block reads its A values at constant offsets (conv2d_ukernel.h, ukernel_cols).
// rotated: A is the forward matrix of bwd_input_as_fwd, read from the layer's weights (q is the
// rotated shape, w the layer's K x C/g x R x S weights), so the rotated copy is never written.
template <typename T>
void pack_weights(const Conv2dShape& q, const T* w, bool rotated, int64_t mrb, T* ap) {
  const int64_t G = q.groups, Cg = q.Cg(), Kg = q.Kg(), RS = q.R * q.S, CRS = Cg * RS;
  const int64_t nmb = ceil_div(Kg, mrb);
  parallel_for(G * nmb, mrb * CRS, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t g = it / nmb, m0 = (it % nmb) * mrb, rows = std::min(mrb, Kg - m0);
      T* dst = ap + it * mrb * CRS;
      if (!rotated) {
        // Column by column: `rows` sequential read streams (the block's weight rows, output rows
        // g*Kg + m0 + i of the forward GEMM) and one sequential write stream. (Row by row, the
        // writes `rows` values apart took 5% of a 3x3/s2 128 -> 256 forward pass.)
        const T* src = w + (g * Kg + m0) * CRS;
        for (int64_t k = 0; k < CRS; ++k, dst += rows)
          for (int64_t i = 0; i < rows; ++i) dst[i] = src[i * CRS + k];
        continue;
      }
      for (int64_t i = 0; i < rows; ++i) {
        // Row i is input channel c = m0 + i of the layer (group g); reduction index k = (k', r, s)
        // over the layer's output channels k' of group g: w[g*Cg + k', c, R-1-r, S-1-s].
        // (Here Cg, Kg are the rotated shape's: Cg = the layer's K/groups, Kg = its C/groups.)
        const int64_t c = m0 + i;
        for (int64_t kk = 0; kk < Cg; ++kk) {
          const T* src = w + ((g * Cg + kk) * Kg + c) * RS;
          T* d = dst + kk * RS * rows + i;
          for (int64_t t = 0; t < RS; ++t) d[t * rows] = src[RS - 1 - t];
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Grouped direct (stride 1, groups > 1, few output channels per group: ResNeXt's 3x3 g32 layers)
// ---------------------------------------------------------------------------------------------
// With Kg output rows per group the GEMM uses each packed im2col value for only Kg multiply-adds,
// so at Kg = 8 the im2col gather and packing cost as much as the multiply-adds. Here each work
// item (image, group, band of output rows) copies its zero-padded input band once (Cg x rows x
// Wp, a few tens of KB) and a register tile of MR output channels x NV vectors along an output
// row reduces over (c, r, s) straight from it: per step NV unaligned loads and MR broadcasts of
// the packed weights (the forward's pack_weights layout). Stride 1 only (the loads are
// contiguous); the rows of one output channel are vector-padded to Wp, so it needs OW to fill
// most of its vectors (is_grouped_direct). Each output is reduced by one item in (c, r, s) order:
// the result does not depend on the thread count.
constexpr int64_t kGroupedDirectMaxKg = 32;
constexpr int64_t kGroupedDirectBandBytes = 48 * 1024;  // padded input band per item (L1/L2)
// bwd_weight keeps Kg x Cg*R*S vectors of lane-wise sums per thread: at most this many bytes
// (a few input channels per group: 8 x 72 x 64 B = 36 KB), else the GEMM runs.
constexpr int64_t kGroupedDirectBwdWeightSumBytes = 1 << 20;

template <class V>
inline bool is_grouped_direct(const Conv2dShape& p) {
  if (p.groups < 2 || p.sh != 1 || p.sw != 1 || p.Kg() > kGroupedDirectMaxKg || p.OW <= 0) return false;
  // Lanes doing useful work: at least 3/4 (OW = 28 on 16 lanes: 28 of 32; OW = 7: 7 of 16, no).
  return 4 * p.OW >= 3 * round_up(p.OW, V::N);
}

template <class V, int M, int NV>
CNNFAST_FORCE_INLINE void grouped_direct_tile(const typename V::T* a, const typename V::T* xb, int64_t Cg, int64_t R,
                                              int64_t S, int64_t dh, int64_t dw, int64_t plane, int64_t Wp,
                                              typename V::R (&acc)[M][NV]) {
  using R_ = typename V::R;
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < R; ++r) {
      const typename V::T* xr = xb + c * plane + r * dh * Wp;
      for (int64_t s = 0; s < S; ++s, a += M) {
        R_ xv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) xv[v] = V::load(xr + s * dw + v * V::N);
#pragma GCC unroll 16
        for (int i = 0; i < M; ++i) {
          const R_ av = V::set1(a[i]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(av, xv[v], acc[i][v]);
        }
      }
    }
}

// y = conv(x, w) + bias, ReLU for is_grouped_direct shapes; `rotated` as in fwd_impl. Returns
// false (nothing written) if its scratch cannot be allocated.
template <class V, class B, int NV>
bool grouped_direct(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, bool rotated,
                    const typename V::T* bias, typename V::T* y, bool relu) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int MR = B::MR;
  constexpr int64_t CW = NV * V::N;  // output columns per register tile
  const int64_t G = p.groups, Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS;
  const int64_t OH = p.OH, OW = p.OW, P = OH * OW, H = p.H, W = p.W;
  const int64_t nch = ceil_div(OW, CW), Wp = nch * CW + p.dw * (p.S - 1);
  const int64_t mrb = even_block(Kg, MR), nmb = ceil_div(Kg, mrb);
  T* ap = thread_scratch_of<T, 2>(size_t(G * nmb * mrb * CRS));
  if (!ap) return false;
  pack_weights(p, w, rotated, mrb, ap);

  // Bands of output rows: the padded band within kGroupedDirectBandBytes, and enough items
  // (4 per thread) to balance when N * G is small.
  const int64_t halo = p.dh * (p.R - 1);
  const int64_t row_bytes = Cg * Wp * int64_t(sizeof(T));
  int64_t rows = std::clamp<int64_t>(kGroupedDirectBandBytes / std::max<int64_t>(row_bytes, 1) - halo, 1, OH);
  const int64_t want = 4 * int64_t(max_threads());
  if (p.N * G * ceil_div(OH, rows) < want) rows = std::max<int64_t>(1, OH / ceil_div(want, p.N * G));
  rows = even_block(OH, rows);
  const int64_t nbands = ceil_div(OH, rows);
  const int64_t HB = rows + halo, plane = HB * Wp;

  std::atomic<bool> ok{true};
  parallel_for(p.N * G * nbands, rows * OW * Kg * CRS, [&](int64_t b, int64_t e) {
    T* xb = thread_scratch_of<T>(size_t(Cg * plane + V::N));
    if (!xb) {
      ok = false;
      return;
    }
    for (int64_t it = b; it < e; ++it) {
      const int64_t band = it % nbands, g = (it / nbands) % G, n = it / (nbands * G);
      const int64_t oh0 = band * rows, oh1 = std::min(OH, oh0 + rows);
      // Padded band: xb[c, hb, j] = x[n, g*Cg + c, oh0 + hb - ph, j - pw] (zero outside).
      for (int64_t c = 0; c < Cg; ++c) {
        const T* xc = x + (n * p.C + g * Cg + c) * H * W;
        for (int64_t hb = 0; hb < oh1 - oh0 + halo; ++hb) {
          T* dst = xb + c * plane + hb * Wp;
          const int64_t ih = oh0 + hb - p.ph;
          if (ih < 0 || ih >= H) {
            copy_run<V>(dst, nullptr, Wp);
            continue;
          }
          const int64_t lo = std::min(p.pw, Wp), hi = std::clamp<int64_t>(p.pw + W, lo, Wp);
          copy_run<V>(dst, nullptr, lo);
          copy_run<V>(dst + lo, xc + ih * W + (lo - p.pw), hi - lo);
          copy_run<V>(dst + hi, nullptr, Wp - hi);
        }
      }
      for (int64_t mb = 0; mb < nmb; ++mb) {
        const int64_t m0 = mb * mrb;
        const int mrows = int(std::min(mrb, Kg - m0));
        const T* a = ap + (g * nmb + mb) * mrb * CRS;
        with_n<MR>(mrows, [&](auto mc) {
          constexpr int Mt = decltype(mc)::value;
          T bias_row[Mt];
          for (int i = 0; i < Mt; ++i) bias_row[i] = bias ? bias[g * Kg + m0 + i] : T(0);
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            T* yrow = y + (n * p.K + g * Kg + m0) * P + oh * OW;
            for (int64_t ow0 = 0; ow0 < OW; ow0 += CW) {
              R acc[Mt][NV];
              grouped_direct_tile<V, Mt, NV>(a, xb + (oh - oh0) * Wp + ow0, Cg, p.R, p.S, p.dh, p.dw, plane, Wp, acc);
              const int64_t ncols = std::min(CW, OW - ow0);
#pragma GCC unroll 16
              for (int i = 0; i < Mt; ++i) {
                const R bv = V::set1(bias_row[i]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) {
                  R c = V::add(acc[i][v], bv);
                  if (relu) c = V::max(V::zero(), c);  // max(0, NaN) = NaN, as in ref
                  const int64_t nv = ncols - v * V::N;
                  T* dst = yrow + i * P + ow0 + v * V::N;
                  if (nv >= V::N)
                    V::store(dst, c);
                  else if (nv > 0)
                    V::store_n(dst, c, int(nv));
                }
              }
            }
          }
        });
      }
    }
  });
  return ok;
}

// Weight gradient of the is_grouped_direct shapes: gw[g*Kg + k, c, r, s] = sum over (n, oh, ow) of
// gy[n, g*Kg + k, oh, ow] * xpad[n, g*Cg + c, oh + r*dh, ow + s*dw]. (The GEMM's panels are 2
// vectors of output channels wide, so Kg = 8 wasted 3/4 of its multiply-adds.) Vectorised along
// ow: a register tile of MK output channels x TT (c, r, s) taps keeps lane-wise partial sums, per
// step MK gy vectors and one input vector per tap; the lane sums of each weight are added up once
// at the end. Work items are (group, fixed part of the batch): the parts depend on the shape only
// and are summed in order, so the result does not depend on the thread count.
template <class V>
bool grouped_direct_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy,
                               typename V::T* gw) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int NL = V::N;
  constexpr int MK = sizeof(R) == 64 ? 4 : 2;  // 4 x 6 (AVX-512) / 2 x 6 (AVX2) accumulators
  constexpr int TT = 6;
  const int64_t G = p.groups, Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS;
  const int64_t OH = p.OH, OW = p.OW, H = p.H, W = p.W;
  const int64_t nvec = ceil_div(OW, NL), Wg = nvec * NL, tail = OW - (nvec - 1) * NL;
  const int64_t Wp = Wg + p.dw * (p.S - 1), Hp = OH + p.dh * (p.R - 1), planeX = Hp * Wp;
  int64_t nparts = G >= 16 ? 1 : std::min<int64_t>(p.N, ceil_div(16, G));
  const int64_t pchunk = ceil_div(p.N, nparts);
  nparts = ceil_div(p.N, pchunk);
  T* part = nullptr;
  if (nparts > 1) {
    part = thread_scratch_of<T, 2>(size_t(G * nparts * Kg * CRS));
    if (!part) return false;
  }
  std::atomic<bool> ok{true};
  parallel_for(G * nparts, pchunk * Kg * CRS * OH * OW, [&](int64_t b, int64_t e) {
    // Per thread: padded input planes of one image and group, its gy rows (zero beyond OW), the
    // lane-wise sums (Kg x CRS vectors), then the tap offsets.
    const int64_t nx = Cg * planeX + NL, ng = Kg * OH * Wg, nv = Kg * CRS * NL;
    const size_t tb = size_t(round_up((nx + ng + nv) * int64_t(sizeof(T)), 64));
    char* mem = static_cast<char*>(thread_scratch(tb + size_t(CRS) * sizeof(int64_t)));
    if (!mem) {
      ok = false;
      return;
    }
    T* xp = reinterpret_cast<T*>(mem);
    T* gp = xp + nx;
    T* vacc = gp + ng;
    int64_t* off = reinterpret_cast<int64_t*>(mem + tb);
    for (int64_t c = 0, i = 0; c < Cg; ++c)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s) off[i++] = c * planeX + r * p.dh * Wp + s * p.dw;
    for (int64_t it = b; it < e; ++it) {
      const int64_t g = it / nparts, n0 = (it % nparts) * pchunk, n1 = std::min(p.N, n0 + pchunk);
      std::fill(vacc, vacc + nv, T(0));
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t c = 0; c < Cg; ++c) {
          const T* xc = x + (n * p.C + g * Cg + c) * H * W;
          for (int64_t hb = 0; hb < Hp; ++hb) {
            T* dst = xp + c * planeX + hb * Wp;
            const int64_t ih = hb - p.ph;
            if (ih < 0 || ih >= H) {
              copy_run<V>(dst, nullptr, Wp);
              continue;
            }
            const int64_t lo = std::min(p.pw, Wp), hi = std::clamp<int64_t>(p.pw + W, lo, Wp);
            copy_run<V>(dst, nullptr, lo);
            copy_run<V>(dst + lo, xc + ih * W + (lo - p.pw), hi - lo);
            copy_run<V>(dst + hi, nullptr, Wp - hi);
          }
        }
        for (int64_t k = 0; k < Kg; ++k)
          for (int64_t oh = 0; oh < OH; ++oh) {
            T* dst = gp + (k * OH + oh) * Wg;
            copy_run<V>(dst, gy + ((n * p.K + g * Kg + k) * OH + oh) * OW, OW);
            copy_run<V>(dst + OW, nullptr, Wg - OW);
          }
        for (int64_t k0 = 0; k0 < Kg; k0 += MK) {
          with_n<MK>(int(std::min<int64_t>(MK, Kg - k0)), [&](auto mk) {
            constexpr int M = decltype(mk)::value;
            for (int64_t t0 = 0; t0 < CRS; t0 += TT) {
              with_n<TT>(int(std::min<int64_t>(TT, CRS - t0)), [&](auto tt) {
                constexpr int TN = decltype(tt)::value;
                R acc[M][TN];
                const int64_t* o = off + t0;
#pragma GCC unroll 8
                for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
                  for (int t = 0; t < TN; ++t) acc[i][t] = V::load(vacc + ((k0 + i) * CRS + t0 + t) * NL);
                for (int64_t oh = 0; oh < OH; ++oh) {
                  const T* g0 = gp + (k0 * OH + oh) * Wg;
                  const T* x0 = xp + oh * Wp;
                  auto step = [&](int64_t j, bool part_vec) {
                    R gv[M];
#pragma GCC unroll 8
                    for (int i = 0; i < M; ++i) gv[i] = V::load(g0 + i * OH * Wg + j);
#pragma GCC unroll 8
                    for (int t = 0; t < TN; ++t) {
                      // The lanes past OW of the last vector: gy is zero there, and the input is
                      // loaded as zero too (an inf there must not make a NaN).
                      const R xv = part_vec ? V::load_part(x0 + o[t] + j, 0, int(tail), T(0)) : V::load(x0 + o[t] + j);
#pragma GCC unroll 8
                      for (int i = 0; i < M; ++i) acc[i][t] = V::fma(gv[i], xv, acc[i][t]);
                    }
                  };
                  int64_t j = 0;
                  for (; j < (nvec - 1) * NL; j += NL) step(j, false);
                  step(j, tail < NL);
                }
#pragma GCC unroll 8
                for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
                  for (int t = 0; t < TN; ++t) V::store(vacc + ((k0 + i) * CRS + t0 + t) * NL, acc[i][t]);
              });
            }
          });
        }
      }
      T* dst = nparts > 1 ? part + it * Kg * CRS : gw + g * Kg * CRS;
      for (int64_t i = 0; i < Kg * CRS; ++i) {
        T sum = T(0);
        for (int l = 0; l < NL; ++l) sum += vacc[i * NL + l];
        dst[i] = sum;
      }
    }
  });
  if (!ok) return false;
  if (nparts > 1) {  // the parts of each group in order
    parallel_for(G, nparts * Kg * CRS, [&](int64_t b, int64_t e) {
      for (int64_t g = b; g < e; ++g) {
        T* dst = gw + g * Kg * CRS;
        const T* src = part + g * nparts * Kg * CRS;
        std::copy(src, src + Kg * CRS, dst);
        for (int64_t pt = 1; pt < nparts; ++pt)
          for (int64_t i = 0; i < Kg * CRS; ++i) dst[i] += src[pt * Kg * CRS + i];
      }
    });
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Strided pointwise layers (1x1, stride > 1, no padding: ResNet's projection shortcuts): bwd_input
// computes the gradient of the compact stride-1 problem (x'[n, c, oh, ow] = x[n, c, oh*sh, ow*sw],
// a plain GEMM: is_plain_1x1, or bwd_input_as_fwd) into scratch slot 3 of the calling thread (the
// stride-1 passes use slots 0-2), then scatters it into the zeroed gx, instead of col2im over
// one strided segment per output row. chosen because (Xeon, AVX-512, median of 21 alternating
// rounds, bench/ab_builds.py) bwd_input ran 1.02-1.11x (1 thread, CPU time) and 1.08-1.10x
// (2 threads) faster on ResNet's 1x1 s2 256x14x14 -> 512 (N=8) and 256x56x56 -> 512 (N=4); the
// same compact copy for the forward and the weight gradient measured 0.95-1.08x and 0.93-0.98x
// (strided im2col is already one gather per value there), so they keep the strided im2col.
// ---------------------------------------------------------------------------------------------
inline bool is_strided_1x1(const Conv2dShape& p) {
  return p.R == 1 && p.S == 1 && p.ph == 0 && p.pw == 0 && (p.sh > 1 || p.sw > 1) && p.OH > 0 && p.OW > 0;
}

inline Conv2dShape compact_1x1_shape(const Conv2dShape& p) {
  Conv2dShape q = no_act(p);
  q.H = p.OH;
  q.W = p.OW;
  q.sh = q.sw = q.dh = q.dw = 1;
  return q;
}

// x[plane, oh*sh, ow*sw] = xs[plane, oh, ow], zeros elsewhere, over the N*C planes of x.
template <typename T>
void scatter_1x1(const Conv2dShape& p, const T* xs, T* x) {
  const int64_t HW = p.H * p.W, P = p.OH * p.OW;
  parallel_for(p.N * p.C, HW, [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl) {
      const T* s = xs + pl * P;
      T* d = x + pl * HW;
      std::fill(d, d + HW, T(0));
      for (int64_t oh = 0; oh < p.OH; ++oh) {
        const T* srow = s + oh * p.OW;
        T* drow = d + oh * p.sh * p.W;
        for (int64_t ow = 0; ow < p.OW; ++ow) drow[ow * p.sw] = srow[ow];
      }
    }
  });
}

// y = conv(x, w) + bias, ReLU. `rotated`: w is a layer's weights and the forward matrix is their
// rotated, channel-swapped copy (bwd_input_as_fwd; p is then the rotated shape and bias null).
template <class V, class B>
bool fwd_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, bool rotated,
              const typename V::T* bias, typename V::T* y, bool relu) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int NR = 2 * V::N;
  constexpr int MR = B::MR;
  const int64_t G = p.groups, Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS;
  const int64_t P = p.OH * p.OW, cols = p.N * P;
  if (cols == 0 || Kg == 0) return true;
  if (is_grouped_direct<V>(p)) {  // falls through to the GEMM only if its scratch cannot be allocated
    if (p.OW > V::N ? grouped_direct<V, B, 2>(p, x, w, rotated, bias, y, relu)
                    : grouped_direct<V, B, 1>(p, x, w, rotated, bias, y, relu))
      return true;
  }
  const int nt = max_threads();

  // Packed weights (B::MRP > 0): once per call, worth it when each weight is used by enough
  // columns (see B::pack_min_cols); the row blocks are balanced (64 rows: 5 x 13 rows, not
  // 4 x 14 + 8) since a short tile wastes the broadcasts and loads of a full one.
  const bool pack = B::MRP > 0 && cols >= B::pack_min_cols;
  const T* wsrc = w;
  if (rotated && !pack) {  // the rows path reads the rotated copy in place
    T* wt = thread_scratch_of<T, 1>(size_t(p.K * CRS));
    if (!wt) return false;
    Conv2dShape layer = p;  // the layer the rotated shape came from
    layer.C = p.K;
    layer.K = p.C;
    rotate_transpose_weights(layer, w, wt);
    wsrc = wt;
  }
  const int64_t mrb = pack ? even_block(Kg, B::MRP) : MR;  // rows per register tile
  const int64_t nmb = ceil_div(Kg, mrb);
  T* ap = nullptr;
  if (pack) {
    ap = thread_scratch_of<T, 2>(size_t(G * nmb * mrb * CRS));
    if (!ap) return false;
    pack_weights(p, w, rotated, mrb, ap);
  }

  const int64_t kc = even_block(CRS, B::kc_fwd);
  const int64_t nc_max = std::max<int64_t>(NR, B::tile_bytes / int64_t(sizeof(T)) / kc / NR * NR);
  int64_t ntiles = ceil_div(cols, nc_max);
  int64_t msplit = 1;
  if (nt > 1) {
    if (G * ntiles >= nt) {
      // Few tiles: make their count a multiple of the thread count so no core idles at the end.
      if (G * ntiles < 16 * nt && (G * ntiles) % nt)
        ntiles = std::min(ceil_div(cols, NR), ceil_div(round_up(G * ntiles, nt), G));
    } else {
      // Not enough column tiles (batch 1, small planes): split the output channels instead.
      msplit = std::min<int64_t>(ceil_div(nt, G * ntiles), nmb);
    }
  }
  // Tile t: panels [t * npan_all / ntiles, (t + 1) * npan_all / ntiles) of the NR-wide column
  // panels, so the count chosen above survives (rounding one width up to whole panels made 8
  // tiles of ResNet-18's 3x3/s2 128x28 layer, 49 panels, 7 of 7 panels: 4 + 3 on two threads).
  // The reduction of every column does not depend on its tile, so neither do the results.
  const int64_t npan_all = ceil_div(cols, NR);
  ntiles = std::min(ntiles, npan_all);
  const int64_t nc = ceil_div(npan_all, ntiles) * NR;  // widest tile
  const int64_t mchunk = ceil_div(nmb, msplit) * mrb;
  msplit = ceil_div(Kg, mchunk);
  const int64_t items = G * ntiles * msplit;

  std::atomic<bool> ok{true};
  parallel_for(items, nc * mchunk * CRS, [&](int64_t b, int64_t e) {
    // Per thread: packed B block (kc x nc), one im2col line, the phases of stride-2 layers (else
    // nothing), the tile's segment table (at most one segment per column plus one), the phases'.
    const bool plain = is_plain_1x1(p), phased = is_phase_s2(p), padded = is_pad_s1(p);
    const size_t seg_bytes =
        size_t(4 * (nc + 1) + (phased ? PhaseTile<V>::ints(nc) : 0) + (padded ? PadTile<V>::ints(nc) : 0)) *
        sizeof(int64_t);
    const size_t bp_bytes = size_t(kc * nc + nc + NR + (phased ? PhaseTile<V>::values(p, nc) : 0) +
                                   (padded ? PadTile<V>::values(p, nc) : 0)) *
                            sizeof(T);
    char* mem = static_cast<char*>(thread_scratch(round_up(int64_t(bp_bytes), 64) + seg_bytes));
    if (!mem) {
      ok = false;
      return;
    }
    T* bp = reinterpret_cast<T*>(mem);
    T* line = bp + kc * nc;
    int64_t* seg_mem = reinterpret_cast<int64_t*>(mem + round_up(int64_t(bp_bytes), 64));
    ColSegments segs = ColSegments::in(seg_mem, nc);
    PhaseTile<V> phase;
    if (phased) phase = PhaseTile<V>::in(p, nc, line + nc + NR, seg_mem + 4 * (nc + 1));
    PadTile<V> pad;
    if (padded) pad = PadTile<V>::in(p, nc, line + nc + NR, seg_mem + 4 * (nc + 1));
    for (int64_t it = b; it < e; ++it) {
      const int64_t ms = it % msplit, t = (it / msplit) % ntiles, g = it / (msplit * ntiles);
      const int64_t q0 = t * npan_all / ntiles * NR, ncur = std::min((t + 1) * npan_all / ntiles * NR, cols) - q0;
      const int64_t m0 = ms * mchunk, m1 = std::min(Kg, m0 + mchunk);
      const int64_t npan = ceil_div(ncur, NR);
      for (int64_t k0 = 0; k0 < CRS; k0 += kc) {
        const int64_t kcur = std::min(kc, CRS - k0);
        // Pack B = im2col rows k0..k0+kcur, columns q0..q0+ncur, into NR-wide panels.
        {
          if (!plain) segs.build(p, q0, ncur);
          if (phased) phase.setup(segs);
          if (padded) pad.setup(segs);
          int64_t c = k0 / RS, r = (k0 % RS) / p.S, s = k0 % p.S;
          for (int64_t kk = 0; kk < kcur; ++kk) {
            if (padded) {
              if (kk == 0 || (r == 0 && s == 0)) pad.build(p, x, g * Cg + c);
              pad.template emit_panels<NR>(segs, p.dh, p.dw, r, s, bp + kk * NR, kcur * NR);
            } else if (phased) {
              if (kk == 0 || (r == 0 && s == 0)) phase.build(p, x, g * Cg + c);
              phase.emit(segs, r, s, line);
            } else if (plain) {
              im2col_row<V>(p, x, g, c, r, s, q0, ncur, line);
            } else {
              im2col_row_segs<V>(p, x, g, c, r, s, segs, line);
            }
            if (!padded) scatter_row_to_panels<V, NR>(line, ncur, bp + kk * NR, kcur * NR);
            if (++s == p.S) {
              s = 0;
              if (++r == p.R) {
                r = 0;
                ++c;
              }
            }
          }
        }
        const bool first = k0 == 0, last = k0 + kcur == CRS;
        // Epilogue of an M x (up to NR) block of y at rows m.., panel jp:
        // y = (first ? bias : y) + acc, ReLU after the last reduction block.
        auto store = [&](auto& acc, int64_t m, int mrows, int64_t jp) {
          constexpr int M = int(std::extent_v<std::remove_reference_t<decltype(acc)>, 0>);
          constexpr int NVv = int(std::extent_v<std::remove_reference_t<decltype(acc)>, 1>);
          const int64_t ncols = std::min<int64_t>(NR, ncur - jp * NR);
          const int64_t q = q0 + jp * NR, n = q / P, pp = q % P;
          T bias_row[M];
          for (int i = 0; i < M; ++i) bias_row[i] = (bias && i < mrows) ? bias[g * Kg + m + i] : T(0);
          if (ncols == NVv * V::N && pp + ncols <= P) {
            T* yrow = y + (n * p.K + g * Kg + m) * P + pp;
#pragma GCC unroll 16
            for (int i = 0; i < M; ++i) {
              if (i >= mrows) break;
#pragma GCC unroll 4
              for (int v = 0; v < NVv; ++v) {
                T* dst = yrow + i * P + v * V::N;
                R c = V::add(acc[i][v], first ? V::set1(bias_row[i]) : V::load(dst));
                if (last && relu) c = V::max(V::zero(), c);  // max(0, NaN) = NaN, as in ref
                V::store(dst, c);
              }
            }
          } else {  // tile edge or image boundary inside the panel: go through a buffer
            alignas(64) T tmp[M * NVv * V::N];
#pragma GCC unroll 16
            for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
              for (int v = 0; v < NVv; ++v) V::store(tmp + i * NVv * V::N + v * V::N, acc[i][v]);
            int64_t nn = n, ppp = pp;
            for (int64_t j = 0; j < ncols; ++j) {
              T* col = y + (nn * p.K + g * Kg + m) * P + ppp;
              for (int i = 0; i < mrows; ++i) {
                T c = tmp[i * NVv * V::N + j] + (first ? bias_row[i] : col[i * P]);
                if (last && relu && c < T(0)) c = T(0);
                col[i * P] = c;
              }
              if (++ppp == P) {
                ppp = 0;
                ++nn;
              }
            }
          }
        };
        bool packed = false;
        if constexpr (B::MRP > 0) {
          if (pack) {
            // One packed row block at a time: its A panel (rows x kcur) stays in L1 while the
            // packed B block streams from L2.
            for (int64_t m = m0; m < m1; m += mrb) {
              const int mrows = int(std::min<int64_t>(mrb, m1 - m));
              const T* a = ap + ((g * nmb + m / mrb) * mrb * CRS) + k0 * mrows;
              with_n<B::MRP>(mrows, [&](auto mc) {
                constexpr int M = decltype(mc)::value;
                for (int64_t jp = 0; jp < npan; ++jp) {
                  const T* bpp = bp + jp * kcur * NR;
                  if (ncur - jp * NR > V::N) {
                    R acc[M][2];
                    ukernel_cols<V, M, 2>(kcur, a, M, bpp, NR, acc);
                    store(acc, m, M, jp);
                  } else {
                    R acc[M][1];
                    ukernel_cols<V, M, 1>(kcur, a, M, bpp, NR, acc);
                    store(acc, m, M, jp);
                  }
                }
              });
            }
            packed = true;
          }
        }
        if (!packed) {
          // The MR weight rows stay in L1 while the packed B block streams from L2. (Packing the
          // weights BLIS-style and swapping these loops measured no faster on Zen 4 at MR = 6.)
          for (int64_t m = m0; m < m1; m += MR) {
            const int mrows = int(std::min<int64_t>(MR, m1 - m));
            const T* a[MR];  // weight rows, read in place (rows past the edge repeat the last one)
#pragma GCC unroll 16
            for (int i = 0; i < MR; ++i) a[i] = wsrc + (g * Kg + m + std::min(i, mrows - 1)) * CRS + k0;
            for (int64_t jp = 0; jp < npan; ++jp) {
              const T* bpp = bp + jp * kcur * NR;
              if (ncur - jp * NR > V::N) {
                R acc[MR][2];
                ukernel_rows<V, MR, 2>(kcur, a, bpp, NR, acc);
                store(acc, m, mrows, jp);
              } else {
                R acc[MR][1];
                ukernel_rows<V, MR, 1>(kcur, a, bpp, NR, acc);
                store(acc, m, mrows, jp);
              }
            }
          }
        }
      }
    }
  });
  return ok;
}

template <class V, class B>
bool fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
         typename V::T* y, bool relu) {
  return fwd_impl<V, B>(p, x, w, false, bias, y, relu);
}

// c[i*ldc + 0..NV*N) (+)= acc[i] for the first mrows rows (add: accumulate, else overwrite).
template <class V, int MR, int NV>
CNNFAST_FORCE_INLINE void acc_to_buffer(typename V::R (&acc)[MR][NV], int mrows, typename V::T* c, int64_t ldc,
                                        bool add) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= mrows) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      typename V::T* dst = c + i * ldc + v * V::N;
      V::store(dst, add ? V::add(acc[i][v], V::load(dst)) : acc[i][v]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, weight: gW^T[CRS x Kg] = col[CRS x N*P] * gY^T[N*P x Kg] per group, bias = sum of gY.
// Threads split the CRS rows and, for long reductions, a fixed number of reduction parts (each
// item owns its rows of gW, or of its part's partial sums, for the whole part); the parts are
// summed in order, so the summation order is the same for any thread count.
// ---------------------------------------------------------------------------------------------

template <class V, class B>
bool bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                typename V::T* gb) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int NR = 2 * V::N;
  // Register tile rows: B::MRW with the im2col block at a fixed row stride LDA (one pointer, the
  // rows at constant offsets), else B::MR row pointers (LDA = 0: rows kcur apart).
  constexpr int MR = B::MRW > 0 ? B::MRW : B::MR;
  constexpr int64_t LDA = B::MRW > 0 ? B::kc_bww + 16 : 0;  // +16: rows not 2^k bytes apart
  const int64_t G = p.groups, Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS;
  const int64_t P = p.OH * p.OW, cols = p.N * P;
  if (gb) bias_grad<V>(gy, p.N, p.K, P, gb);
  if (cols == 0) {
    std::fill(gw, gw + p.K * CRS, T(0));
    return true;
  }
  if (Kg == 0 || CRS == 0) return true;
  if (is_grouped_direct<V>(p) && Kg * CRS * int64_t(sizeof(R)) <= kGroupedDirectBwdWeightSumBytes &&
      grouped_direct_bwd_weight<V>(p, x, gy, gw))
    return true;
  const int nt = max_threads();
  const int64_t kc = even_block(cols, B::MRW > 0 ? B::kc_bww : kKc);  // reduction block (columns of col / rows of gY^T)
  const int64_t ldc = round_up(Kg, NR), npan = ldc / NR;
  constexpr int64_t mc = 16 * MR;  // rows of the im2col block generated at a time (~100 KB, L2)
  // A long reduction (N*OH*OW of 8+ blocks per part) is cut into kparts parts of whole blocks,
  // fixed by the shape (never by the thread count) and summed in order at the end: the threads
  // then split equal parts instead of a few MR-row chunks (C*R*S = 144 in 14-row tiles: 84 + 60
  // rows). The partial sums cost kparts x K x C*R*S values (at most kBwdWeightPartValues).
  const int64_t nkb = ceil_div(cols, kc);
  int64_t kparts = std::clamp<int64_t>(nkb / kBwdWeightBlocksPerPart, 1, kBwdWeightMaxParts);
  while (kparts > 1 && kparts * p.K * CRS > kBwdWeightPartValues) --kparts;
  const int64_t kbpp = ceil_div(nkb, kparts);  // reduction blocks per part
  kparts = ceil_div(nkb, kbpp);
  T* parts = nullptr;
  if (kparts > 1) {
    parts = thread_scratch_of<T, 2>(size_t(kparts * p.K * CRS));
    if (!parts) return false;
  }
  int64_t rsplit = 1;
  if (G * kparts < nt) rsplit = std::min<int64_t>(ceil_div(nt, G * kparts), ceil_div(CRS, MR));
  const int64_t rchunk = round_up(ceil_div(CRS, rsplit), MR);
  rsplit = ceil_div(CRS, rchunk);
  const int64_t items = G * rsplit * kparts;

  // gW^T rows are accumulated in L2-sized sub-blocks (~512 KB) carried through the whole
  // reduction, so a large weight (512x512x3x3) never round-trips through memory per block.
  const int64_t mrb = std::min(rchunk, std::max<int64_t>(mc, 2 * kTileBytes / int64_t(sizeof(T)) / ldc / mc * mc));
  const bool one_block = kbpp == 1;  // gY^T then needs packing only once per item

  std::atomic<bool> ok{true};
  parallel_for(items, rchunk * Kg * kbpp * kc, [&](int64_t b, int64_t e) {
    // Per thread: gW^T sub-block (mrb x ldc), packed gY^T block (kc x ldc), im2col block (mc x kc).
    // Then the segment table of the current column block (ColSegments).
    // Stride-2 layers: the phases of one input channel (PhaseTile) and their tables.
    const bool plain = is_plain_1x1(p), phased = is_phase_s2(p), padded = is_pad_s1(p);
    const int64_t lda = LDA > 0 ? LDA : kc;
    const size_t buf_bytes = size_t(mrb * ldc + kc * ldc + mc * lda + (phased ? PhaseTile<V>::values(p, kc) : 0) +
                                    (padded ? PadTile<V>::values(p, kc) : 0)) *
                             sizeof(T);
    const size_t int_bytes =
        size_t(4 * (kc + 1) + (phased ? PhaseTile<V>::ints(kc) : 0) + (padded ? PadTile<V>::ints(kc) : 0)) *
        sizeof(int64_t);
    char* mem = static_cast<char*>(thread_scratch(round_up(int64_t(buf_bytes), 64) + int_bytes));
    if (!mem) {
      ok = false;
      return;
    }
    T* cblk = reinterpret_cast<T*>(mem);
    T* bp = cblk + mrb * ldc;
    T* abuf = bp + kc * ldc;
    int64_t* seg_mem = reinterpret_cast<int64_t*>(mem + round_up(int64_t(buf_bytes), 64));
    ColSegments segs = ColSegments::in(seg_mem, kc);
    PhaseTile<V> phase;
    if (phased) phase = PhaseTile<V>::in(p, kc, abuf + mc * lda, seg_mem + 4 * (kc + 1));
    PadTile<V> pad;
    if (padded) pad = PadTile<V>::in(p, kc, abuf + mc * lda, seg_mem + 4 * (kc + 1));
    // Pack gY^T rows q0..q0+kcur (they may span images) into NR-wide panels of output channels:
    // V::N x V::N register transposes, a scalar loop for the ragged edges.
    auto pack_gyt = [&](int64_t g, int64_t q0, int64_t kcur) {
      for (int64_t q = q0; q < q0 + kcur;) {
        const int64_t n = q / P, pp = q % P, seg = std::min(P - pp, q0 + kcur - q);
        for (int64_t k0 = 0; k0 < ldc; k0 += V::N) {  // ldc is a multiple of NR, NR of V::N
          T* dst = bp + (k0 / NR) * kcur * NR + (q - q0) * NR + k0 % NR;
          const T* src = gy + (n * p.K + g * Kg + k0) * P + pp;  // row k0 + i at src + i * P
          int64_t t = 0;
          if (k0 + V::N <= Kg)
            for (; t + V::N <= seg; t += V::N) V::transpose(src + t, P, dst + t * NR, NR);
          for (; t < seg; ++t)
            for (int i = 0; i < V::N; ++i) dst[t * NR + i] = k0 + i < Kg ? src[i * P + t] : T(0);
        }
        q += seg;
      }
    };
    for (int64_t it = b; it < e; ++it) {
      const int64_t kp = it % kparts, g = it / (kparts * rsplit), r0 = ((it / kparts) % rsplit) * rchunk;
      const int64_t r1 = std::min(CRS, r0 + rchunk);
      const int64_t qb = kp * kbpp * kc, qe = std::min(cols, qb + kbpp * kc);  // this part's columns
      T* out = kparts > 1 ? parts + kp * p.K * CRS : gw;
      if (one_block) pack_gyt(g, qb, qe - qb);
      for (int64_t sb0 = r0; sb0 < r1; sb0 += mrb) {
        const int64_t sb1 = std::min(r1, sb0 + mrb);
        // The first reduction block overwrites the accumulators (every row and panel of the
        // sub-block is written), later ones add.
        for (int64_t q0 = qb; q0 < qe; q0 += kc) {
          const int64_t kcur = std::min(kc, qe - q0);
          if (!one_block) pack_gyt(g, q0, kcur);
          if (!plain) segs.build(p, q0, kcur);
          if (phased) phase.setup(segs);
          if (padded) pad.setup(segs);
          const int64_t ars = LDA > 0 ? LDA : kcur;  // im2col row stride
          for (int64_t mb0 = sb0; mb0 < sb1; mb0 += mc) {
            const int64_t mrows_blk = std::min(mc, sb1 - mb0);
            int64_t c = mb0 / RS, r = (mb0 % RS) / p.S, s = mb0 % p.S;
            for (int64_t i = 0; i < mrows_blk; ++i) {
              if (padded) {
                if (i == 0 || (r == 0 && s == 0)) pad.build(p, x, g * Cg + c);
                pad.emit(segs, p.dh, p.dw, r, s, abuf + i * ars);
              } else if (phased) {
                if (i == 0 || (r == 0 && s == 0)) phase.build(p, x, g * Cg + c);
                phase.emit(segs, r, s, abuf + i * ars);
              } else if (plain) {
                im2col_row<V>(p, x, g, c, r, s, q0, kcur, abuf + i * ars);
              } else {
                im2col_row_segs<V>(p, x, g, c, r, s, segs, abuf + i * ars);
              }
              if (++s == p.S) {
                s = 0;
                if (++r == p.R) {
                  r = 0;
                  ++c;
                }
              }
            }
            if constexpr (LDA > 0) {
              for (int64_t m = 0; m < mrows_blk; m += MR) {
                T* crow = cblk + (mb0 - sb0 + m) * ldc;
                with_n<MR>(int(std::min<int64_t>(MR, mrows_blk - m)), [&](auto mc) {
                  constexpr int M = decltype(mc)::value;
                  for (int64_t jp = 0; jp < npan; ++jp) {
                    R acc[M][2];
                    ukernel_rows_lda<V, M, 2, LDA>(kcur, abuf + m * LDA, bp + jp * kcur * NR, NR, acc);
                    acc_to_buffer<V, M, 2>(acc, M, crow + jp * NR, ldc, q0 > qb);
                  }
                });
              }
            } else {
              for (int64_t m = 0; m < mrows_blk; m += MR) {
                const int mr = int(std::min<int64_t>(MR, mrows_blk - m));
                const T* a[MR];
#pragma GCC unroll 16
                for (int i = 0; i < MR; ++i) a[i] = abuf + (m + std::min(i, mr - 1)) * kcur;
                T* crow = cblk + (mb0 - sb0 + m) * ldc;
                for (int64_t jp = 0; jp < npan; ++jp) {
                  R acc[MR][2];
                  ukernel_rows<V, MR, 2>(kcur, a, bp + jp * kcur * NR, NR, acc);
                  acc_to_buffer<V, MR, 2>(acc, mr, crow + jp * NR, ldc, q0 > qb);
                }
              }
            }
          }
        }
        // Transposed write-out in V::N x V::N register transposes (scalar at the ragged edges).
        for (int64_t i0 = sb0; i0 < sb1; i0 += V::N)
          for (int64_t k0 = 0; k0 < Kg; k0 += V::N) {
            const T* src = cblk + (i0 - sb0) * ldc + k0;
            T* dst = out + (g * Kg + k0) * CRS + i0;
            if (i0 + V::N <= sb1 && k0 + V::N <= Kg) {
              V::transpose(src, ldc, dst, CRS);
            } else {
              for (int64_t k = 0; k < std::min<int64_t>(V::N, Kg - k0); ++k)
                for (int64_t i = 0; i < std::min<int64_t>(V::N, sb1 - i0); ++i) dst[k * CRS + i] = src[i * ldc + k];
            }
          }
      }
    }
  });
  if (!ok) return false;
  if (kparts > 1) {  // gw = the parts' sums, added in part order
    const int64_t total = p.K * CRS;
    parallel_for(ceil_div(total, 1024), 1024 * kparts, [&](int64_t b, int64_t e) {
      for (int64_t i = b * 1024; i < std::min(total, e * 1024); ++i) {
        T sum = parts[i];
        for (int64_t kp = 1; kp < kparts; ++kp) sum += parts[kp * total + i];
        gw[i] = sum;
      }
    });
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Backward, input: per image and group, col[CRS x P] = W^T[CRS x Kg] * gY[Kg x P] tile by tile,
// each tile scattered into gx (col2im). Threads own whole gx planes (image, channel range), so
// the scatter-adds never race and their order does not depend on the thread count.
// ---------------------------------------------------------------------------------------------

// For stride 1, gx is itself a forward convolution: gx = conv(gy, w'), w'[c, k, r, s] =
// w[k, c, R-1-r, S-1-s] per group (output and input channels swapped, kernel rotated by 180
// degrees), same dilation, padding d*(R-1) - p. That needs no col2im and reuses the fast forward
// path (each gy value is read contiguously along output rows); it applies while d*(R-1) >= p,
// i.e. while the padding is not larger than the dilated kernel's reach.
// It pays off only with enough rows and columns (measured on the ResNet-18 3x3 layers, Zen 4):
// the forward path packs each gy value once for Cg output rows, so few input channels per group
// leave it packing-bound (LeNet's C = 6: 4x slower than col2im), and the rotated weight copy
// (K*Cg*R*S values) must be amortised over N*OH*OW columns (C = 512 at 7x7, N = 1: 1.2x slower;
// C = 256 at 14x14, N = 1: even; C >= 128 with N*OH*OW >= 784: 10-25% faster; C = 64: even).
// That is the AVX2 threshold (kBwdInputFwdMinCg); the AVX-512 build, whose forward packs the
// weights into 14-row tiles, sets its own (B::bwd_input_fwd_min_cg, conv2d_avx512.cpp).
constexpr int64_t kBwdInputFwdMinCg = 96;
constexpr int64_t kBwdInputFwdMinCols = 512;
inline bool bwd_input_as_fwd(const Conv2dShape& p, int64_t min_cg) {
  return p.sh == 1 && p.sw == 1 && p.ph <= p.dh * (p.R - 1) && p.pw <= p.dw * (p.S - 1) && p.Cg() >= min_cg &&
         p.N * p.OH * p.OW >= kBwdInputFwdMinCols;
}

inline Conv2dShape bwd_input_fwd_shape(const Conv2dShape& p) {
  Conv2dShape q = no_act(p);
  q.C = p.K;
  q.H = p.OH;
  q.W = p.OW;
  q.K = p.C;
  q.OH = p.H;
  q.OW = p.W;
  q.ph = p.dh * (p.R - 1) - p.ph;
  q.pw = p.dw * (p.S - 1) - p.pw;
  return q;
}

// Stride-2 bwd_input (is_phase_s2): col2im into the four phases of each padded gx plane instead
// of gx itself, acc[a][b][i][j] += the col row (c, r, s) at (i, j) = (oh + r/2, ow + s/2) with
// (a, b) = (r % 2, s % 2), one contiguous vector run per output row (the strided scatter-add took
// ~15% of a 3x3/s2 128 -> 256 bwd_input); the phases are interleaved into gx once at the end.
// Each gx value receives the same terms in the same order as with the direct scatter-add.
struct PhasePlane {
  int64_t pitch, rows, ps;  // row pitch, rows and size of one phase
  explicit PhasePlane(const Conv2dShape& p, int64_t n) {
    // Rows / columns every window reaches and every gx row / column reads (+1: the odd phase of
    // an odd pw is read one value further; see to_plane).
    rows = std::max(p.OH + (p.R - 1) / 2, (p.H - 1 + p.ph) / 2 + 1);
    pitch = round_up(std::max(p.OW + (p.S - 1) / 2, (p.W + p.pw) / 2 + 1) + 1, n);
    ps = rows * pitch;
  }
  int64_t values() const { return 4 * ps; }  // per channel
};

template <class V, typename T = typename V::T>
void phase_col2im_add(const PhasePlane& pp, const ColSegments& segs, T* acc, int64_t r, int64_t s, const T* src) {
  T* base = acc + (2 * (r & 1) + (s & 1)) * pp.ps + (r >> 1) * pp.pitch + (s >> 1);
  for (int64_t i = 0; i < segs.count; ++i) {
    T* d = base + segs.oh[i] * pp.pitch + segs.ow[i];
    const int64_t n = segs.len[i];
    int64_t t = 0;
    for (; t + V::N <= n; t += V::N) V::store(d + t, V::add(V::load(d + t), V::load(src + t)));
    if (t < n) {
      const int m = int(n - t);
      V::store_n_over(d + t, V::add(V::load(d + t), V::load_part(src + t, 0, m, T(0))), m);  // (private phases)
    }
    src += n;
  }
}

// gx plane[ih][iw] = xpad value (ih + ph, iw + pw) of the phases acc: row t = ih + ph is row
// t / 2 of phases (t % 2, 0) and (t % 2, 1), which interleave into the padded row.
template <class V, typename T = typename V::T>
void phase_to_plane(const Conv2dShape& p, const PhasePlane& pp, const T* acc, T* plane) {
  constexpr int N = V::N;
  const int64_t W = p.W, j0 = p.pw / 2;
  for (int64_t ih = 0; ih < p.H; ++ih) {
    const int64_t t = ih + p.ph;
    const T* ev = acc + 2 * (t & 1) * pp.ps + (t >> 1) * pp.pitch;  // phase (t % 2, 0) row
    const T* od = ev + pp.ps;
    // gx[ih][iw0 + 2u] and [iw0 + 2u + 1] for even iw0: from (first, second)[iw0 / 2 + u].
    const T* first = (p.pw & 1) ? od + j0 : ev + j0;
    const T* second = (p.pw & 1) ? ev + j0 + 1 : od + j0;
    T* dst = plane + ih * W;
    int64_t iw = 0;
    for (; iw + 2 * N <= W; iw += 2 * N) V::interleave2(first + iw / 2, second + iw / 2, dst + iw);
    if (iw < W) {
      alignas(64) T tmp[2 * N];
      V::interleave2(first + iw / 2, second + iw / 2, tmp);
      for (int64_t u = 0; iw + u < W; ++u) dst[iw + u] = tmp[u];
    }
  }
}

// Stride-1 bwd_input (is_pad_s1): col2im into a zero-padded copy of each gx plane, acc[oh + r*dh]
// [ow + s*dw ..] += the col row (c, r, s) over one output row: one vector run with a masked tail
// and no edge clamps (the clamped adds ended in scalar tails: 11 of 27 values on AVX-512); the
// interior is copied into gx once at the end. Each gx value receives the same terms in the same
// order as with the direct scatter-add. The tails (and the phase planes' above) are written with
// V::store_n_over, full-width: the planes are the thread's own, with V::N values of slack past
// the last one. chosen because (AMD EPYC Zen 3, AVX2, 1 thread, process CPU time, CPU=1 T=1
// bench/ab_builds.py c2,c2_256,... bwd_input) AVX2's masked store took LeNet c2's 10-wide rows
// (one vector and a 2-lane tail per row and tap) at ~0.7x the speed of its 8-wide ones.
struct PadPlane {
  int64_t pitch, rows;
  PadPlane(const Conv2dShape& p, int64_t n) {
    rows = std::max(p.OH + p.dh * (p.R - 1), p.H + p.ph);
    pitch = round_up(std::max(p.OW + p.dw * (p.S - 1), p.W + p.pw), n);
  }
  int64_t values() const { return rows * pitch; }  // per channel
};

template <class V, typename T = typename V::T>
void pad_col2im_add(const Conv2dShape& p, const PadPlane& pp, const ColSegments& segs, T* acc, int64_t r, int64_t s,
                    const T* src) {
  T* base = acc + r * p.dh * pp.pitch + s * p.dw;
  for (int64_t i = 0; i < segs.count; ++i) {
    T* d = base + segs.oh[i] * pp.pitch + segs.ow[i];
    const int64_t n = segs.len[i];
    int64_t t = 0;
    for (; t + V::N <= n; t += V::N) V::store(d + t, V::add(V::load(d + t), V::load(src + t)));
    if (t < n) {
      const int m = int(n - t);
      V::store_n_over(d + t, V::add(V::load(d + t), V::load_part(src + t, 0, m, T(0))), m);  // (private plane)
    }
    src += n;
  }
}

template <class V, class B>
bool bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx);

// MR: register tile rows (see bwd_input).
template <class V, class B, int MR>
bool bwd_input_mr(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int NR = 2 * V::N;
  const int64_t G = p.groups, Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS, HW = p.H * p.W;
  const int64_t P = p.OH * p.OW;
  if (P == 0 || Kg == 0) {
    std::fill(gx, gx + p.N * p.C * HW, T(0));
    return true;
  }
  if (is_strided_1x1(p)) {  // falls through to col2im if the compact gradient cannot be allocated
    if (T* gxs = thread_scratch_of<T, 3>(size_t(p.N * p.C * P))) {
      if (bwd_input<V, B>(compact_1x1_shape(p), gy, w, gxs)) {
        scatter_1x1(p, gxs, gx);
        return true;
      }
    }
  }
  // Grouped layers with few input channels per group: the grouped direct forward (no im2col).
  // Below kBwdInputFwdMinCg input channels per group (AVX-512's lower threshold) only while the
  // layer has at most twice as many output channels per group: the forward conv's im2col is
  // amortised over Cg rows, col2im over a reduction of Kg. chosen because (Xeon, AVX-512, 1 thread,
  // CPU time, bench/ab_builds.py, 7 rounds) at Cg = 48 col2im ran 1.02-1.14x faster at Kg = 128
  // and 192 (5x5, 3x3, 7x7, 27x27 and 28x28 planes) and 0.86-0.95x at Kg = 64 and 96.
  if ((bwd_input_as_fwd(p, B::bwd_input_fwd_min_cg) && (p.Cg() >= kBwdInputFwdMinCg || p.Kg() <= 2 * p.Cg())) ||
      (bwd_input_as_fwd(p, 1) && is_grouped_direct<V>(bwd_input_fwd_shape(p)))) {
    // Falls through to col2im only if its scratch cannot be allocated.
    if (fwd_impl<V, B>(bwd_input_fwd_shape(p), gy, w, true, nullptr, gx, false)) return true;
  }
  const int nt = max_threads();
  const int64_t nc_max = std::max<int64_t>(NR, kTileBytes / int64_t(sizeof(T)) / Kg / NR * NR);
  const int64_t nc = round_up(even_block(P, nc_max), NR);  // spatial tile (B pack is Kg x nc)
  const int64_t kc = even_block(Kg, kKc);
  const int64_t mc = std::max<int64_t>(MR, kTileBytes / int64_t(sizeof(T)) / nc / MR * MR);  // col rows
  const int64_t NG = p.N * G;
  int64_t csplit = 1;
  if (NG < nt) csplit = std::min<int64_t>(ceil_div(nt, NG), Cg);
  const int64_t cchunk = ceil_div(Cg, csplit);
  csplit = ceil_div(Cg, cchunk);
  const int64_t items = NG * csplit;

  std::atomic<bool> ok{true};
  parallel_for(items, cchunk * RS * Kg * P, [&](int64_t b, int64_t e) {
    // Per thread: packed gY tile (Kg x nc), col tile (mc x nc), padded copy of an edge A panel,
    // stride-2 layers the phases of the item's gx planes (PhasePlane). Then the segment table of
    // the current spatial tile (ColSegments).
    const bool plain = is_plain_1x1(p), phased = is_phase_s2(p), padded = is_pad_s1(p);
    const PhasePlane pp(p, V::N);
    const PadPlane qq(p, V::N);
    const size_t buf_bytes = size_t(Kg * nc + mc * nc + kc * MR + (phased ? cchunk * pp.values() + V::N : 0) +
                                    (padded ? cchunk * qq.values() + V::N : 0)) *
                             sizeof(T);
    char* mem =
        static_cast<char*>(thread_scratch(round_up(int64_t(buf_bytes), 64) + size_t(4 * (nc + 1)) * sizeof(int64_t)));
    if (!mem) {
      ok = false;
      return;
    }
    T* bp = reinterpret_cast<T*>(mem);
    T* colbuf = bp + Kg * nc;
    T* aedge = colbuf + mc * nc;
    int64_t* seg_mem = reinterpret_cast<int64_t*>(mem + round_up(int64_t(buf_bytes), 64));
    ColSegments segs = ColSegments::in(seg_mem, nc);
    T* acc = aedge + kc * MR;  // phases of channel c at acc + (c - c0) * pp.values()
    for (int64_t it = b; it < e; ++it) {
      const int64_t cs = it % csplit, g = (it / csplit) % G, n = it / (csplit * G);
      const int64_t c0 = cs * cchunk, c1 = std::min(Cg, c0 + cchunk), r0 = c0 * RS, r1 = c1 * RS;
      T* gxn = gx + (n * p.C + g * Cg) * HW;
      if (phased)
        std::fill(acc, acc + (c1 - c0) * pp.values(), T(0));
      else if (padded)
        std::fill(acc, acc + (c1 - c0) * qq.values(), T(0));
      else
        std::fill(gxn + c0 * HW, gxn + c1 * HW, T(0));
      for (int64_t p0 = 0; p0 < P; p0 += nc) {
        const int64_t ncur = std::min(nc, P - p0), npan = ceil_div(ncur, NR);
        for (int64_t k = 0; k < Kg; ++k)
          scatter_row_to_panels<V, NR>(gy + (n * p.K + g * Kg + k) * P + p0, ncur, bp + k * NR, Kg * NR);
        for (int64_t mb0 = r0; mb0 < r1; mb0 += mc) {
          const int64_t mrows_blk = std::min(mc, r1 - mb0);
          for (int64_t k0 = 0; k0 < Kg; k0 += kc) {
            const int64_t kcur = std::min(kc, Kg - k0);
            for (int64_t m = mb0; m < mb0 + mrows_blk; m += MR) {
              const int mr = int(std::min<int64_t>(MR, mb0 + mrows_blk - m));
              const T* a = w + (g * Kg + k0) * CRS + m;
              int64_t lda = CRS;
              // The MR-wide reads must not run past the end of w: with CRS < MR (e.g. grouped 1x1
              // layers) even rows of earlier groups reach it, so check the last element read.
              if ((g * Kg + k0 + kcur - 1) * CRS + m + MR > p.K * CRS) {
                for (int64_t kk = 0; kk < kcur; ++kk)
                  for (int i = 0; i < MR; ++i) aedge[kk * MR + i] = i < mr ? a[kk * CRS + i] : T(0);
                a = aedge;
                lda = MR;
              }
              T* crow = colbuf + (m - mb0) * nc;
              for (int64_t jp = 0; jp < npan; ++jp) {
                const T* bpp = bp + jp * Kg * NR + k0 * NR;
                if (ncur - jp * NR > V::N) {
                  R acc[MR][2];
                  if (lda == MR)
                    ukernel_cols<V, MR, 2>(kcur, a, lda, bpp, NR, acc);
                  else
                    ukernel_cols<V, MR, 2, true>(kcur, a, lda, bpp, NR, acc);
                  acc_to_buffer<V, MR, 2>(acc, mr, crow + jp * NR, nc, k0 > 0);
                } else {
                  R acc[MR][1];
                  if (lda == MR)
                    ukernel_cols<V, MR, 1>(kcur, a, lda, bpp, NR, acc);
                  else
                    ukernel_cols<V, MR, 1, true>(kcur, a, lda, bpp, NR, acc);
                  acc_to_buffer<V, MR, 1>(acc, mr, crow + jp * NR, nc, k0 > 0);
                }
              }
            }
          }
          if (!plain) segs.build(p, n * P + p0, ncur);
          int64_t c = mb0 / RS, r = (mb0 % RS) / p.S, s = mb0 % p.S;
          for (int64_t i = 0; i < mrows_blk; ++i) {
            if (phased)
              phase_col2im_add<V>(pp, segs, acc + (c - c0) * pp.values(), r, s, colbuf + i * nc);
            else if (padded)
              pad_col2im_add<V>(p, qq, segs, acc + (c - c0) * qq.values(), r, s, colbuf + i * nc);
            else if (plain)
              col2im_row_add(p, gx, n, g * Cg + c, r, s, p0, ncur, colbuf + i * nc);
            else
              col2im_row_add_segs<V>(p, gx, g * Cg + c, r, s, segs, colbuf + i * nc);
            if (++s == p.S) {
              s = 0;
              if (++r == p.R) {
                r = 0;
                ++c;
              }
            }
          }
        }
      }
      if (phased)
        for (int64_t c = c0; c < c1; ++c) phase_to_plane<V>(p, pp, acc + (c - c0) * pp.values(), gxn + c * HW);
      if (padded)
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t ih = 0; ih < p.H; ++ih)
            copy_run<V>(gxn + c * HW + ih * p.W, acc + (c - c0) * qq.values() + (ih + p.ph) * qq.pitch + p.pw, p.W);
    }
  });
  return ok;
}

// Register tile rows: AVX-512 B::MRP (14 x 32; W^T is read in place, its MR values of a step
// contiguous, so the broadcasts fold into the multiply-adds as in the packed forward) for layers
// with a kernel larger than 1x1: (Xeon, AVX-512, 1 thread, CPU time, bench/ab_builds.py, 7 rounds)
// 1.02-1.09x faster than 8-row tiles on the 3x3/s2 layers r18s2, r50s2, rdown, cifar_s2. 1x1
// layers keep B::MR: their Cg rows (16-64) split badly into 14s (16 -> 14 + 2), and 14-row tiles
// measured 0.77-0.94x of 8-row ones there (pw16_96_112_n1, pw32_16_112_n8, r50_64to256).
template <class V, class B>
bool bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  if constexpr (B::MRP > 0) {
    if (p.R * p.S > 1) return bwd_input_mr<V, B, B::MRP>(p, gy, w, gx);
  }
  return bwd_input_mr<V, B, B::MR>(p, gy, w, gx);
}

}  // namespace convgemm
}  // namespace
}  // namespace cnnfast
