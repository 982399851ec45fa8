// Machine-peak microbenchmarks for bench/: FMA throughput and memory bandwidth. Not kernels --
// they only give the bench report its denominators ("% of peak", "% of bandwidth"), measured
// on the machine the suite runs on rather than taken from a datasheet.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

#include "common/parallel.h"

namespace cnnfast {
namespace bench {

// FMA throughput on `threads` threads for about `seconds`: returns GFLOP/s (one FMA = 2 flops
// per lane). Defined per ISA file (fma_peak_avx2.cpp, fma_peak_avx512.cpp).
double fma_peak_avx2(int threads, double seconds);
double fma_peak_avx512(int threads, double seconds);

// Best-of-repeats bandwidth in GB/s (1e9 bytes/s) of STREAM-style loops over arrays of
// `megabytes` MB each, on `threads` threads. Counts bytes the loop reads and writes
// (copy: 2 arrays, scale: 2, triad: 3), not write-allocate traffic, as STREAM does.
struct Bandwidth {
  double copy, scale, triad;
};
Bandwidth bandwidth(int threads, double megabytes, int repeats);

// Independent FMA chains, width-generic: V is a vector traits struct with type `reg`, `lanes`,
// `set1(float)`, `fma(a, b, c)` (a*b + c) and `sum(reg)`. kChains accumulators cover the FMA
// latency x throughput product: Zen 4 has 4-cycle latency and 2 FMA pipes -> 8 chains in flight;
// 12 leaves headroom for cores with 5-cycle latency (Intel) and still fits the 16 ymm registers
// together with the two constants.
constexpr int kChains = 12;
// Inner iterations between clock reads: 12 chains x 4096 = 49k FMAs, ~25 us on one core, so
// reading steady_clock (~20 ns) costs < 0.1 % of the measured time.
constexpr int64_t kInnerIters = 4096;

template <typename V>
double fma_peak(int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  if (threads < 1) threads = 1;
  std::vector<int64_t> iters(static_cast<size_t>(threads), 0);
  std::vector<float> sink(static_cast<size_t>(threads), 0.0f);
  // a*m + c with |m| < 1 converges to c/(1-m): the values stay normal (no denormal slowdowns,
  // no overflow) however long the loop runs. volatile keeps the compiler from folding them.
  volatile float mv = 0.99999f, cv = 1e-6f;
  const auto t0 = clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  run_region(threads, [&](int t, int) {
    const typename V::reg m = V::set1(mv), c = V::set1(cv);
    typename V::reg acc[kChains];
    for (int j = 0; j < kChains; ++j) acc[j] = V::set1(0.001f * static_cast<float>(j + 1));
    int64_t n = 0;
    do {
      for (int64_t i = 0; i < kInnerIters; ++i) {
        // Fully unrolled: kChains independent dependency chains.
#pragma GCC unroll 12
        for (int j = 0; j < kChains; ++j) acc[j] = V::fma(acc[j], m, c);
      }
      n += kInnerIters;
    } while (clock::now() < deadline);
    float s = 0.0f;
    for (int j = 0; j < kChains; ++j) s += V::sum(acc[j]);
    iters[static_cast<size_t>(t)] = n;
    sink[static_cast<size_t>(t)] = s;
  });
  const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
  double flops = 0.0;
  float keep = 0.0f;
  for (int t = 0; t < threads; ++t) {
    flops += static_cast<double>(iters[static_cast<size_t>(t)]) * kChains * V::lanes * 2.0;
    keep += sink[static_cast<size_t>(t)];
  }
  // The accumulators must be observable or the loop is dead code; keep is finite by construction.
  if (!(keep == keep)) return 0.0;
  return flops / elapsed * 1e-9;
}

}  // namespace bench
}  // namespace cnnfast
