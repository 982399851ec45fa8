// Direct (no im2col, no GEMM) conv2d kernels for the shapes a GEMM handles badly:
//
//   * depthwise: groups == C (one input channel per group), any depth multiplier M = K / C.
//     Sobel/blur filters on images (cnnfast.filters) and MobileNet-style layers.
//   * small-C dense: groups == 1 and C <= kSmallCMaxChannels (LeNet c1, the ResNet stem): the
//     reduction C*R*S is too short for a GEMM to reach its peak.
//
// Everything here is written once, templated on a small vector type V (F32x8/F64x4 for AVX2,
// F32x16/F64x8 for AVX-512), and instantiated by the thin files conv2d_direct_<isa>.cpp, so the
// AVX2 build and its tests validate the algorithm the AVX-512 build runs.
//
// The one idea behind all passes: vectorise along a row (W), and never branch on borders in the
// inner loop. Every input row a pass reads is first copied into a small per-thread buffer that
// is zero-padded and, for a column stride sw > 1, split into sw phases (phase q holds padded
// columns q, q+sw, q+2sw, ...). Tap (r, s) of output column ow then reads phase (s*dw) % sw at
// index ow + (s*dw) / sw: a contiguous, unmasked vector load whatever the padding, stride or
// dilation. Copied rows live in a small ring (RowCache) so each is copied once per plane.
//
//   forward       y_row[j]  = bias + sum over taps t of w_t * src_t[j]                (row_engine)
//   bwd_input     the same engine on zero-padded grad_output rows, one pass per column phase of
//                 grad_input (the taps of phase q are the s with (s*dw) % sw == q)
//   bwd_weight    gw_t += dot(gy_row, src_t) with vector accumulators per tap      (dot_block);
//                 grad_bias is the tap whose source row is all ones.
//
// Results do not depend on the thread count: rows are computed identically whatever the
// partition, and bwd_weight splits its reduction into a fixed number of parts summed in order.
//
// Contract (conv2d.h): raw pointers, never throw. Scratch comes from malloc; if that fails the
// kernel declines (returns false) before writing anything, and the next implementation runs.
//
// Everything is in an anonymous namespace: each ISA file gets its own copy compiled with its own
// flags, so the linker can never pick an AVX-512 instantiation for the AVX2 path.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/parallel.h"
#include "kernels/conv2d/conv2d.h"

namespace cnnfast {
namespace direct {
namespace {

// ------------------------------------------------------------------------------------------
// Vector types: just what the algorithms below need.
// ------------------------------------------------------------------------------------------
#if defined(__AVX2__) && defined(__FMA__)
struct F32x8 {
  using T = float;
  using R = __m256;
  static constexpr int N = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R set1(T v) { return _mm256_set1_ps(v); }
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, R v) { _mm256_storeu_ps(p, v); }
  static void store_n(T* p, R v, int n) {  // first n lanes, 0 < n < N
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(p, m, v);
  }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  // max(0, v) keeping NaN and -0.0 exactly as `v < 0 ? 0 : v` does (vmaxps returns its second
  // operand when either is NaN or both are zeros).
  static R relu(R v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }
};
struct F64x4 {
  using T = double;
  using R = __m256d;
  static constexpr int N = 4;
  static R zero() { return _mm256_setzero_pd(); }
  static R set1(T v) { return _mm256_set1_pd(v); }
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, R v) { _mm256_storeu_pd(p, v); }
  static void store_n(T* p, R v, int n) {
    const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    _mm256_maskstore_pd(p, m, v);
  }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R relu(R v) { return _mm256_max_pd(_mm256_setzero_pd(), v); }
};
#endif

#if defined(__AVX512F__)
struct F32x16 {
  using T = float;
  using R = __m512;
  static constexpr int N = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(T v) { return _mm512_set1_ps(v); }
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R v) { _mm512_storeu_ps(p, v); }
  static void store_n(T* p, R v, int n) { _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R relu(R v) { return _mm512_max_ps(_mm512_setzero_ps(), v); }
};
struct F64x8 {
  using T = double;
  using R = __m512d;
  static constexpr int N = 8;
  static R zero() { return _mm512_setzero_pd(); }
  static R set1(T v) { return _mm512_set1_pd(v); }
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, R v) { _mm512_storeu_pd(p, v); }
  static void store_n(T* p, R v, int n) { _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1u), v); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R relu(R v) { return _mm512_max_pd(_mm512_setzero_pd(), v); }
};
#endif

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

