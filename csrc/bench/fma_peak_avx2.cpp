// FMA-throughput microbenchmark, 256-bit (AVX2 + FMA): see fma_peak.h.
#include <immintrin.h>

#include "bench/fma_peak.h"

namespace cnnfast {
namespace bench {
namespace {

struct Avx2 {
  using reg = __m256;
  static constexpr int lanes = 8;
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(reg v) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    float s = 0.0f;
    for (float f : tmp) s += f;
    return s;
  }
};

}  // namespace

double fma_peak_avx2(int threads, double seconds) { return fma_peak<Avx2>(threads, seconds); }

}  // namespace bench
}  // namespace cnnfast
