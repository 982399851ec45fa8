// Width-generic relu forward/backward, written once and instantiated per ISA (relu_avx2.cpp,
// relu_avx512.cpp) with a vector type of common/simd.h. Include only from a file compiled with
// the matching ISA flags. Semantics as relu_ref.cpp: y = x < 0 ? 0 : x (NaN and -0.0 kept),
// gx = x <= 0 ? 0 : gy (NaN x passes the gradient, as torch's threshold_backward).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "common/parallel.h"
#include "common/simd.h"

namespace cnnfast {
namespace relu_simd {
// Internal linkage, as everything in common/simd.h: each ISA file compiles its own copy.
namespace {

// Outputs at least this large are written with nontemporal stores (out-of-place only): they do
// not fit the last-level cache anyway, and streaming skips the read-for-ownership of every output
// line, so the pass moves 2 bytes per output byte instead of 3 (chosen from bench/: above ~8 MiB
// streaming wins on the 2-core EPYC; below it the output is still in L3 for the next layer).
constexpr std::size_t kStreamBytes = std::size_t(8) << 20;
// Elements per parallel task unit: keeps chunk boundaries cache-line aligned for every dtype.
constexpr int64_t kAlign = 64;

// y = S::relu(x) (common/simd.h: keeps NaN and -0.0). gx = gy where !(x <= 0), which is
// unordered-true: NaN x keeps the gradient.
template <class S>
inline typename S::R grad(typename S::R gy, typename S::R x) {
  return S::keep(gy, S::nle(x, S::zero()));
}

template <typename T>
inline T relu1(T x) {
  return x < T(0) ? T(0) : x;
}
template <typename T>
inline T grad1(T gy, T x) {
  return x <= T(0) ? T(0) : gy;
}

// Applies f (vector op) / f1 (scalar op) to [b, e): scalar head until the output is aligned
// (streaming stores need it), 4-way unrolled vector body, scalar tail.
template <class S, bool Stream, typename VF, typename SF>
inline void run_range(int64_t b, int64_t e, typename S::T* out, const VF& f, const SF& f1) {
  using T = typename S::T;
  int64_t i = b;
  if (Stream)
    for (; i < e && (reinterpret_cast<std::uintptr_t>(out + i) % (S::N * sizeof(T))) != 0; ++i) out[i] = f1(i);
  for (; i + 4 * S::N <= e; i += 4 * S::N) {
    const auto v0 = f(i), v1 = f(i + S::N), v2 = f(i + 2 * S::N), v3 = f(i + 3 * S::N);
    if (Stream) {
      S::stream(out + i, v0);
      S::stream(out + i + S::N, v1);
      S::stream(out + i + 2 * S::N, v2);
      S::stream(out + i + 3 * S::N, v3);
    } else {
      S::store(out + i, v0);
      S::store(out + i + S::N, v1);
      S::store(out + i + 2 * S::N, v2);
      S::store(out + i + 3 * S::N, v3);
    }
  }
  for (; i + S::N <= e; i += S::N) {
    if (Stream)
      S::stream(out + i, f(i));
    else
      S::store(out + i, f(i));
  }
  for (; i < e; ++i) out[i] = f1(i);
  if (Stream) _mm_sfence();  // order the streaming stores before the parallel region's join
}

// Splits [0, n) into cache-line-aligned chunks, one per thread; small n runs inline.
template <typename F>
inline void parallel_elems(int64_t n, const F& f) {
  const int64_t units = (n + kAlign - 1) / kAlign;
  parallel_for(units, kAlign, [&](int64_t ub, int64_t ue) { f(ub * kAlign, ue * kAlign < n ? ue * kAlign : n); });
}

template <class S>
bool fwd(int64_t n, const typename S::T* x, typename S::T* y) {
  using T = typename S::T;
  const bool stream = x != y && static_cast<std::size_t>(n) * sizeof(T) >= kStreamBytes;
  auto f = [x](int64_t i) { return S::relu(S::load(x + i)); };
  auto f1 = [x](int64_t i) { return relu1(x[i]); };
  parallel_elems(n, [&](int64_t b, int64_t e) {
    if (stream)
      run_range<S, true>(b, e, y, f, f1);
    else
      run_range<S, false>(b, e, y, f, f1);
  });
  return true;
}

template <class S>
bool bwd(int64_t n, const typename S::T* gy, const typename S::T* x, typename S::T* gx) {
  using T = typename S::T;
  const bool stream = gx != gy && gx != x && static_cast<std::size_t>(n) * sizeof(T) >= kStreamBytes;
  auto f = [gy, x](int64_t i) { return grad<S>(S::load(gy + i), S::load(x + i)); };
  auto f1 = [gy, x](int64_t i) { return grad1(gy[i], x[i]); };
  parallel_elems(n, [&](int64_t b, int64_t e) {
    if (stream)
      run_range<S, true>(b, e, gx, f, f1);
    else
      run_range<S, false>(b, e, gx, f, f1);
  });
  return true;
}

}  // namespace
}  // namespace relu_simd
}  // namespace cnnfast