// Threads a region over `units` work items would use: as parallel_for decides (max_threads(),
// at most one per unit, serial below kMinParallelWork or inside another parallel region).
inline int plan_threads(int64_t units, int64_t total_work) {
#ifdef _OPENMP
  if (omp_in_parallel() || total_work < kMinParallelWork) return 1;
  return static_cast<int>(imax(1, imin(max_threads(), units)));
#else
  (void)units;
  (void)total_work;
  return 1;
#endif
}

// parallel_for with the thread index passed along (for the per-thread workspace): f(b, e, tid)
// on contiguous, statically scheduled chunks of [0, units); tid < nt.
template <typename F>
void run_parallel(int nt, int64_t units, const F& f) {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      const int64_t T = omp_get_num_threads();
      const int64_t chunk = ceil_div(units, T);
      const int64_t b = t * chunk, e = imin(b + chunk, units);
      if (b < e) f(b, e, t);
    }
    return;
  }
#else
  (void)nt;
#endif
  f(0, units, 0);
}

// How many row chunks to cut each of `planes` planes of `rows` rows into, so that there are
// enough work units to balance the threads (a single 3-channel image must use both cores).
// 8 units per thread: a 9:8 imbalance at worst, and the per-chunk overhead (refilling the row
// ring) stays negligible. Depends only on max_threads(), never on results.
inline int64_t row_chunks(int64_t planes, int64_t rows) {
  const int64_t want = 8 * static_cast<int64_t>(max_threads());
  if (planes >= want) return 1;
  return imax(1, imin(rows, ceil_div(want, planes)));
}

// Ring of `L` row buffers indexed by key % L. A pass needs at most L consecutive keys at once
// (the rows under one kernel window), which then occupy distinct slots.
template <typename T>
struct RowCache {
  T* buf = nullptr;
  int64_t* tags = nullptr;
  int64_t L = 1, stride = 0;
  void reset() {
    for (int64_t i = 0; i < L; ++i) tags[i] = -1;
  }
  template <typename Fill>
  const T* get(int64_t key, const Fill& fill) {
    const int64_t s = key % L;
    T* p = buf + s * stride;
    if (tags[s] != key) {
      fill(p, key);
      tags[s] = key;
    }
    return p;
  }
};

