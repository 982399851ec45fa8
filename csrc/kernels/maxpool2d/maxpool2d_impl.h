// Width-generic max_pool2d forward/backward (NCHW), written once and instantiated per ISA
// (maxpool2d_avx2.cpp, maxpool2d_avx512.cpp) with a vector type of common/simd.h. Include only
// from a file compiled with the matching ISA flags. Semantics exactly as maxpool2d_ref.cpp: NaN
// propagates, the first maximum in row-major scan order wins, padding never wins (an
// all-padding window gives -inf and index -1), indices are flat h * W + w per plane.
//
// Two forward kernels; threads split the N*C*OH output rows (one task = one (plane, output row)).
//
// fwd_s2_impl, stride 2 with kernel width 2 or 3 (the ResNet / VGG downsampling pools) on rows of
// more than two vectors: horizontal pass first. Each input row is reduced across the window
// columns once, straight from x (stride-2 columns deinterleaved in registers), into a small ring
// of row results; an output row is the vertical fold of its rows' results. Left to right, then
// top to bottom, a strict "better" test keeps the first maximum in scan order without comparing
// indices, and rows without NaN use a one-compare test. Details below, before take_s2.
//
// fwd_impl, everything else, vertical pass first, per output row:
//  1. vertical pass: rb[pw + w] = max over the window's valid input rows of x[ih][w], with the
//     flat index of the winner (rows scanned top-down with a strict "better" test, so the first
//     row wins ties). rb has -inf / "no index" padding on both sides.
//  2. phase split: for stride sw > 2, rb is split into sw phase rows ph[r][q] = rb[q * sw + r],
//     so the horizontal pass reads contiguously: window column j of output ow is
//     ph[(j*dw) % sw][ow + (j*dw) / sw]. Stride 2 deinterleaves rb in registers instead, stride 1
//     reads rb directly.
//  3. horizontal pass: combine the kw columns. Two columns can tie with the later column holding
//     the earlier row, so ties are settled by comparing flat indices (smaller = first in scan
//     order), which makes the separable result identical to the scan of the reference.
// "Better" is `v > best || (isnan(v) && !isnan(best))`, as in the reference. Padding carries the
// index sentinel kNoIndex (larger than any real index, so a real element wins every tie with
// padding); it is stored as -1. Rows are software-pipelined (the vertical pass runs one row ahead
// of steps 2-3) so the row buffer stores have drained before steps 2-3 read them back; see the
// comment at the loop.
//
// Allocation: each thread allocates its row buffers (a few rows of W + padding elements, 64-byte
// aligned) once per call. Declines (returns false) when a plane has 2^31 - 1 or more elements in
// float32 (indices are carried as int32 lanes next to the float lanes).
//
// Backward: threads own whole planes, so the scatter-add through (user-supplied, possibly
// repeated) indices never races; each plane is zeroed just before its scatter, while it is in
// cache, so gx is written to memory once.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/parallel.h"
#include "common/portable.h"
#include "common/simd.h"
#include "kernels/maxpool2d/maxpool2d.h"

