// FMA-throughput microbenchmark, 512-bit (AVX-512F): see fma_peak.h.
#include <immintrin.h>

#include "bench/fma_peak.h"

namespace cnnfast {
namespace bench {
namespace {

struct Avx512 {
  using reg = __m512;
  static constexpr int lanes = 16;
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(reg v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

double fma_peak_avx512(int threads, double seconds) { return fma_peak<Avx512>(threads, seconds); }

}  // namespace bench
}  // namespace cnnfast