// Padded, phase-split copy of one input row: dst[q*plen + j] = x[j*sw + q - pw], 0 outside [0, W).
template <typename T>
void fill_phased(T* dst, const T* src, int64_t W, int64_t pw, int64_t sw, int64_t plen) {
  if (sw == 1) {
    const int64_t lead = imin(pw, plen);
    const int64_t n = imax(0, imin(W, plen - pw));
    fill_zero(dst, lead);
    if (n > 0) std::memcpy(dst + pw, src, static_cast<size_t>(n) * sizeof(T));
    const int64_t tail0 = imax(lead, pw + n);
    fill_zero(dst + tail0, plen - tail0);
    return;
  }
  for (int64_t q = 0; q < sw; ++q) {
    T* d = dst + q * plen;
    for (int64_t j = 0; j < plen; ++j) {
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

// KB output rows x NV vectors of columns starting at j:
//   dst[kb][j + i] = act(bias[kb] + sum_t wt[t][kb] * src[t][j + i]).
// Reads src[t][j, j + NV*N) (the callers' buffers are padded so that is always in bounds);
// writes only `tail` lanes of the last vector when tail > 0. dst[kb] == nullptr: not stored.
template <class V, int KB, int NV>
inline void engine_block(int64_t nt, const typename V::T* const* src, const typename V::T* const* wt,
                         const typename V::T* bias, bool relu, typename V::T* const* dst, int64_t j, int tail) {
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
      if (tail > 0 && v == NV - 1)
        V::store_n(d + v * N, a, tail);
      else
        V::store(d + v * N, a);
    }
  }
}

// A whole row of J columns for KB output rows. Register budget (AVX2, 16 registers): KB*NV
// accumulators + NV inputs + 1 broadcast weight; 8 accumulators for KB == 1 hide the 4-cycle FMA
// latency on two FMA pipes, 12 for KB = 4 or 6 load each input once per 4-6 FMAs.
template <class V, int KB>
void row_engine(int64_t nt, const typename V::T* const* src, const typename V::T* const* wt,
                const typename V::T* bias, bool relu, typename V::T* const* dst, int64_t J) {
  constexpr int N = V::N;
  constexpr int NV = KB == 1 ? 8 : 12 / KB;
  int64_t j = 0;
  for (; j + NV * N <= J; j += NV * N) engine_block<V, KB, NV>(nt, src, wt, bias, relu, dst, j, 0);
  for (; j + N <= J; j += N) engine_block<V, KB, 1>(nt, src, wt, bias, relu, dst, j, 0);
  if (j < J) engine_block<V, KB, 1>(nt, src, wt, bias, relu, dst, j, static_cast<int>(J - j));
}

// acc[(ka*tslots + slot[tb])*N + lane] += a[ka][i] * b[tb][i] summed over i in [0, nvec*N),
// per lane. KA "a" rows (grad_output rows) times TB taps; accumulators stay in registers for
// the whole row.
template <class V, int KA, int TB>
inline void dot_block(const typename V::T* const* a, const typename V::T* const* b, const int64_t* slot,
                      int64_t nvec, typename V::T* acc, int64_t tslots) {
  using R = typename V::R;
  constexpr int N = V::N;
  R c[KA][TB];
  for (int ka = 0; ka < KA; ++ka)
    for (int tb = 0; tb < TB; ++tb) c[ka][tb] = V::load(acc + (ka * tslots + slot[tb]) * N);
  for (int64_t i = 0; i < nvec; ++i) {
    R av[KA];
    for (int ka = 0; ka < KA; ++ka) av[ka] = V::load(a[ka] + i * N);
    for (int tb = 0; tb < TB; ++tb) {
      const R bv = V::load(b[tb] + i * N);
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

// ------------------------------------------------------------------------------------------
// Depthwise: groups == C, one input channel per group, M = K / C outputs per channel.
// ------------------------------------------------------------------------------------------
inline bool is_depthwise(const Conv2dShape& p) {
  // groups == C == 1 with several outputs is a dense conv with C == 1: the small-C kernels load
  // each input once for all outputs, so leave it to them.
  return p.groups == p.C && (p.groups > 1 || p.K == 1);
}

// Geometry of the padded, phase-split input rows shared by the forward and weight passes.
struct XRows {
  int64_t smax;  // largest in-phase offset (S-1)*dw / sw
  int64_t plen;  // elements per phase: enough for ceil(OW/N)*N columns at any tap
  int64_t rowlen;
  int64_t L;  // ring size: rows under one kernel window
  template <class V>
  static XRows make(const Conv2dShape& p) {
    XRows g;
    g.smax = (p.S - 1) * p.dw / p.sw;
    g.plen = round_up(round_up(p.OW, V::N) + g.smax, V::N);
    g.rowlen = g.plen * p.sw;
    g.L = (p.R - 1) * p.dh + 1;
    return g;
  }
  // Source pointer of tap s in a phased row.
  template <typename T>
  const T* tap(const T* row, const Conv2dShape& p, int64_t s) const {
    const int64_t off = s * p.dw;
    return row + (off % p.sw) * plen + off / p.sw;
  }
};

template <class V>
bool dw_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
            typename V::T* y, bool relu) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S;
  const XRows g = XRows::make<V>(p);
  const int64_t planes = p.N * p.K, rc = row_chunks(planes, p.OH), units = planes * rc;
  const int nt = plan_threads(units, planes * p.OH * p.OW * RS);

  auto layout = [&](Arena& a, T*& rows, int64_t*& tags, const T**& src, const T**& wt) {
    rows = a.take<T>(g.L * g.rowlen);
    tags = a.take<int64_t>(g.L);
    src = a.take<const T*>(RS);
    wt = a.take<const T*>(RS);
  };
  Arena measure;
  {
    T* r; int64_t* tg; const T** s; const T** wp;
    layout(measure, r, tg, s, wp);
  }
  Workspace ws(0, measure.off, nt);
  if (!ws.ok()) return false;

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    RowCache<T> cache;
    const T** src;
    const T** wt;
    layout(a, cache.buf, cache.tags, src, wt);
    cache.L = g.L;
    cache.stride = g.rowlen;
    for (int64_t u = b; u < e; ++u) {
      const int64_t plane = u / rc, chunk = u % rc;
      const int64_t n = plane / p.K, k = plane % p.K, c = k / M;
      const int64_t oh0 = chunk * p.OH / rc, oh1 = (chunk + 1) * p.OH / rc;
      const T* xp = x + (n * p.C + c) * p.H * p.W;
      const T* wk = w + k * RS;
      T* yp = y + plane * p.OH * p.OW;
      const T bk[1] = {bias ? bias[k] : T(0)};
      auto fill = [&](T* dst, int64_t ih) { fill_phased(dst, xp + ih * p.W, p.W, p.pw, p.sw, g.plen); };
      cache.reset();
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        int64_t ntaps = 0;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.sh - p.ph + r * p.dh;
          if (ih < 0 || ih >= p.H) continue;
          const T* row = cache.get(ih, fill);
          for (int64_t s = 0; s < p.S; ++s) {
            src[ntaps] = g.tap(row, p, s);
            wt[ntaps++] = wk + r * p.S + s;
          }
        }
        T* d[1] = {yp + oh * p.OW};
        row_engine<V, 1>(ntaps, src, wt, bk, relu, d, p.OW);
      }
    }
  });
  return true;
}

