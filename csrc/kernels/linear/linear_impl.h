// Width-generic linear_fwd (linear.h), instantiated per ISA (linear_avx2.cpp, linear_avx512.cpp).
// Outputs are split across threads in blocks of 4 rows of b; each block is read from memory once
// and multiplied by every row of a (at most 8, so the block stays in L1 between them): 4 rows x 2
// accumulators give 8 independent FMA chains. Include only from a file with the matching ISA flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "common/parallel.h"
#include "common/simd.h"

namespace cnnfast {
namespace linear_simd {
namespace {

// y[j0 + r] for r < R rows of b (R = 1..4) against one row x of a.
template <class S, int R>
inline void rows(int64_t k, const typename S::T* x, const typename S::T* b, typename S::T* out) {
  using T = typename S::T;
  using V = typename S::R;
  V acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = S::zero();
  int64_t c = 0;
  for (; c + 2 * S::N <= k; c += 2 * S::N) {
    const V x0 = S::load(x + c), x1 = S::load(x + c + S::N);
    for (int r = 0; r < R; ++r) {
      acc0[r] = S::fma(S::load(b + r * k + c), x0, acc0[r]);
      acc1[r] = S::fma(S::load(b + r * k + c + S::N), x1, acc1[r]);
    }
  }
  for (; c + S::N <= k; c += S::N) {
    const V x0 = S::load(x + c);
    for (int r = 0; r < R; ++r) acc0[r] = S::fma(S::load(b + r * k + c), x0, acc0[r]);
  }
  for (int r = 0; r < R; ++r) {
    T s = S::hsum(S::add(acc0[r], acc1[r]));
    for (int64_t cc = c; cc < k; ++cc) s += x[cc] * b[r * k + cc];
    out[r] = s;
  }
}

template <class S>
bool fwd(int64_t m, int64_t n, int64_t k, const typename S::T* a, const typename S::T* b, const typename S::T* bias,
         typename S::T* y) {
  using T = typename S::T;
  if (m > 8) return false;
  const int64_t blocks = (n + 3) / 4;
  parallel_for(blocks, 4 * m * k, [&](int64_t bb, int64_t be) {
    T out[4];
    for (int64_t blk = bb; blk < be; ++blk) {
      const int64_t j0 = blk * 4;
      const int64_t nr = n - j0 < 4 ? n - j0 : 4;
      for (int64_t i = 0; i < m; ++i) {
        const T* x = a + i * k;
        const T* w = b + j0 * k;
        switch (nr) {
          case 4: rows<S, 4>(k, x, w, out); break;
          case 3: rows<S, 3>(k, x, w, out); break;
          case 2: rows<S, 2>(k, x, w, out); break;
          default: rows<S, 1>(k, x, w, out); break;
        }
        for (int64_t r = 0; r < nr; ++r) y[i * n + j0 + r] = bias ? out[r] + bias[j0 + r] : out[r];
      }
    }
  });
  return true;
}

}  // namespace
}  // namespace linear_simd
}  // namespace cnnfast