namespace cnnfast {
namespace pool_simd {
// Internal linkage, as everything in common/simd.h: each ISA file compiles its own copy.
namespace {

// The vector types are common/simd.h's (Avx2F32, ...): T, R (values), M (lane masks), IT / I
// (index lanes, as many as value lanes: int32 next to float, int64 next to double).

// "v is better than acc": v > acc, or v is NaN and acc is not (!(v <= acc) is "v > acc, or either
// is NaN"; masking out a NaN acc leaves exactly "better").
template <class S>
inline typename S::M take(typename S::R v, typename S::R acc) {
  return S::mandnot(S::is_nan(acc), S::nle(v, acc));
}
// Better, or "not worse" (v >= acc, or v NaN) with a smaller index: "not worse and not better" is
// exactly "same", and where v is better the second term does not matter.
template <class S>
inline typename S::M take_tie(typename S::R v, typename S::I iv, typename S::R acc, typename S::I ia) {
  return S::mor(take<S>(v, acc), S::mand(S::mor(S::ge(v, acc), S::is_nan(v)), S::ilt(iv, ia)));
}
// Index lanes widened to int64 at p (NT: nontemporal); Sentinel: lanes equal to sentinel become -1.
template <class S, bool NT, bool Sentinel = true>
inline void store_idx(int64_t* p, typename S::I i, typename S::IT sentinel) {
  if (Sentinel) i = S::iblend(i, S::iset1(-1), S::ieq(i, S::iset1(sentinel)));
  S::template store_i64<NT>(p, i);
}

// Scalar "v is better than best" (the reference's test).
template <typename T>
inline bool better(T v, T best) {
  return v > best || (std::isnan(v) && !std::isnan(best));
}

// Output rows between a row's input prefetch and its use (chosen from bench/: 2-4 all hide the
// DRAM latency for VGG-sized rows; more only evicts useful lines for small planes).
constexpr int64_t kPrefetchRows = 3;
// Outputs (values + indices) at least this large are written with nontemporal stores: they do
// not stay in cache for the next layer anyway, and streaming skips the read-for-ownership of
// each output line (same reasoning and threshold as relu_impl.h).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

template <class S, bool WithIdx>
void fwd_impl(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  using T = typename S::T;
  using IT = typename S::IT;
  constexpr int N = S::N;
  constexpr IT kNoIndex = std::numeric_limits<IT>::max();
  const T ninf = -std::numeric_limits<T>::infinity();
  const int64_t H = p.H, W = p.W, OH = p.OH, OW = p.OW, sw = p.sw;
  // Buffer geometry (see the header comment): phase rows of length P cover every horizontal load.
  const int64_t owv = (OW + N - 1) / N * N, qmax = (p.kw - 1) * p.dw / sw;
  int64_t L = (owv + qmax + 1) * sw;
  if (L < p.pw + W + N) L = p.pw + W + N;  // + N: the vertical pass stores whole vectors
  L = (L + 2 * N - 1) / (2 * N) * (2 * N);
  const int64_t P = (L + sw - 1) / sw;  // phase row length
  // Offsets of window column j in the phase buffer: phase (j*dw) % sw, shift (j*dw) / sw.
  std::vector<int64_t> coff(static_cast<size_t>(p.kw));
  for (int64_t j = 0; j < p.kw; ++j) coff[j] = (j * p.dw) % sw * P + (j * p.dw) / sw;

  const int64_t out_bytes = p.N * p.C * OH * OW * static_cast<int64_t>(sizeof(T) + (WithIdx ? sizeof(int64_t) : 0));
  const bool stream = out_bytes >= kStreamBytes;

  parallel_for(p.N * p.C * OH, OW * p.kh * p.kw, [&](int64_t b, int64_t e) {
    // Row buffers: two vertical-pass rows (rows are software-pipelined, see below) and the phase
    // rows, in one block with every buffer 64-byte aligned.
    auto seg = [](int64_t elems, size_t sz) { return (static_cast<size_t>(elems) * sz + 63) / 64 * 64; };
    const size_t s_rb = seg(L, sizeof(T)), s_ph = sw <= 2 ? 0 : seg(sw * P, sizeof(T));
    const size_t s_rbi = WithIdx ? seg(L, sizeof(IT)) : 0, s_phi = WithIdx && sw > 2 ? seg(sw * P, sizeof(IT)) : 0;
    std::vector<unsigned char> block(2 * s_rb + s_ph + 2 * s_rbi + s_phi + 64);
    unsigned char* const base = block.data() + (64 - reinterpret_cast<std::uintptr_t>(block.data()) % 64) % 64;
    T* const rbs[2] = {reinterpret_cast<T*>(base), reinterpret_cast<T*>(base + s_rb)};
    T* const ph = reinterpret_cast<T*>(base + 2 * s_rb);
    IT* const rbis[2] = {reinterpret_cast<IT*>(base + 2 * s_rb + s_ph),
                         reinterpret_cast<IT*>(base + 2 * s_rb + s_ph + s_rbi)};
    IT* const phi = reinterpret_cast<IT*>(base + 2 * s_rb + s_ph + 2 * s_rbi);
    for (int u = 0; u < 2; ++u) {
      std::fill(rbs[u], rbs[u] + L, ninf);
      if (WithIdx) std::fill(rbis[u], rbis[u] + L, kNoIndex);
    }
    if (sw > 2) {
      std::fill(ph, ph + sw * P, ninf);
      if (WithIdx) std::fill(phi, phi + sw * P, kNoIndex);
    }
    const typename S::I iota = S::iota();
    // the window's valid input rows: pointers and flat offsets (row * W) of their first elements
    std::vector<const T*> rowp(static_cast<size_t>(p.kh));
    std::vector<IT> rowoff(static_cast<size_t>(p.kh));
    T tv[N];
    int64_t ti[N];

    // Software pipeline: iteration t runs the vertical pass of row t and then the phase split and
    // horizontal pass of row t - 1. The vertical pass's loads miss cache and hold up retirement,
    // so its row-buffer stores sit in the store queue for long; a later load that only partly
    // overlaps one of them (the phase split after padding pw = 1, the horizontal shifts) cannot
    // be forwarded and must wait for it. One row of lag lets those stores drain first.
    for (int64_t t = b; t <= e; ++t) {
      if (t < e) {
        T* const rv = rbs[(t - b) & 1] + p.pw;  // rv[w] = column w of the input row
        IT* const ri = WithIdx ? rbis[(t - b) & 1] + p.pw : nullptr;
        const int64_t nc = t / OH, oh = t % OH;
        const T* xp = x + nc * H * W;
        // 1. vertical pass over the window's valid rows (top-down: first row wins ties)
        int64_t nr = 0;
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh * p.sh - p.ph + i * p.dh;
          if (ih >= 0 && ih < H) {
            rowp[nr] = xp + ih * W;
            rowoff[nr++] = static_cast<IT>(ih * W);
          }
        }
        // Prefetch the input rows of the output row kPrefetchRows ahead: each output row reads
        // only a few short row segments, too little for the hardware prefetcher to ramp up.
        if (t + kPrefetchRows < e) {
          const int64_t t2 = t + kPrefetchRows, oh2 = t2 % OH;
          const char* x2 = reinterpret_cast<const char*>(x + t2 / OH * H * W);
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t ih = oh2 * p.sh - p.ph + i * p.dh;
            if (ih < 0 || ih >= H) continue;
            // every line the row touches, from the one holding its first byte to the one holding its last
            const std::uintptr_t r0 = reinterpret_cast<std::uintptr_t>(x2 + ih * W * static_cast<int64_t>(sizeof(T)));
            const std::uintptr_t r1 = r0 + static_cast<std::uintptr_t>(W) * sizeof(T);
            for (std::uintptr_t a = r0 & ~std::uintptr_t(63); a < r1; a += 64)
              _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
          }
        }
        if (nr == 0) {
          std::fill(rv, rv + W, ninf);
          if (WithIdx) std::fill(ri, ri + W, kNoIndex);
        } else {
          // The lanes track the winning row's offset; adding the column vector col = w + iota
          // at the store gives the flat index.
          int64_t w = 0;
          auto col = iota;
          for (; w + N <= W; w += N) {
            auto acc = S::load(rowp[0] + w);
            auto ia = S::iset1(rowoff[0]);
            for (int64_t r = 1; r < nr; ++r) {
              const auto v = S::load(rowp[r] + w);
              const auto m = take<S>(v, acc);
              acc = S::blend(acc, v, m);
              if (WithIdx) ia = S::iblend(ia, S::iset1(rowoff[r]), m);
            }
            S::store(rv + w, acc);
            if (WithIdx) S::istore(ri + w, S::iadd(ia, col));
            col = S::iadd(col, S::iset1(N));
          }
          if (w < W) {  // the last, partial vector: lanes past the row load -inf and store "no index"
            const int hi = static_cast<int>(W - w);
            auto acc = S::load_part(rowp[0] + w, 0, hi, ninf);
            auto ia = S::iset1(rowoff[0]);
            for (int64_t r = 1; r < nr; ++r) {
              const auto v = S::load_part(rowp[r] + w, 0, hi, ninf);
              const auto m = take<S>(v, acc);
              acc = S::blend(acc, v, m);
              if (WithIdx) ia = S::iblend(ia, S::iset1(rowoff[r]), m);
            }
            S::store(rv + w, acc);  // the buffer has N - 1 columns of room past pw + W (L below)
            if (WithIdx)
              S::istore(ri + w, S::iblend(S::iadd(ia, col), S::iset1(kNoIndex),
                                          S::ilt(S::iset1(static_cast<IT>(hi - 1)), S::iota())));
          }
        }
      }
      if (t > b) {
        const int64_t tp = t - 1;
        const T* const rb = rbs[(tp - b) & 1];
        const IT* const rbi = WithIdx ? rbis[(tp - b) & 1] : nullptr;
        T* const yr = y + tp * OW;
        int64_t* const ir = WithIdx ? idx + tp * OW : nullptr;
        // Writes output columns [ow, ow + N) of the row (clipped at OW).
        auto emit = [&](int64_t ow, typename S::R acc, typename S::I ia) {
          if (ow + N <= OW) {
            // streaming only where the store is vector-aligned (rows of odd byte length are not)
            if (stream && reinterpret_cast<std::uintptr_t>(yr + ow) % sizeof(typename S::R) == 0)
              S::stream(yr + ow, acc);
            else
              S::store(yr + ow, acc);
            if (WithIdx) {
              if (stream && reinterpret_cast<std::uintptr_t>(ir + ow) % sizeof(typename S::R) == 0)
                store_idx<S, true>(ir + ow, ia, kNoIndex);
              else
                store_idx<S, false>(ir + ow, ia, kNoIndex);
            }
          } else {
            S::store(tv, acc);
            std::memcpy(yr + ow, tv, static_cast<size_t>(OW - ow) * sizeof(T));
            if (WithIdx) {
              store_idx<S, false>(ti, ia, kNoIndex);
              std::memcpy(ir + ow, ti, static_cast<size_t>(OW - ow) * sizeof(int64_t));
            }
          }
        };
        // Folds window column v (indices iv) into the running maximum.
        auto fold = [](typename S::R v, typename S::I iv, typename S::R& acc, typename S::I& ia) {
          if (WithIdx) {
            const auto m = take_tie<S>(v, iv, acc, ia);
            acc = S::blend(acc, v, m);
            ia = S::iblend(ia, iv, m);
          } else {
            acc = S::blend(acc, v, take<S>(v, acc));
          }
        };
        if (sw == 2) {
          // 2-3. stride 2: window column j of outputs [ow, ow + N) is the even (j*dw even) or odd
          // lanes of rb[2 * (ow + j*dw/2) ...], deinterleaved in registers. (Going through a phase
          // buffer stored just before costs a store-forwarding stall on every shifted load.)
          for (int64_t ow = 0; ow < OW; ow += N) {
            typename S::R acc{};
            typename S::I ia{};
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t jd = j * p.dw, o = 2 * (ow + jd / 2);
              const auto va = S::load(rb + o), vb = S::load(rb + o + N);
              const auto v = jd & 1 ? S::odd(va, vb) : S::even(va, vb);
              typename S::I iv{};
              if (WithIdx) {
                const auto ja = S::iload(rbi + o), jb = S::iload(rbi + o + N);
                iv = jd & 1 ? S::iodd(ja, jb) : S::ieven(ja, jb);
              }
              if (j == 0) {
                acc = v;
                ia = iv;
              } else {
                fold(v, iv, acc, ia);
              }
            }
            emit(ow, S::unzip_fix(acc), WithIdx ? S::iunzip_fix(ia) : ia);
          }
        } else {
          const T* const pv = sw == 1 ? rb : ph;
          const IT* const pi = WithIdx ? (sw == 1 ? rbi : phi) : nullptr;
          // 2. phase split (strides above 2: scalar, rare)
          if (sw > 2) {
            for (int64_t r = 0; r < sw; ++r)
              for (int64_t q = 0; q < P && q * sw + r < L; ++q) {
                ph[r * P + q] = rb[q * sw + r];
                if (WithIdx) phi[r * P + q] = rbi[q * sw + r];
              }
          }
          // 3. horizontal pass
          for (int64_t ow = 0; ow < OW; ow += N) {
            auto acc = S::load(pv + ow + coff[0]);
            typename S::I ia{};
            if (WithIdx) ia = S::iload(pi + ow + coff[0]);
            for (int64_t j = 1; j < p.kw; ++j)
              fold(S::load(pv + ow + coff[j]), WithIdx ? S::iload(pi + ow + coff[j]) : ia, acc, ia);
            emit(ow, acc, ia);
          }
        }
      }
    }
    if (stream) _mm_sfence();  // order the streaming stores before the parallel region's join
  });
}