// grad_input of a depthwise conv. Column P of the padded grad_input row (P = iw + pw) receives
// gy[ow] * w[r][s] for every ow*sw + s*dw == P. Split the columns by phase q = P % sw: in phase q
// only the taps with (s*dw) % sw == q contribute, from ow = P/sw - (s*dw)/sw, so phase q is a
// correlation of the zero-padded grad_output row with those taps -- the row engine again.
template <class V>
bool dw_bwd_input(const Conv2dShape& p, const typename V::T* gy, const typename V::T* w, typename V::T* gx) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  const int64_t M = p.K / p.C, RS = p.R * p.S, N = V::N;
  const int64_t smax = (p.S - 1) * p.dw / p.sw;
  // Phase q covers padded columns P = j*sw + q for j in [jlo[q], jhi[q]], i.e. iw in [0, W).
  // sw is at most the padded width, but can be large: keep the per-phase data in the workspace.
  int64_t jhi_max = 0, jmax = 0;
  for (int64_t q = 0; q < p.sw; ++q) {
    const int64_t jlo = p.pw >= q ? ceil_div(p.pw - q, p.sw) : 0;
    const int64_t jhi = floor_div(p.pw + p.W - 1 - q, p.sw);
    jhi_max = imax(jhi_max, jhi);
    jmax = imax(jmax, jhi - jlo + 1);
  }
  const int64_t glen = round_up(imax(smax + jhi_max + N, smax + p.OW), N);
  const int64_t L = ((p.R - 1) * p.dh / p.sh + 1) * M;  // gy rows (oh, m) under one window
  const int64_t tlen = p.sw > 1 ? jmax : 0;
  const int64_t planes = p.N * p.C, rc = row_chunks(planes, p.H), units = planes * rc;
  const int nt = plan_threads(units, p.N * p.K * p.OH * p.OW * RS);

  auto layout = [&](Arena& a, T*& rows, int64_t*& tags, const T**& src, const T**& wt, T*& tmp) {
    rows = a.take<T>(L * glen);
    tags = a.take<int64_t>(L);
    src = a.take<const T*>(M * RS);
    wt = a.take<const T*>(M * RS);
    tmp = a.take<T>(p.sw * tlen);
  };
  Arena measure;
  {
    T* r; int64_t* tg; const T** s; const T** wp; T* tm;
    layout(measure, r, tg, s, wp, tm);
  }
  Workspace ws(0, measure.off, nt);
  if (!ws.ok()) return false;

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    RowCache<T> cache;
    const T** src;
    const T** wt;
    T* tmp;
    layout(a, cache.buf, cache.tags, src, wt, tmp);
    cache.L = L;
    cache.stride = glen;
    const T zero[1] = {T(0)};
    for (int64_t u = b; u < e; ++u) {
      const int64_t plane = u / rc, chunk = u % rc;
      const int64_t n = plane / p.C, c = plane % p.C;
      const int64_t ih0 = chunk * p.H / rc, ih1 = (chunk + 1) * p.H / rc;
      auto fill = [&](T* dst, int64_t key) {
        const int64_t oh = key / M, m = key % M;
        fill_padded(dst, gy + ((n * p.K + c * M + m) * p.OH + oh) * p.OW, smax, p.OW, glen);
      };
      cache.reset();
      for (int64_t ih = ih0; ih < ih1; ++ih) {
        T* gxrow = gx + (plane * p.H + ih) * p.W;
        for (int64_t q = 0; q < p.sw; ++q) {
          const int64_t jlo = p.pw >= q ? ceil_div(p.pw - q, p.sw) : 0;
          const int64_t J = floor_div(p.pw + p.W - 1 - q, p.sw) - jlo + 1;
          if (J <= 0) continue;
          int64_t ntaps = 0;
          for (int64_t r = 0; r < p.R; ++r) {
            const int64_t t = ih + p.ph - r * p.dh;  // = oh * sh
            if (t < 0 || t % p.sh) continue;
            const int64_t oh = t / p.sh;
            if (oh >= p.OH) continue;
            for (int64_t m = 0; m < M; ++m) {
              const T* row = cache.get(oh * M + m, fill);
              const T* wk = w + (c * M + m) * RS + r * p.S;
              for (int64_t s = 0; s < p.S; ++s) {
                const int64_t off = s * p.dw;
                if (off % p.sw != q) continue;
                src[ntaps] = row + smax - off / p.sw + jlo;
                wt[ntaps++] = wk + s;
              }
            }
          }
          T* d[1] = {p.sw == 1 ? gxrow : tmp + q * tlen};
          row_engine<V, 1>(ntaps, src, wt, zero, false, d, J);
        }
        if (p.sw > 1) {
          for (int64_t iw = 0; iw < p.W; ++iw) {
            const int64_t P = iw + p.pw, q = P % p.sw;
            const int64_t jlo = p.pw >= q ? ceil_div(p.pw - q, p.sw) : 0;
            gxrow[iw] = tmp[q * tlen + P / p.sw - jlo];
          }
        }
      }
    }
  });
  return true;
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

