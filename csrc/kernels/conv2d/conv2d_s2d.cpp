// Space-to-depth: a strided conv with few input channels as a stride-1 3x3 conv that Winograd
// F(4x4, 3x3) runs (conv2d_winograd.h / conv2d_winograd_wgrad.h). With stride s, filter tap
// (s*a + u, s*b + v) of input channel c meets input pixel (s*(i + a) + u, s*(j + b) + v) for output
// (i, j): so the s x s phases of the padded input become C * s * s channels of a plane 1/s the size,
// and the R x R filter a ceil(R/s) x ceil(R/s) one on them (taps past R are zero). AlexNet's conv1
// (3 channels, 11x11, stride 4) becomes 48 channels of 3x3 on 57x57, where Winograd does 1/4 of the
// multiplications (the direct kernel spends 11x11 = 121 per output and input channel; the 3x3
// form 9 + 16/121 = 9% more taps, then Winograd's factor 4).
//
// Taken (forward, float32, and the weight gradient) where ceil(R/s) = 3, R >= 9 and 16 <= C*s*s <=
// 64 (`python bench/s2d_choice.py` times it against the direct and GEMM kernels; bench/fair.py's
// alexnet_c1_n4 row against PyTorch). Smaller filters (5x5/2, 7x7/3) were slower in a first A/B
// than the direct kernels, which spend fewer taps there, and are left to them;
// the phase-split copies of x (and the weights) cost one pass over the input. Declines when the
// Winograd kernel declines the transformed problem (set_winograd(False) included) or memory runs
// out: the next kernel in conv2d.inc runs the original problem.
#include <cstdlib>
#include <cstring>

#include "common/parallel.h"
#include "common/scratch.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

struct S2d {
  Conv2dShape q;  // the stride-1 3x3 problem
  int64_t s;
};

bool s2d_applies(const Conv2dShape& p, S2d& t) {
  const int64_t s = p.sh;
  if (p.groups != 1 || p.sw != s || s < 2 || p.dh != 1 || p.dw != 1 || p.R != p.S) return false;
  if (p.R < 9 || (p.R + s - 1) / s != 3 || p.C * s * s < 16 || p.C * s * s > 64 || p.N < 1 || p.OH < 1 || p.OW < 1)
    return false;
  t.s = s;
  t.q = no_act(p);  // (a derived problem carries no fused activation: conv2d.h)
  t.q.C = p.C * s * s, t.q.H = p.OH + 2, t.q.W = p.OW + 2, t.q.R = 3, t.q.S = 3;
  t.q.sh = t.q.sw = 1, t.q.ph = t.q.pw = 0;
  return true;
}

// P[n][(c*s + u)*s + v][m][q] = x[n][c][s*m + u - ph][s*q + v - pw] (zero outside x).
void split_input(const Conv2dShape& p, const S2d& t, const float* x, float* P) {
  const int64_t s = t.s, Hq = t.q.H, Wq = t.q.W;
  parallel_for(p.N * p.C * s * s, Hq * Wq, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t v = i % s, u = (i / s) % s, c = (i / (s * s)) % p.C, n = i / (s * s * p.C);
      const float* xc = x + (n * p.C + c) * p.H * p.W;
      float* d = P + i * Hq * Wq;
      for (int64_t m = 0; m < Hq; ++m) {
        const int64_t ih = s * m + u - p.ph;
        float* dr = d + m * Wq;
        if (ih < 0 || ih >= p.H) {
          std::memset(dr, 0, static_cast<size_t>(Wq) * sizeof(float));
          continue;
        }
        // columns q with 0 <= s*q + v - pw < W: [q0, q1); zero outside
        const int64_t q0 = v >= p.pw ? 0 : (p.pw - v + s - 1) / s;
        const int64_t q1 = p.W - 1 + p.pw - v < 0 ? 0 : (p.W - 1 + p.pw - v) / s + 1;
        const int64_t qa = q0 < Wq ? q0 : Wq, qb = q1 < Wq ? (q1 > qa ? q1 : qa) : Wq;
        const float* xr = xc + ih * p.W + v - p.pw;
        for (int64_t q = 0; q < qa; ++q) dr[q] = 0.0f;
        for (int64_t q = qa; q < qb; ++q) dr[q] = xr[s * q];
        for (int64_t q = qb; q < Wq; ++q) dr[q] = 0.0f;
      }
    }
  });
}

// Filter tap (r, t) of w[k][c] <-> tap (r / s, t / s) of channel (c*s + r % s)*s + t % s.
void split_weights(const Conv2dShape& p, const S2d& t, const float* w, float* W2) {
  const int64_t s = t.s, C2 = t.q.C;
  std::memset(W2, 0, static_cast<size_t>(p.K * C2 * 9) * sizeof(float));
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t q = 0; q < p.S; ++q)
          W2[((k * C2 + (c * s + r % s) * s + q % s) * 3 + r / s) * 3 + q / s] = w[((k * p.C + c) * p.R + r) * p.S + q];
}

void merge_weights(const Conv2dShape& p, const S2d& t, const float* W2, float* w) {
  const int64_t s = t.s, C2 = t.q.C;
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t q = 0; q < p.S; ++q)
          w[((k * p.C + c) * p.R + r) * p.S + q] = W2[((k * C2 + (c * s + r % s) * s + q % s) * 3 + r / s) * 3 + q / s];
}

bool fwd(conv2d_fwd_sig<float>* wino, const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
         bool relu) {
  S2d t;
  if (!s2d_applies(p, t)) return false;
  const size_t np = static_cast<size_t>(p.N * t.q.C * t.q.H * t.q.W), nw = static_cast<size_t>(p.K * t.q.C * 9);
  float* P = thread_scratch_of<float>(np + nw);  // kept for the next call (cnnfast.empty_cache frees it)
  if (!P) return false;
  float* W2 = P + np;
  split_input(p, t, x, P);
  split_weights(p, t, w, W2);
  return wino(t.q, P, W2, b, y, relu);
}

bool bwd_weight(conv2d_bwd_weight_sig<float>* wino, const Conv2dShape& p, const float* x, const float* gy, float* gw,
                float* gb) {
  S2d t;
  if (!s2d_applies(p, t)) return false;
  const size_t np = static_cast<size_t>(p.N * t.q.C * t.q.H * t.q.W), nw = static_cast<size_t>(p.K * t.q.C * 9);
  float* P = thread_scratch_of<float>(np + nw);
  if (!P) return false;
  float* W2 = P + np;
  split_input(p, t, x, P);
  const bool ok = wino(t.q, P, gy, W2, gb);
  if (ok) merge_weights(p, t, W2, gw);
  return ok;
}

}  // namespace

#if CNNFAST_HAVE_X86_SIMD
bool conv2d_fwd_f32_avx512_s2d(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                               bool relu) {
  return fwd(&conv2d_fwd_f32_avx512_winograd, p, x, w, b, y, relu);
}
bool conv2d_fwd_f32_avx2_s2d(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y,
                             bool relu) {
  return fwd(&conv2d_fwd_f32_avx2_winograd, p, x, w, b, y, relu);
}
bool conv2d_bwd_weight_f32_avx512_s2d(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  return bwd_weight(&conv2d_bwd_weight_f32_avx512_winograd, p, x, gy, gw, gb);
}
bool conv2d_bwd_weight_f32_avx2_s2d(const Conv2dShape& p, const float* x, const float* gy, float* gw, float* gb) {
  return bwd_weight(&conv2d_bwd_weight_f32_avx2_winograd, p, x, gy, gw, gb);
}
#endif

}  // namespace cnnfast