// Stride-2 forward, horizontal pass first (fwd_s2_impl; kernel width 2 or 3, dw = 1, so pw <= 1).
// Each input row is reduced across the window columns once, into a ring of row results (slot
// ih & (ring - 1)), and an output row is the vertical fold of its rows' results. In this order the
// first maximum of a row is the leftmost (columns are folded left to right) and the first row wins
// across rows, which is the scan order of the reference with plain "better" tests: no index
// comparisons, unlike the vertical-first order of fwd_impl, whose column fold must break ties
// between rows by index. Window columns 0 and 1 of N outputs are the even and odd lanes of the 2N
// inputs from column 2*ow - pw, column 2 the even lanes from 2*ow - pw + 2, loaded straight from
// x (S::even / odd: one in-lane shuffle each; row results stay in that lane order until the output
// store). Padding never wins: the left padding column by the order of the fold (hblock_s2's
// Left), columns past the right edge by reading as -inf at the end of the window.
// The stride-2 passes below have a fast form for rows without NaN: "better" is then one ordered
// compare (v > acc). The horizontal pass checks the columns it loads for NaN (one unordered compare
// per pair of vectors) and redoes a row that has one with the NaN-aware test; the vertical pass
// uses the NaN-aware test when any of its rows had NaN. Plain compare, as take() for NaN-free input.
template <class S, bool NanSafe>
inline typename S::M take_s2(typename S::R v, typename S::R acc) {
  if (NanSafe) return take<S>(v, acc);
  return S::gt(v, acc);
}