template <class V>
bool dw_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                   typename V::T* gb) {
  using T = typename V::T;
  if (!is_depthwise(p)) return false;
  constexpr int TB = 8;  // taps per dot block: 8 accumulators hide the FMA latency (see row_engine)
  const int64_t M = p.K / p.C, RS = p.R * p.S, N = V::N;
  const XRows g = XRows::make<V>(p);
  const int64_t nvec = ceil_div(p.OW, N), vlen = nvec * N;
  const int64_t ntap = RS + 1;            // taps, then the bias "tap" (source row of ones)
  const int64_t tslots = ntap + 1;        // + one dummy slot for padding taps
  const int64_t rows = p.N * p.OH, splits = weight_splits(p.K, rows), units = p.K * splits;
  const int nt = plan_threads(units, rows * p.K * p.OW * RS);

  auto layout = [&](Arena& a, T*& xrows, int64_t*& tags, T*& gyrow, T*& ones, T*& zeros, const T**& src,
                    int64_t*& slot, T*& acc) {
    xrows = a.take<T>(g.L * g.rowlen);
    tags = a.take<int64_t>(g.L);
    gyrow = a.take<T>(vlen);
    ones = a.take<T>(vlen);
    zeros = a.take<T>(vlen);
    src = a.take<const T*>(ntap + TB);
    slot = a.take<int64_t>(ntap + TB);
    acc = a.take<T>(tslots * N);
  };
  Arena measure;
  {
    T *r, *gr, *on, *ze, *ac; int64_t *tg, *sl; const T** s;
    layout(measure, r, tg, gr, on, ze, s, sl, ac);
  }
  Arena shared;
  T* partial = shared.take<T>(units * ntap);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  partial = reinterpret_cast<T*>(ws.shared() + reinterpret_cast<uintptr_t>(partial));

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    RowCache<T> cache;
    T *gyrow, *ones, *zeros, *acc;
    const T** src;
    int64_t* slot;
    layout(a, cache.buf, cache.tags, gyrow, ones, zeros, src, slot, acc);
    cache.L = g.L;
    cache.stride = g.rowlen;
    for (int64_t i = 0; i < vlen; ++i) ones[i] = T(1), zeros[i] = T(0);
    for (int64_t u = b; u < e; ++u) {
      const int64_t k = u / splits, sp = u % splits, c = k / M;
      const int64_t r0 = sp * rows / splits, r1 = (sp + 1) * rows / splits;
      fill_zero(acc, tslots * N);
      cache.reset();
      auto fill = [&](T* dst, int64_t key) {  // key = n*H + ih
        fill_phased(dst, x + ((key / p.H) * p.C + c) * p.H * p.W + (key % p.H) * p.W, p.W, p.pw, p.sw, g.plen);
      };
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t n = row / p.OH, oh = row % p.OH;
        fill_padded(gyrow, gy + ((n * p.K + k) * p.OH + oh) * p.OW, 0, p.OW, vlen);
        int64_t ntaps = 0;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.sh - p.ph + r * p.dh;
          if (ih < 0 || ih >= p.H) continue;
          const T* xr = cache.get(n * p.H + ih, fill);
          for (int64_t s = 0; s < p.S; ++s) {
            src[ntaps] = g.tap(xr, p, s);
            slot[ntaps++] = r * p.S + s;
          }
        }
        if (gb) src[ntaps] = ones, slot[ntaps++] = RS;
        while (ntaps % TB) src[ntaps] = zeros, slot[ntaps++] = tslots - 1;
        const T* arow[1] = {gyrow};
        for (int64_t t = 0; t < ntaps; t += TB) dot_block<V, 1, TB>(arow, src + t, slot + t, nvec, acc, tslots);
      }
      reduce_lanes<V>(acc, ntap, partial + u * ntap);
    }
  });
  // Sum the parts in order (fixed by weight_splits, not by the thread count).
  for (int64_t k = 0; k < p.K; ++k) {
    for (int64_t t = 0; t < ntap; ++t) {
      T s = 0;
      for (int64_t sp = 0; sp < splits; ++sp) s += partial[(k * splits + sp) * ntap + t];
      if (t < RS)
        gw[k * RS + t] = s;
      else if (gb)
        gb[k] = s;
    }
  }
  return true;
}

