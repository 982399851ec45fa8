// Memory-bandwidth microbenchmark (STREAM-style copy/scale/triad): see fma_peak.h.
// Compiled for the baseline ISA: with arrays far larger than the caches the loops are limited by
// DRAM, not by vector width, so SSE2 code measures the same bandwidth as AVX2 code would.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>

#include "bench/fma_peak.h"

namespace cnnfast {
namespace bench {
namespace {

// Runs f(begin, end) on `threads` threads, one contiguous chunk each (the same static split on
// every call, so each thread touches the pages it first-touched).
template <typename F>
void split(int threads, int64_t n, const F& f) {
  run_region(threads, [&](int t, int T) {  // the pool may grant fewer threads than asked
    const int64_t chunk = (n + T - 1) / T;
    const int64_t b = std::min<int64_t>(n, t * chunk), e = std::min<int64_t>(n, b + chunk);
    f(b, e);
  });
}

template <typename F>
double best_seconds(int repeats, const F& f) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

Bandwidth bandwidth(int threads, double megabytes, int repeats) {
  if (threads < 1) threads = 1;
  if (repeats < 1) repeats = 1;
  const int64_t n = std::max<int64_t>(1024, static_cast<int64_t>(megabytes * 1e6 / sizeof(float)));
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
  float* A = a.get();
  float* B = b.get();
  float* C = c.get();
  split(threads, n, [&](int64_t s, int64_t e) {  // first touch by the thread that will use the pages
    for (int64_t i = s; i < e; ++i) {
      A[i] = 1.0f;
      B[i] = 2.0f;
      C[i] = 0.5f;
    }
  });
  const float q = 3.0f;
  const double bytes = static_cast<double>(n) * sizeof(float);
  Bandwidth bw{};
  bw.copy =
      2 * bytes /
      best_seconds(repeats, [&] { split(threads, n, [&](int64_t s, int64_t e) { std::copy(A + s, A + e, C + s); }); }) *
      1e-9;
  bw.scale = 2 * bytes /
             best_seconds(repeats,
                          [&] {
                            split(threads, n, [&](int64_t s, int64_t e) {
                              for (int64_t i = s; i < e; ++i) B[i] = q * C[i];
                            });
                          }) *
             1e-9;
  bw.triad = 3 * bytes /
             best_seconds(repeats,
                          [&] {
                            split(threads, n, [&](int64_t s, int64_t e) {
                              for (int64_t i = s; i < e; ++i) A[i] = B[i] + q * C[i];
                            });
                          }) *
             1e-9;
  return bw;
}

}  // namespace bench
}  // namespace cnnfast