// One block of N outputs of the horizontal pass for kw = 2 or 3, dw = 1, from the 2N (+ 2)
// input columns starting at c0 = 2 * ow - pw: window columns 0 and 1 are the even and odd lanes
// of the pair at c0, column 2 the even lanes of the pair at c0 + 2. Edge: 0 = every loaded column
// in the row (but maybe the last, unused); 1 = the block reaches past the row but not past x: plain
// loads, columns >= W then set to -inf; 2 = it reaches past x: loads through S::load_part. Left:
// pw = 1 and this is block 0, so lane 0's column 0 is padding: the fold starts from column 1 and
// column 0 then wins ties in the other lanes (it comes first). Without NanSafe, "better" is
// v > acc and nanm collects NaN in the loads (columns past the row too: a false alarm only costs
// the NaN-aware redo).
template <class S, bool WithIdx, int KW, bool NanSafe, bool Left, int Edge>
CNNFAST_FORCE_INLINE void hblock_s2(const typename S::T* row, int64_t c0, int64_t W, typename S::I first,
                                    typename S::T* hvs, typename S::IT* his, typename S::M& nanm) {
  using T = typename S::T;
  using V = typename S::R;
  using I = typename S::I;
  using M = typename S::M;
  constexpr int N = S::N;
  constexpr bool Clip = Edge == 2;
  auto ld = [&](int64_t c) {
    if (!Clip) return S::load(row + c);
    const int64_t lo = c < 0 ? -c : 0, hi = W - c;  // lanes [lo, hi) lie in the row
    const int l = static_cast<int>(lo < N ? lo : N), h = static_cast<int>(hi < l ? l : hi < N ? hi : N);
    // address arithmetic in integers: c may lie before the row (those lanes are not read)
    return S::load_part(
        reinterpret_cast<const T*>(reinterpret_cast<std::uintptr_t>(row) + c * static_cast<int64_t>(sizeof(T))), l, h,
        -std::numeric_limits<T>::infinity());
  };
  const V a = ld(c0), b = ld(c0 + N);
  V v0 = S::even(a, b), v1 = S::odd(a, b);
  // NaN check of columns [c0, c0 + 2N): the blocks together cover the row but for the column
  // after the last block's pair, which hrow_s2 checks
  if (!NanSafe) nanm = S::mor(nanm, S::unord(a, b));
  const I col = Edge == 1 ? S::iadd(S::ieven(S::iota(), S::iadd(S::iota(), S::iset1(N))),
                                    S::iset1(static_cast<typename S::IT>(c0)))
                          : I{};
  const V ninf = S::set1(-std::numeric_limits<T>::infinity());
  auto past = [&](int j) {
    return S::ilt(S::iset1(static_cast<typename S::IT>(W - 1 - j)), col);
  };  // lanes whose column j is >= W
  if (Edge == 1) {
    v0 = S::blend(v0, ninf, past(0));
    v1 = S::blend(v1, ninf, past(1));
  }
  const I zero = S::iset1(0), one = S::iset1(1);
  V acc;
  I code{};  // the winner's window column
  if (Left) {
    acc = v1;
    const M m = S::mand(S::mor(S::ge(v0, acc), S::is_nan(v0)), S::ilt(zero, S::iota()));  // not worse, lanes >= 1
    acc = S::blend(acc, v0, m);
    if (WithIdx) code = S::iblend(one, zero, m);
  } else {
    acc = v0;
    const M m = take_s2<S, NanSafe>(v1, acc);
    acc = S::blend(acc, v1, m);
    if (WithIdx) code = S::iblend(zero, one, m);
  }
  if (KW == 3) {
    V v2 = S::even(ld(c0 + 2), ld(c0 + 2 + N));
    if (Edge == 1) v2 = S::blend(v2, ninf, past(2));
    const M m = take_s2<S, NanSafe>(v2, acc);
    acc = S::blend(acc, v2, m);
    if (WithIdx) code = S::iblend(code, S::iset1(2), m);
  }
  if (NanSafe) nanm = S::mor(nanm, S::is_nan(acc));
  S::store(hvs, acc);
  if (WithIdx) S::istore(his, S::iadd(first, code));
}