// ------------------------------------------------------------------------------------------
// Small-C dense: groups == 1, C <= kSmallCMaxChannels. Several output channels share each input
// load (KB of them in registers), taps run over (c, r, s).
// ------------------------------------------------------------------------------------------
// Up to 4 input channels (RGB(A), grey): beyond that C*R*S is long enough for the GEMM kernels.
constexpr int64_t kSmallCMaxChannels = 4;

inline bool is_small_c(const Conv2dShape& p) { return p.groups == 1 && p.C <= kSmallCMaxChannels; }

// Output-channel block: 4 or 6, whichever pads K less. Both keep 12 accumulators; ties go to 4
// (4 channels x 3 column vectors: 7 loads per 12 FMAs, against 8 for 6 x 2).
inline int small_c_block(int64_t K) { return round_up(K, 6) - K < round_up(K, 4) - K ? 6 : 4; }

template <class V, int KB>
bool sc_fwd_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
                 typename V::T* y, bool relu) {
  using T = typename V::T;
  const int64_t CRS = p.C * p.R * p.S;
  const int64_t Kpad = round_up(p.K, KB), nkb = Kpad / KB;
  const XRows g = XRows::make<V>(p);
  const int64_t rc = row_chunks(p.N, p.OH), units = p.N * rc;
  const int nt = plan_threads(units, p.N * p.OH * p.OW * p.K * CRS);

  auto layout = [&](Arena& a, T*& rows, int64_t*& tags, const T**& src, int64_t*& tfull, const T**& wt) {
    rows = a.take<T>(p.C * g.L * g.rowlen);
    tags = a.take<int64_t>(p.C * g.L);
    src = a.take<const T*>(CRS);
    tfull = a.take<int64_t>(CRS);
    wt = a.take<const T*>(CRS);
  };
  Arena measure;
  {
    T* r; int64_t *tg, *tf; const T **s, **wp;
    layout(measure, r, tg, s, tf, wp);
  }
  Arena shared;
  T* wpk = shared.take<T>(nkb * CRS * KB);  // [block][c*R*S + r*S + s][kb]
  T* bpk = shared.take<T>(Kpad);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  wpk = reinterpret_cast<T*>(ws.shared() + reinterpret_cast<uintptr_t>(wpk));
  bpk = reinterpret_cast<T*>(ws.shared() + reinterpret_cast<uintptr_t>(bpk));
  for (int64_t k = 0; k < Kpad; ++k) {
    bpk[k] = (bias && k < p.K) ? bias[k] : T(0);
    for (int64_t t = 0; t < CRS; ++t) wpk[((k / KB) * CRS + t) * KB + k % KB] = k < p.K ? w[k * CRS + t] : T(0);
  }

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T* rows;
    int64_t *tags, *tfull;
    const T **src, **wt;
    layout(a, rows, tags, src, tfull, wt);
    RowCache<T> cache[kSmallCMaxChannels];
    for (int64_t c = 0; c < p.C; ++c) {
      cache[c].buf = rows + c * g.L * g.rowlen;
      cache[c].tags = tags + c * g.L;
      cache[c].L = g.L;
      cache[c].stride = g.rowlen;
    }
    for (int64_t u = b; u < e; ++u) {
      const int64_t n = u / rc, chunk = u % rc;
      const int64_t oh0 = chunk * p.OH / rc, oh1 = (chunk + 1) * p.OH / rc;
      for (int64_t c = 0; c < p.C; ++c) cache[c].reset();
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        int64_t ntaps = 0;
        for (int64_t c = 0; c < p.C; ++c) {
          const T* xc = x + (n * p.C + c) * p.H * p.W;
          auto fill = [&](T* dst, int64_t ih) { fill_phased(dst, xc + ih * p.W, p.W, p.pw, p.sw, g.plen); };
          for (int64_t r = 0; r < p.R; ++r) {
            const int64_t ih = oh * p.sh - p.ph + r * p.dh;
            if (ih < 0 || ih >= p.H) continue;
            const T* row = cache[c].get(ih, fill);
            for (int64_t s = 0; s < p.S; ++s) {
              src[ntaps] = g.tap(row, p, s);
              tfull[ntaps++] = (c * p.R + r) * p.S + s;
            }
          }
        }
        for (int64_t blk = 0; blk < nkb; ++blk) {
          for (int64_t t = 0; t < ntaps; ++t) wt[t] = wpk + (blk * CRS + tfull[t]) * KB;
          T* d[KB];
          for (int kb = 0; kb < KB; ++kb) {
            const int64_t k = blk * KB + kb;
            d[kb] = k < p.K ? y + ((n * p.K + k) * p.OH + oh) * p.OW : nullptr;
          }
          row_engine<V, KB>(ntaps, src, wt, bpk + blk * KB, relu, d, p.OW);
        }
      }
    }
  });
  return true;
}

