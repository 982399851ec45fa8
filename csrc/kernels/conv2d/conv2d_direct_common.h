// Shared pieces of the direct conv2d kernels (see conv2d_direct.h for the design): scratch
// workspaces, the padded phase-split row copies, and the register-blocked microkernels (row_engine,
// dot_block) that the depthwise, small-C and small-plane kernels are built from.
//
// Everything is in an anonymous namespace: each ISA file gets its own copy compiled with its own
// flags, so the linker can never pick an AVX-512 instantiation for the AVX2 path.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/parallel.h"
#include "common/portable.h"
#include "common/simd.h"
#include "dispatch/heuristics.h"
#include "kernels/conv2d/conv2d.h"

namespace cnnfast {
namespace direct {
namespace {

// ------------------------------------------------------------------------------------------
// Small helpers (local, so no std:: template is instantiated with two different ISA flag sets).
// ------------------------------------------------------------------------------------------
inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

template <typename T>
void fill_zero(T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = T(0);
}

// Prefetches the 64-byte lines of [p, p + bytes) into L2 or closer: for reading (Rw = 0) or, where the
// caller is about to store there, for writing (Rw = 1: the lines arrive owned). The one line walk of
// RangePrefetch and of dw_chain's row prefetch (kernels/dwchain/dwchain_impl.h).
template <int Rw>
CNNFAST_FORCE_INLINE void prefetch_bytes(const void* p, int64_t bytes) {
  const char* a = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(a + off, Rw, 2);
}

// Software prefetch for kernels that walk a unit of work (a block of planes, a plane's rows) in
// `steps` steps: at each step a slice of the next unit's input (read, into L2) and of this unit's
// output (for writing; `lead` slices ahead of the step, for kernels that store as they go). The
// input's first read from memory then overlaps the arithmetic instead of following it, and the
// stores find their lines already owned: on the Xeon of the AVX-512 results, where one core
// streams 20-29 GB/s, the depthwise channel-lanes kernels ran 1.2-1.6x faster with both.
struct RangePrefetch {
  const char* in = nullptr;
  char* out = nullptr;
  int64_t in_lines = 0, out_lines = 0, in_per = 0, out_per = 0, out_first = 0, in_done = 0, out_done = 0;
  RangePrefetch() = default;
  RangePrefetch(const void* next_in, int64_t in_bytes, void* this_out, int64_t out_bytes, int64_t steps,
                int64_t lead = 0)
      : in(static_cast<const char*>(next_in)),
        out(static_cast<char*>(this_out)),
        in_lines(next_in ? (in_bytes + 127) / 64 : 0),
        out_lines(this_out ? (out_bytes + 127) / 64 : 0),
        in_per(ceil_div(in_lines, imax(steps, 1))),
        out_per(ceil_div(out_lines, imax(steps, 1))),
        out_first(out_per * (1 + lead)) {}
  void step() {
    const int64_t ie = imin(in_lines, in_done + in_per);
    if (ie > in_done) prefetch_bytes<0>(in + in_done * 64, (ie - in_done) * 64);
    in_done = imax(in_done, ie);
    const int64_t oe = imin(out_lines, out_done ? out_done + out_per : out_first);
    if (oe > out_done) prefetch_bytes<1>(out + out_done * 64, (oe - out_done) * 64);
    out_done = imax(out_done, oe);
  }
};

// Carves 64-byte-aligned arrays out of one block. With base == 0 it only measures, so the same
// code computes the per-thread workspace size and then hands out the pointers.
struct Arena {
  uintptr_t base = 0;
  size_t off = 0;
  template <typename U>
  U* take(int64_t n) {
    off = static_cast<size_t>(round_up(static_cast<int64_t>(off), 64));
    U* p = reinterpret_cast<U*>(base + off);
    off += static_cast<size_t>(n) * sizeof(U);
    return p;
  }
};

// One malloc'd workspace: `shared` bytes, then `per_thread` bytes for each of `threads` threads.
class Workspace {
 public:
  Workspace(size_t shared, size_t per_thread, int threads)
      : shared_(round_up(static_cast<int64_t>(shared), 64)), per_(round_up(static_cast<int64_t>(per_thread), 64)) {
    mem_ = std::malloc(static_cast<size_t>(shared_ + per_ * threads) + 64);
  }
  ~Workspace() { std::free(mem_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  bool ok() const { return mem_ != nullptr; }
  uintptr_t shared() const { return static_cast<uintptr_t>(round_up(reinterpret_cast<uintptr_t>(mem_), 64)); }
  uintptr_t thread(int t) const { return shared() + static_cast<uintptr_t>(shared_ + per_ * t); }

 private:
  int64_t shared_, per_;
  void* mem_ = nullptr;
};

// Pointer into the shared part of a Workspace, from an offset taken by a measuring Arena.
template <typename U>
U* rebase(const Workspace& ws, U* measured) {
  return reinterpret_cast<U*>(ws.shared() + reinterpret_cast<uintptr_t>(measured));
}

// plan_threads / run_parallel (the per-thread-workspace form of parallel_for): common/parallel.h.

// How many row chunks to cut each of `planes` planes of `rows` rows into, so that there are
// enough work units to balance the threads (a single 3-channel image must use both cores).
// 8 units per thread: a 9:8 imbalance at worst, and the per-chunk overhead (refilling the row
// ring) stays negligible. Depends only on max_threads(), never on results.
inline int64_t row_chunks(int64_t planes, int64_t rows) {
  const int64_t want = 8 * static_cast<int64_t>(max_threads());
  if (planes >= want) return 1;
  return imax(1, imin(rows, ceil_div(want, planes)));
}

// Ring of L row buffers indexed by key mod L. A pass needs at most `window` consecutive keys at
// once (the rows under one kernel window), which then occupy distinct slots. L is `window`
// rounded up to a power of two so the slot is a mask, not a division.
inline int64_t ring_size(int64_t window) {
  int64_t L = 1;
  while (L < window) L *= 2;
  return L;
}
template <typename T>
struct RowCache {
  T* buf = nullptr;
  int64_t* tags = nullptr;
  int64_t L = 1, stride = 0;  // L: a power of two
  void reset() {
    for (int64_t i = 0; i < L; ++i) tags[i] = -1;
  }
  template <typename Fill>
  const T* get(int64_t key, const Fill& fill) {
    const int64_t s = key & (L - 1);
    T* p = buf + s * stride;
    if (tags[s] != key) {
      fill(p, key);
      tags[s] = key;
    }
    return p;
  }
};

// Padded, phase-split copy of one input row: dst[q*plen + j] = x[j*sw + q - pw], 0 outside [0, W),
// for j < need (rounded up to N at most); the rest of each phase is left as it is (zeroed once).
// Stride 2 (every strided MobileNet/ResNet layer) deinterleaves with vector shuffles: a scalar
// copy would cost more than the convolution itself for a 3x3 kernel.
template <class V>
void fill_phased(typename V::T* dst, const typename V::T* src, int64_t W, int64_t pw, int64_t sw, int64_t plen,
                 int64_t need) {
  using T = typename V::T;
  if (sw == 2) {
    constexpr int N = V::N;
    T* even = dst;
    T* odd = dst + plen;
    int64_t j = 0;
    for (; j < need && 2 * j - pw < 0; ++j) {  // left padding
      even[j] = T(0);
      odd[j] = 2 * j + 1 - pw >= 0 && 2 * j + 1 - pw < W ? src[2 * j + 1 - pw] : T(0);
    }
    for (; j < need && 2 * (j + N) - pw <= W; j += N) V::deinterleave2(src + 2 * j - pw, even + j, odd + j);
    for (; j < need; ++j) {
      const int64_t i = 2 * j - pw;
      even[j] = i < W ? src[i] : T(0);
      odd[j] = i + 1 < W ? src[i + 1] : T(0);
    }
    return;
  }
  if (sw == 1) {
    const int64_t lead = imin(pw, need);
    const int64_t n = imax(0, imin(W, need - pw));
    fill_zero(dst, lead);
    if (n > 0) std::memcpy(dst + pw, src, static_cast<size_t>(n) * sizeof(T));
    const int64_t tail0 = imax(lead, pw + n);
    fill_zero(dst + tail0, need - tail0);
    return;
  }
  for (int64_t q = 0; q < sw; ++q) {
    T* d = dst + q * plen;
    for (int64_t j = 0; j < need; ++j) {
      const int64_t iw = j * sw + q - pw;
      d[j] = (iw >= 0 && iw < W) ? src[iw] : T(0);
    }
  }
}

// dst[0, lead) = 0, dst[lead, lead+n) = src, dst[lead+n, len) = 0.
template <typename T>
void fill_padded(T* dst, const T* src, int64_t lead, int64_t n, int64_t len) {
  fill_zero(dst, lead);
  std::memcpy(dst + lead, src, static_cast<size_t>(n) * sizeof(T));
  fill_zero(dst + lead + n, len - lead - n);
}

// ------------------------------------------------------------------------------------------
// Microkernels.
// ------------------------------------------------------------------------------------------

// Accumulator registers a KB x NV block may use: 12 of AVX2's 16 registers, 24 of AVX-512's 32
// (the rest hold the NV inputs, or the KB broadcast weights, and addresses). With 24, a block loads
// KB + NV <= 10 vectors per 24 FMAs instead of 7 per 12, so it is bound by the FMA ports, not loads.
template <class V>
constexpr int kAccRegs = sizeof(typename V::R) == 64 ? 24 : 12;

// Source rows are readable this far past the last column a pass needs (ceil(J/N)*N): a row's
// last block may compute up to NV-1 <= 7 vectors more than it stores (see engine_cols).
template <class V>
constexpr int64_t kOverrun = 8 * V::N;

// KB output rows x NV vectors of columns starting at j:
//   dst[kb][j + i] = act(bias[kb] + sum_t wt[t][kb] * src[t][j + i])   for i < cols <= NV*N.
// Reads src[t][j, j + NV*N); dst[kb] == nullptr: not stored.
template <class V, int KB, int NV>
inline void engine_block(int64_t nt, const typename V::T* const* src, const typename V::T* const* wt,
                         const typename V::T* bias, bool relu, typename V::T* const* dst, int64_t j, int64_t cols) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int N = V::N;
  R acc[KB][NV];
  for (int kb = 0; kb < KB; ++kb) {
    const R b = V::set1(bias[kb]);
    for (int v = 0; v < NV; ++v) acc[kb][v] = b;
  }
  for (int64_t t = 0; t < nt; ++t) {
    const T* s = src[t] + j;
    const T* w = wt[t];
    R xv[NV];
    for (int v = 0; v < NV; ++v) xv[v] = V::load(s + v * N);
    for (int kb = 0; kb < KB; ++kb) {
      const R wb = V::set1(w[kb]);
      for (int v = 0; v < NV; ++v) acc[kb][v] = V::fma(wb, xv[v], acc[kb][v]);
    }
  }
  for (int kb = 0; kb < KB; ++kb) {
    if (!dst[kb]) continue;
    T* d = dst[kb] + j;
    for (int v = 0; v < NV; ++v) {
      const R a = relu ? V::relu(acc[kb][v]) : acc[kb][v];
      if ((v + 1) * N <= cols)
        V::store(d + v * N, a);
      else if (v * N < cols)
        V::store_n(d + v * N, a, static_cast<int>(cols - v * N));
    }
  }
}

// Columns [j, J): full blocks of NV vectors, then the remaining `rem` vectors (the last maybe
// partial) in one block of NV if rem > NV/2 (computing at most NV/2 - 1 unused vectors), else
// recursively with NV/2. A short row (a 56-wide MobileNet map: 7 vectors) thus still runs as one
// block of 8 independent accumulator chains instead of latency-bound chains of 4, 2 and 1.
template <class V, int KB, int NV>
void engine_cols(int64_t nt, const typename V::T* const* src, const typename V::T* const* wt, const typename V::T* bias,
                 bool relu, typename V::T* const* dst, int64_t j, int64_t J) {
  constexpr int N = V::N;
  for (; j + NV * N <= J; j += NV * N) engine_block<V, KB, NV>(nt, src, wt, bias, relu, dst, j, NV * N);
  if (j >= J) return;
  if (ceil_div(J - j, N) * 2 > NV || NV == 1)
    engine_block<V, KB, NV>(nt, src, wt, bias, relu, dst, j, J - j);
  else if constexpr (NV > 1)
    engine_cols<V, KB, NV / 2>(nt, src, wt, bias, relu, dst, j, J);
}

// A whole row of J columns for KB output rows. Register budget (AVX2, 16 registers): KB*NV
// accumulators + inputs + 1 broadcast weight; 8 accumulators for KB == 1 hide the 4-cycle FMA
// latency on two FMA pipes, 12 for KB = 4 or 6 load each input once per 4-6 FMAs.
template <class V, int KB>
void row_engine(int64_t nt, const typename V::T* const* src, const typename V::T* const* wt, const typename V::T* bias,
                bool relu, typename V::T* const* dst, int64_t J) {
  constexpr int NV = KB == 1 ? 8 : 12 / KB;
  engine_cols<V, KB, NV>(nt, src, wt, bias, relu, dst, 0, J);
}

// acc[(ka*tslots + slot[tb])*N + lane] += a[ka][i] * b[tb][i] summed over i in [0, nvec*N),
// per lane. KA "a" rows (grad_output rows) times TB taps; accumulators stay in registers for
// the whole row.
template <class V, int KA, int TB>
inline void dot_block(const typename V::T* const* a, const typename V::T* const* b, const int64_t* slot, int64_t nvec,
                      typename V::T* acc, int64_t tslots) {
  using R = typename V::R;
  constexpr int N = V::N;
  R c[KA][TB];
  for (int ka = 0; ka < KA; ++ka)
    for (int tb = 0; tb < TB; ++tb) c[ka][tb] = V::load(acc + (ka * tslots + slot[tb]) * N);
  for (int64_t i = 0; i < nvec; ++i) {
    R av[KA];
#pragma GCC unroll 8
    for (int ka = 0; ka < KA; ++ka) av[ka] = V::load(a[ka] + i * N);
#pragma GCC unroll 12
    for (int tb = 0; tb < TB; ++tb) {
      const R bv = V::load(b[tb] + i * N);
#pragma GCC unroll 8
      for (int ka = 0; ka < KA; ++ka) c[ka][tb] = V::fma(av[ka], bv, c[ka][tb]);
    }
  }
  for (int ka = 0; ka < KA; ++ka)
    for (int tb = 0; tb < TB; ++tb) V::store(acc + (ka * tslots + slot[tb]) * N, c[ka][tb]);
}

// Fixed number of parts a bwd_weight reduction over `rows` rows is split into (so the sum order,
// hence the rounding, never depends on the thread count). 16 keeps both cores busy with a
// 9:8 imbalance at worst while the per-part reduction overhead stays tiny.
inline int64_t weight_splits(int64_t outer, int64_t rows) {
  constexpr int64_t kParts = 16;
  if (outer >= kParts) return 1;
  return imax(1, imin(rows, ceil_div(kParts, outer)));
}

// Geometry of the padded, phase-split input rows shared by the forward and weight passes.
struct XRows {
  int64_t smax;  // largest in-phase offset (S-1)*dw / sw
  int64_t need;  // columns per phase that ceil(OW/N)*N output columns read at any tap
  int64_t plen;  // elements per phase: need + overrun
  int64_t rowlen;
  int64_t L;  // ring size: rows under one kernel window
  template <class V>
  static XRows make(const Conv2dShape& p) {
    XRows g;
    g.smax = (p.S - 1) * p.dw / p.sw;
    g.need = round_up(p.OW, V::N) + g.smax;
    g.plen = round_up(g.need, V::N) + kOverrun<V>;
    g.rowlen = g.plen * p.sw;
    g.L = ring_size((p.R - 1) * p.dh + 1);
    return g;
  }
  // soff[s]: offset of tap s in a phased row (phase (s*dw) % sw, index (s*dw) / sw).
  void tap_offsets(const Conv2dShape& p, int64_t* soff) const {
    for (int64_t s = 0; s < p.S; ++s) soff[s] = (s * p.dw % p.sw) * plen + s * p.dw / p.sw;
  }
};

// groups == C: one input channel per group (the depthwise kernels, conv2d_depthwise.h).
inline bool is_depthwise(const Conv2dShape& p) {
  // groups == C == 1 with several outputs is a dense conv with C == 1: the small-C kernels load
  // each input once for all outputs, so leave it to them.
  return p.groups == p.C && (p.groups > 1 || p.K == 1);
}

// Shared by both weight-gradient kernels: reduce the per-lane accumulators of one work unit into
// `out[t]` for t < ntap, in a fixed lane order.
template <class V>
void reduce_lanes(const typename V::T* acc, int64_t ntap, typename V::T* out) {
  for (int64_t t = 0; t < ntap; ++t) {
    typename V::T s = 0;
    for (int l = 0; l < V::N; ++l) s += acc[t * V::N + l];
    out[t] = s;
  }
}

// Shared by the weight-gradient kernels: gw[k * taps + t] (and gb[k], the bias "tap" t == taps)
// = the sum over the parts u = 0, 1, ... in that order of partial[u * part_stride + k * k_stride + t],
// so the result never depends on how the parts were spread over threads.
template <typename T>
void sum_parts(const T* partial, int64_t parts, int64_t part_stride, int64_t k_stride, int64_t K, int64_t taps, T* gw,
               T* gb) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t t = 0; t <= taps; ++t) {
      T s = 0;
      for (int64_t u = 0; u < parts; ++u) s += partial[u * part_stride + k * k_stride + t];
      if (t < taps)
        gw[k * taps + t] = s;
      else if (gb)
        gb[k] = s;
    }
}

// The K filters of RS taps each rotated by 180 degrees (tap t -> RS - 1 - t), in a malloc'ed array
// the caller frees (null if out of memory): depthwise grad_input as a forward correlation.
template <typename T>
T* flipped_filters(const T* w, int64_t K, int64_t RS) {
  T* wf = static_cast<T*>(std::malloc(static_cast<size_t>(K * RS) * sizeof(T)));
  if (wf)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t t = 0; t < RS; ++t) wf[k * RS + t] = w[k * RS + RS - 1 - t];
  return wf;
}

// Row copies shared by the depthwise kernels (conv2d_depthwise.h, conv2d_dw_rows.h).
// dst[0, n) = src[0, n) in whole vectors (a memcpy call costs more than a 14-column row's
// arithmetic); a partial last vector is copied whole, ending at n, over values just copied
// (AVX2's masked store costs ~14 cycles on AMD Zen 3, see run_positions), or masked if n < N.
template <class V>
inline void copy_row(typename V::T* dst, const typename V::T* src, int64_t n) {
  constexpr int N = V::N;
  int64_t j = 0;
  for (; j + N <= n; j += N) V::store(dst + j, V::load(src + j));
  if (j < n) {
    const int r = static_cast<int>(n - j);
    if (n >= N)
      V::store(dst + n - N, V::load(src + n - N));
    else
      V::store_n(dst + j, V::load_part(src + j, 0, r, typename V::T(0)), r);
  }
}

// One vector pair of deinterleave_row (phase columns j .. j + N) that may reach past either end
// of the row or of need: masked loads, zeros outside [0, W), partial stores past need.
template <class V>
CNNFAST_FORCE_INLINE void deinterleave_edge(typename V::T* even, typename V::T* odd, const typename V::T* src,
                                            int64_t W, int64_t pw, int64_t need, int64_t j) {
  using T = typename V::T;
  constexpr int N = V::N;
  auto part = [&](int64_t base) {  // src[base, base + N), zero outside [0, W)
    const int64_t lo = imin(N, imax(0, -base)), hi = imax(lo, imin(N, W - base));
    if (lo == 0 && hi == N) return V::load(src + base);
    if (lo == hi) return V::zero();
    return V::load_part(src + base, static_cast<int>(lo), static_cast<int>(hi), T(0));
  };
  const int64_t base = 2 * j - pw;
  const typename V::R a = part(base), b = part(base + N);
  const typename V::R e = V::unzip_fix(V::even(a, b)), o = V::unzip_fix(V::odd(a, b));
  if (j + N <= need) {
    V::store(even + j, e), V::store(odd + j, o);
  } else {
    V::store_n(even + j, e, static_cast<int>(need - j)), V::store_n(odd + j, o, static_cast<int>(need - j));
  }
}

// even[j] = src[2j - pw], odd[j] = src[2j + 1 - pw] for j < need, 0 outside [0, W): whole
// vectors from masked loads (fill_phased runs a short row -- 28 columns, 14 per phase -- through
// its scalar edge loops). Vectors wholly left of or right of the image stay as they are (zero: see
// dw_fill). On rows of at least 6 vectors the pairs inside the row (both loads in it, whole
// stores) skip deinterleave_edge's tests. chosen because (Xeon, 1 thread, CPU=1 T=1
// bench/ab_builds.py mb112,mb112_n8,lc112s2 chain and dw96_112s2_n1,dw96_112s2_n8 fwd) the 112-wide
// stride-2 layers and chains ran 1.03x-1.10x (AVX-512) and 1.08x-1.21x (AVX2); taken on shorter
// rows too it had cost 56-wide ones 0.86x-0.89x on AVX-512 (with this bound they measure as before).
template <class V>
inline void deinterleave_row(typename V::T* even, typename V::T* odd, const typename V::T* src, int64_t W, int64_t pw,
                             int64_t need) {
  constexpr int N = V::N;
  int64_t j = imax(0, floor_div(pw - 2 * N, 2) + 1) / N * N;
  if (W >= 6 * N) {
    for (; j < need && 2 * j < pw; j += N) deinterleave_edge<V>(even, odd, src, W, pw, need, j);
    for (; j + N <= need && 2 * j - pw + 2 * N <= W; j += N) {
      const typename V::T* s = src + 2 * j - pw;
      const typename V::R a = V::load(s), b = V::load(s + N);
      V::store(even + j, V::unzip_fix(V::even(a, b))), V::store(odd + j, V::unzip_fix(V::odd(a, b)));
    }
  }
  for (; j < need && 2 * j - pw < W; j += N) deinterleave_edge<V>(even, odd, src, W, pw, need, j);
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