// Horizontal pass of one input row (flat offset ihW of its first element) into hvs / his:
// hblock_s2 over the row, interior blocks [0 or N, oe) loaded directly. Returns whether the row
// result may hold NaN: without NanSafe, whether the row must be redone with it; with it, whether
// the vertical pass must be NaN-aware.
template <class S, bool WithIdx, int KW, bool NanSafe>
bool hrow_s2(const typename S::T* row, const typename S::T* x, const typename S::T* x_end, int64_t ihW, int64_t W,
             int64_t owv, int64_t oe, int64_t pw, typename S::T* hvs, typename S::IT* his) {
  using T = typename S::T;
  using IT = typename S::IT;
  using I = typename S::I;
  using M = typename S::M;
  constexpr int N = S::N;
  constexpr int64_t reach = (KW - 1) + 2 * N;  // a block loads columns [c0, c0 + reach), c0 = 2 * ow - pw
  const I lane2 = S::ieven(S::iota(), S::iadd(S::iota(), S::iset1(N)));  // 2 * lane, in S::even's lane order
  const I step = S::iset1(2 * N);
  I first = S::iadd(lane2, S::iset1(static_cast<IT>(ihW - pw)));  // flat index of window column 0, per lane
  M nanm = S::gt(S::set1(0), S::set1(0));                         // all false
  // the Edge of a block that is not interior (see hblock_s2); addresses compared as integers (the
  // block's may lie outside x)
  auto edge = [&](int64_t c0) {
    const std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(row) + c0 * static_cast<int64_t>(sizeof(T));
    return lo >= reinterpret_cast<std::uintptr_t>(x) &&
                   lo + reach * sizeof(T) <= reinterpret_cast<std::uintptr_t>(x_end)
               ? 1
               : 2;
  };
  int64_t ow = 0;
  if (pw > 0) {  // block 0 holds the left padding (pw = 1); its loads start one before the row
    const int e0 = edge(-pw) == 1 && -pw + reach - 1 <= W ? 0 : edge(-pw);
    if (e0 == 0)
      hblock_s2<S, WithIdx, KW, NanSafe, true, 0>(row, -pw, W, first, hvs, his, nanm);
    else if (e0 == 1)
      hblock_s2<S, WithIdx, KW, NanSafe, true, 1>(row, -pw, W, first, hvs, his, nanm);
    else
      hblock_s2<S, WithIdx, KW, NanSafe, true, 2>(row, -pw, W, first, hvs, his, nanm);
    ow = N;
    first = S::iadd(first, step);
  }
  for (; ow < oe; ow += N, first = S::iadd(first, step))
    hblock_s2<S, WithIdx, KW, NanSafe, false, 0>(row, 2 * ow - pw, W, first, hvs + ow, his + ow, nanm);
  for (; ow < owv; ow += N, first = S::iadd(first, step)) {
    if (edge(2 * ow - pw) == 1)
      hblock_s2<S, WithIdx, KW, NanSafe, false, 1>(row, 2 * ow - pw, W, first, hvs + ow, his + ow, nanm);
    else
      hblock_s2<S, WithIdx, KW, NanSafe, false, 2>(row, 2 * ow - pw, W, first, hvs + ow, his + ow, nanm);
  }
  const int64_t c_last = 2 * owv - pw;  // used by the last block (kw = 3), after its checked pair
  return S::any(nanm) || (!NanSafe && KW == 3 && c_last < W && std::isnan(row[c_last]));
}