template <class V>
bool sc_fwd(const Conv2dShape& p, const typename V::T* x, const typename V::T* w, const typename V::T* bias,
            typename V::T* y, bool relu) {
  if (!is_small_c(p) || is_depthwise(p)) return false;
  return small_c_block(p.K) == 6 ? sc_fwd_impl<V, 6>(p, x, w, bias, y, relu) : sc_fwd_impl<V, 4>(p, x, w, bias, y, relu);
}

// Weight gradient, small C: accumulators acc[k][tap] (vectors) per work unit, KA output
// channels x TB taps per dot block: 12 accumulators, KA + TB loads per 12 FMAs.
template <class V, int KA>
bool sc_bwd_weight_impl(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                        typename V::T* gb) {
  using T = typename V::T;
  constexpr int TB = 12 / KA;
  const int64_t CRS = p.C * p.R * p.S, N = V::N;
  const int64_t Kpad = round_up(p.K, KA);
  const XRows g = XRows::make<V>(p);
  const int64_t nvec = ceil_div(p.OW, N), vlen = nvec * N;
  const int64_t ntap = CRS + 1, tslots = ntap + 1;  // taps, bias tap (ones), dummy slot
  const int64_t rows = p.N * p.OH, units = weight_splits(1, rows);
  const int nt = plan_threads(units, rows * p.OW * p.K * CRS);

  auto layout = [&](Arena& a, T*& xrows, int64_t*& tags, T*& gyrows, T*& ones, T*& zeros, const T**& src,
                    int64_t*& slot, T*& acc) {
    xrows = a.take<T>(p.C * g.L * g.rowlen);
    tags = a.take<int64_t>(p.C * g.L);
    gyrows = a.take<T>(Kpad * vlen);
    ones = a.take<T>(vlen);
    zeros = a.take<T>(vlen);
    src = a.take<const T*>(ntap + TB);
    slot = a.take<int64_t>(ntap + TB);
    acc = a.take<T>(Kpad * tslots * N);
  };
  Arena measure;
  {
    T *r, *gr, *on, *ze, *ac; int64_t *tg, *sl; const T** s;
    layout(measure, r, tg, gr, on, ze, s, sl, ac);
  }
  Arena shared;
  T* partial = shared.take<T>(units * p.K * ntap);
  Workspace ws(shared.off, measure.off, nt);
  if (!ws.ok()) return false;
  partial = reinterpret_cast<T*>(ws.shared() + reinterpret_cast<uintptr_t>(partial));

  run_parallel(nt, units, [&](int64_t b, int64_t e, int tid) {
    Arena a{ws.thread(tid), 0};
    T *xrows, *gyrows, *ones, *zeros, *acc;
    int64_t *tags, *slot;
    const T** src;
    layout(a, xrows, tags, gyrows, ones, zeros, src, slot, acc);
    RowCache<T> cache[kSmallCMaxChannels];
    for (int64_t c = 0; c < p.C; ++c) {
      cache[c].buf = xrows + c * g.L * g.rowlen;
      cache[c].tags = tags + c * g.L;
      cache[c].L = g.L;
      cache[c].stride = g.rowlen;
    }
    for (int64_t i = 0; i < vlen; ++i) ones[i] = T(1), zeros[i] = T(0);
    fill_zero(gyrows + p.K * vlen, (Kpad - p.K) * vlen);  // padded channels: zero gradient
    for (int64_t u = b; u < e; ++u) {
      const int64_t r0 = u * rows / units, r1 = (u + 1) * rows / units;
      fill_zero(acc, Kpad * tslots * N);
      for (int64_t c = 0; c < p.C; ++c) cache[c].reset();
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t n = row / p.OH, oh = row % p.OH;
        for (int64_t k = 0; k < p.K; ++k)
          fill_padded(gyrows + k * vlen, gy + ((n * p.K + k) * p.OH + oh) * p.OW, 0, p.OW, vlen);
        int64_t ntaps = 0;
        for (int64_t c = 0; c < p.C; ++c) {
          const T* xc = x + (n * p.C + c) * p.H * p.W;
          auto fill = [&](T* dst, int64_t key) {  // key = n*H + ih
            fill_phased(dst, xc + (key % p.H) * p.W, p.W, p.pw, p.sw, g.plen);
          };
          for (int64_t r = 0; r < p.R; ++r) {
            const int64_t ih = oh * p.sh - p.ph + r * p.dh;
            if (ih < 0 || ih >= p.H) continue;
            const T* xr = cache[c].get(n * p.H + ih, fill);
            for (int64_t s = 0; s < p.S; ++s) {
              src[ntaps] = g.tap(xr, p, s);
              slot[ntaps++] = (c * p.R + r) * p.S + s;
            }
          }
        }
        if (gb) src[ntaps] = ones, slot[ntaps++] = CRS;
        while (ntaps % TB) src[ntaps] = zeros, slot[ntaps++] = tslots - 1;
        for (int64_t k0 = 0; k0 < Kpad; k0 += KA) {
          const T* arow[KA];
          for (int ka = 0; ka < KA; ++ka) arow[ka] = gyrows + (k0 + ka) * vlen;
          for (int64_t t = 0; t < ntaps; t += TB)
            dot_block<V, KA, TB>(arow, src + t, slot + t, nvec, acc + k0 * tslots * N, tslots);
        }
      }
      for (int64_t k = 0; k < p.K; ++k) reduce_lanes<V>(acc + k * tslots * N, ntap, partial + (u * p.K + k) * ntap);
    }
  });
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t t = 0; t < ntap; ++t) {
      T s = 0;
      for (int64_t u = 0; u < units; ++u) s += partial[(u * p.K + k) * ntap + t];
      if (t < CRS)
        gw[k * CRS + t] = s;
      else if (gb)
        gb[k] = s;
    }
  return true;
}

template <class V>
bool sc_bwd_weight(const Conv2dShape& p, const typename V::T* x, const typename V::T* gy, typename V::T* gw,
                   typename V::T* gb) {
  if (!is_small_c(p) || is_depthwise(p)) return false;
  return small_c_block(p.K) == 6 ? sc_bwd_weight_impl<V, 6>(p, x, gy, gw, gb)
                                 : sc_bwd_weight_impl<V, 4>(p, x, gy, gw, gb);
}

}  // namespace
}  // namespace direct
}  // namespace cnnfast
