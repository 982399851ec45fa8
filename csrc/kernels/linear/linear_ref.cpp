// Plain scalar reference for linear_fwd (linear.h): one dot product per output, in order.
#include "common/parallel.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

template <typename T>
void fwd(int64_t m, int64_t n, int64_t k, const T* a, const T* b, const T* bias, T* y) {
  parallel_for(n, m * k, [&](int64_t jb, int64_t je) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = jb; j < je; ++j) {
        T s = T(0);
        for (int64_t c = 0; c < k; ++c) s += a[i * k + c] * b[j * k + c];
        y[i * n + j] = bias ? s + bias[j] : s;
      }
  });
}

}  // namespace

bool linear_fwd_f32_ref(int64_t m, int64_t n, int64_t k, const float* a, const float* b, const float* bias, float* y) {
  fwd(m, n, k, a, b, bias, y);
  return true;
}
bool linear_fwd_f64_ref(int64_t m, int64_t n, int64_t k, const double* a, const double* b, const double* bias,
                        double* y) {
  fwd(m, n, k, a, b, bias, y);
  return true;
}

}  // namespace cnnfast