template <class S, bool WithIdx, int KW>
void fwd_s2_impl(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  using T = typename S::T;
  using IT = typename S::IT;
  using V = typename S::R;
  using I = typename S::I;
  using M = typename S::M;
  constexpr int N = S::N;
  constexpr IT kNoIndex = std::numeric_limits<IT>::max();
  static_assert(KW == 2 || KW == 3, "kw = 2 or 3 (dw = 1)");
  const int64_t H = p.H, W = p.W, OH = p.OH, OW = p.OW, kh = p.kh, sh = p.sh, ph = p.ph, pw = p.pw, dh = p.dh;
  const T* const x_end = x + p.N * p.C * H * W;
  const int64_t owv = (OW + N - 1) / N * N;  // row result length (whole vectors)
  const int64_t span = (kh - 1) * dh + 1;    // input rows one window spans
  int64_t ring = 1;                          // ring slots: a power of two >= span (slot = row & (ring - 1))
  while (ring < span) ring *= 2;
  const int64_t out_bytes = p.N * p.C * OH * OW * static_cast<int64_t>(sizeof(T) + (WithIdx ? sizeof(int64_t) : 0));
  const bool stream = out_bytes >= kStreamBytes;
  // Interior blocks of a row end at oe: every used column (the even lanes) inside the row, every
  // loaded one inside x. A block loads columns [c0, c0 + reach), c0 = 2 * ow - pw, and uses all but
  // the last; that one may be the next row's first element, except after the last row of x (oe1).
  const int64_t reach = (KW - 1) + 2 * N;
  int64_t oe = 0, oe1 = 0;
  for (int64_t ow = 0; ow < owv; ow += N) {
    if (2 * ow - pw >= 0 && 2 * ow - pw + reach - 1 <= W) oe = ow + N;
    if (2 * ow - pw >= 0 && 2 * ow - pw + reach <= W) oe1 = ow + N;
  }

  parallel_for(p.N * p.C * OH, OW * kh * KW, [=](int64_t b, int64_t e) {
    // ring slot s: values hv + s * owv, indices hi + s * owv (64-byte aligned block)
    const size_t s_hv = (static_cast<size_t>(ring * owv) * sizeof(T) + 63) / 64 * 64;
    const size_t s_hi = WithIdx ? static_cast<size_t>(ring * owv) * sizeof(IT) : 0;
    std::vector<unsigned char> block(s_hv + s_hi + 64);
    unsigned char* const base = block.data() + (64 - reinterpret_cast<std::uintptr_t>(block.data()) % 64) % 64;
    T* const hv = reinterpret_cast<T*>(base);
    IT* const hi = reinterpret_cast<IT*>(base + s_hv);
    std::vector<int64_t> tag(static_cast<size_t>(ring), -1);  // plane * H + input row held by each slot
    std::vector<char> rnan(static_cast<size_t>(ring), 0);     // whether that row result holds NaN
    std::vector<const T*> rv(static_cast<size_t>(kh));        // row results of the window's valid rows
    std::vector<const IT*> ri(static_cast<size_t>(kh));
    T tv[N];
    int64_t ti[N];

    int64_t nc = b / OH, oh = b % OH, nc2 = (b + kPrefetchRows) / OH, oh2 = (b + kPrefetchRows) % OH;
    for (int64_t t = b; t < e; ++t, ++oh, ++oh2) {
      if (oh == OH) oh = 0, ++nc;
      if (oh2 == OH) oh2 = 0, ++nc2;
      const T* const xp = x + nc * H * W;
      // Prefetch the input rows of the output row kPrefetchRows ahead (see fwd_impl), only those
      // that the row before it (prefetched one iteration earlier) does not read.
      if (t + kPrefetchRows < e) {
        const char* x2 = reinterpret_cast<const char*>(x + nc2 * H * W);
        const int64_t seen = oh2 > 0 && t > b ? (oh2 - 1) * sh - ph + (kh - 1) * dh : -1;  // its last row
        for (int64_t i = 0; i < kh; ++i) {
          const int64_t ih = oh2 * sh - ph + i * dh;
          if (ih < 0 || ih >= H || (ih <= seen && dh == 1)) continue;
          const std::uintptr_t r0 = reinterpret_cast<std::uintptr_t>(x2 + ih * W * static_cast<int64_t>(sizeof(T)));
          const std::uintptr_t r1 = r0 + static_cast<std::uintptr_t>(W) * sizeof(T);
          for (std::uintptr_t a = r0 & ~std::uintptr_t(63); a < r1; a += 64)
            _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
        }
      }
      // horizontal pass of the window's valid rows not already in the ring
      int64_t nr = 0;
      bool nan = false;
      for (int64_t i = 0; i < kh; ++i) {
        const int64_t ih = oh * sh - ph + i * dh;
        if (ih < 0 || ih >= H) continue;
        const int64_t s = ih & (ring - 1);
        T* const hvs = hv + s * owv;
        IT* const his = WithIdx ? hi + s * owv : nullptr;
        if (tag[s] != nc * H + ih) {
          const T* row = xp + ih * W;
          const int64_t oer = row + W < x_end ? oe : oe1;
          bool rn = hrow_s2<S, WithIdx, KW, false>(row, x, x_end, ih * W, W, owv, oer, pw, hvs, his);
          if (rn) rn = hrow_s2<S, WithIdx, KW, true>(row, x, x_end, ih * W, W, owv, oer, pw, hvs, his);
          tag[s] = nc * H + ih;
          rnan[s] = rn;
        }
        nan |= rnan[s] != 0;
        rv[nr] = hvs;
        ri[nr] = his;
        ++nr;
      }
      // vertical pass (top-down: the first row wins ties) and the output row
      T* const yr = y + t * OW;
      int64_t* const ir = WithIdx ? idx + t * OW : nullptr;
      // whole-vector stores stay aligned along the row when its start is
      const bool ys = stream && reinterpret_cast<std::uintptr_t>(yr) % sizeof(V) == 0;
      const bool is = stream && WithIdx && reinterpret_cast<std::uintptr_t>(ir) % sizeof(V) == 0;
      if (nr == 0) {  // the window misses every input row (dilation): -inf, index -1
        std::fill(yr, yr + OW, -std::numeric_limits<T>::infinity());
        if (WithIdx) std::fill(ir, ir + OW, int64_t(-1));
        continue;
      }
      // dw = 1 and pw <= kw / 2: every output has a real column, no kNoIndex to map to -1
      constexpr bool kSentinel = false;
      // A row's last, partial vector may be stored whole when the next row is this thread's too
      // and wide enough to take the excess (it overwrites it later).
      const bool spill = t + 1 < e && OW >= N;
      // Safe: NaN-aware compares; NR: the number of rows when fixed at compile time (unrolled), 0 = nr
      auto vpass = [&](auto safe, auto nrc) {
        constexpr bool Safe = decltype(safe)::value;
        constexpr int NR = decltype(nrc)::value;
        const T* const v0 = rv[0];
        const T* const v1 = NR >= 2 ? rv[1] : nullptr;
        const T* const v2 = NR >= 3 ? rv[2] : nullptr;
        const IT* const i0 = ri[0];
        const IT* const i1 = NR >= 2 ? ri[1] : nullptr;
        const IT* const i2 = NR >= 3 ? ri[2] : nullptr;
        auto fold = [&](const T* vr, const IT* ir_, int64_t ow, V& acc, I& ia) {
          const V v = S::load(vr + ow);
          const M m = take_s2<S, Safe>(v, acc);
          acc = S::blend(acc, v, m);
          if (WithIdx) ia = S::iblend(ia, S::iload(ir_ + ow), m);
        };
        for (int64_t ow = 0; ow < OW; ow += N) {
          V acc = S::load(v0 + ow);
          I ia{};
          if (WithIdx) ia = S::iload(i0 + ow);
          if (NR >= 2) fold(v1, i1, ow, acc, ia);
          if (NR >= 3) fold(v2, i2, ow, acc, ia);
          if (NR == 0)
            for (int64_t r = 1; r < nr; ++r) fold(rv[r], ri[r], ow, acc, ia);
          acc = S::unzip_fix(acc);
          if (WithIdx) ia = S::iunzip_fix(ia);
          if (ow + N <= OW) {
            if (ys)
              S::stream(yr + ow, acc);
            else
              S::store(yr + ow, acc);
            if (WithIdx) {
              if (is)
                store_idx<S, true, kSentinel>(ir + ow, ia, kNoIndex);
              else
                store_idx<S, false, kSentinel>(ir + ow, ia, kNoIndex);
            }
          } else if (spill) {  // the lanes past the row land in the next row, written after this one
            S::store(yr + ow, acc);
            if (WithIdx) store_idx<S, false, kSentinel>(ir + ow, ia, kNoIndex);
          } else {
            S::store(tv, acc);
            std::memcpy(yr + ow, tv, static_cast<size_t>(OW - ow) * sizeof(T));
            if (WithIdx) {
              store_idx<S, false, kSentinel>(ti, ia, kNoIndex);
              std::memcpy(ir + ow, ti, static_cast<size_t>(OW - ow) * sizeof(int64_t));
            }
          }
        }
      };
      using C3 = std::integral_constant<int, 3>;
      using C2 = std::integral_constant<int, 2>;
      using C0 = std::integral_constant<int, 0>;
      if (nan)
        vpass(std::true_type{}, C0{});
      else if (nr == 3)
        vpass(std::false_type{}, C3{});
      else if (nr == 2)
        vpass(std::false_type{}, C2{});
      else
        vpass(std::false_type{}, C0{});
    }
    if (stream) _mm_sfence();  // order the streaming stores before the parallel region's join
  });
}

// 2x2 window, stride 2, no padding, no dilation (LeNet's pools) on short rows (OW <= 2N: 28-, 24-
// and 10-wide maps). Per output row and N outputs: the two input rows' 2N columns are loaded with
// lane masks (no scalar tail: on AVX-512 a 28-wide row is one vector of 16 and 12 scalar columns
// in fwd_impl, which made this pool 2-3x slower than on AVX2), split into even / odd lanes, and the
// four window elements are folded in scan order (0,0), (0,1), (1,0), (1,1) with the strict
// "better" test: the first maximum wins and NaN propagates, exactly as the reference, with no index
// comparisons. The winner's offset in the window (0, 1, W, W + 1) is tracked per lane.
template <class S, bool WithIdx>
void fwd_k2s2_short(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  using T = typename S::T;
  using IT = typename S::IT;
  using V = typename S::R;
  using I = typename S::I;
  constexpr int N = S::N;
  const int64_t H = p.H, W = p.W, OH = p.OH, OW = p.OW;
  const T ninf = -std::numeric_limits<T>::infinity();
  parallel_for(p.N * p.C * OH, OW * 4, [=](int64_t b, int64_t e) {
    const I lane2 = S::ieven(S::iota(), S::iadd(S::iota(), S::iset1(N)));  // 2 * lane, in S::even's lane order
    const I c1 = S::iset1(1), cW = S::iset1(static_cast<IT>(W)), cW1 = S::iset1(static_cast<IT>(W + 1));
    int64_t ti[N];
    int64_t nc = b / OH, oh = b % OH;
    for (int64_t t = b; t < e; ++t, ++oh) {
      if (oh == OH) oh = 0, ++nc;
      const T* const r0 = x + (nc * H + 2 * oh) * W;
      const T* const r1 = r0 + W;
      T* const yr = y + t * OW;
      for (int64_t ow = 0; ow < OW; ow += N) {
        const int64_t n = OW - ow < N ? OW - ow : N;  // outputs in this block: input columns [2ow, 2ow + 2n)
        const int64_t c0 = 2 * ow;
        V a0, b0, a1, b1;
        if (n == N) {
          a0 = S::load(r0 + c0), b0 = S::load(r0 + c0 + N), a1 = S::load(r1 + c0), b1 = S::load(r1 + c0 + N);
        } else {
          const int ha = static_cast<int>(2 * n < N ? 2 * n : N), hb = static_cast<int>(2 * n > N ? 2 * n - N : 0);
          a0 = S::load_part(r0 + c0, 0, ha, ninf), a1 = S::load_part(r1 + c0, 0, ha, ninf);
          if (hb > 0) {
            b0 = S::load_part(r0 + c0 + N, 0, hb, ninf), b1 = S::load_part(r1 + c0 + N, 0, hb, ninf);
          } else {
            b0 = b1 = S::set1(ninf);
          }
        }
        V acc = S::even(a0, b0);
        I code = S::iset1(0);
        auto fold = [&](V v, I c) {
          const auto m = take<S>(v, acc);
          acc = S::blend(acc, v, m);
          if (WithIdx) code = S::iblend(code, c, m);
        };
        fold(S::odd(a0, b0), c1);
        fold(S::even(a1, b1), cW);
        fold(S::odd(a1, b1), cW1);
        acc = S::unzip_fix(acc);
        I iv{};
        if (WithIdx) iv = S::iunzip_fix(S::iadd(S::iadd(code, lane2), S::iset1(static_cast<IT>((2 * oh) * W + c0))));
        if (n == N) {
          S::store(yr + ow, acc);
          if (WithIdx) S::template store_i64<false>(idx + t * OW + ow, iv);
        } else {
          S::store_n(yr + ow, acc, static_cast<int>(n));
          if (WithIdx) {
            S::template store_i64<false>(ti, iv);
            std::memcpy(idx + t * OW + ow, ti, static_cast<size_t>(n) * sizeof(int64_t));
          }
        }
      }
    }
  });
}

template <class S>
bool fwd(const Pool2dShape& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  if (p.H * p.W >= static_cast<int64_t>(std::numeric_limits<typename S::IT>::max()))
    return false;  // index lanes too narrow
  // fwd_s2_impl: stride 2, kw = 2 or 3 (dw = 1), rows of 3 or more vectors (chosen from bench/:
  // below that its per-row work outweighs the vertical-first pass of fwd_impl)
  const bool s2 = p.sw == 2 && p.dw == 1 && (p.kw == 2 || p.kw == 3) && p.OW > 2 * S::N;
  // fwd_k2s2_short: 2x2/s2 without padding or dilation on rows of at most 2 vectors of outputs
  const bool k2s2 = p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0 && p.dh == 1 &&
                    p.dw == 1 && p.OW <= 2 * S::N && 2 * p.OW <= p.W &&
                    2 * p.OH <= p.H;  // (ceil_mode may add a window)
  if (k2s2) {
    if (idx)
      fwd_k2s2_short<S, true>(p, x, y, idx);
    else
      fwd_k2s2_short<S, false>(p, x, y, idx);
  } else if (s2 && p.kw == 3) {
    if (idx)
      fwd_s2_impl<S, true, 3>(p, x, y, idx);
    else
      fwd_s2_impl<S, false, 3>(p, x, y, idx);
  } else if (s2) {
    if (idx)
      fwd_s2_impl<S, true, 2>(p, x, y, idx);
    else
      fwd_s2_impl<S, false, 2>(p, x, y, idx);
  } else if (idx) {
    fwd_impl<S, true>(p, x, y, idx);
  } else {
    fwd_impl<S, false>(p, x, y, idx);
  }
  return true;
}

template <typename T>
bool bwd(const Pool2dShape& p, const T* gy, const int64_t* idx, T* gx) {
  const int64_t plane = p.H * p.W, oplane = p.OH * p.OW;
  parallel_for(p.N * p.C, plane + oplane, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      T* g = gx + nc * plane;
      std::memset(g, 0, static_cast<size_t>(plane) * sizeof(T));  // plane stays in cache for the scatter
      const T* gyp = gy + nc * oplane;
      const int64_t* ip = idx + nc * oplane;
      for (int64_t o = 0; o < oplane; ++o) g[ip[o]] += gyp[o];
    }
  });
  return true;
}

}  // namespace
}  // namespace pool_simd
}  // namespace cnnfast
