// Plain scalar reference for gap_fwd / chscale_fwd (se.h): one sequential sum per plane.
#include "common/parallel.h"
#include "dispatch/kernels.h"

namespace cnnfast {
namespace {

template <typename T>
void gap(int64_t planes, int64_t hw, const T* x, T* mean) {
  parallel_for(planes, hw, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      T s = 0;
      for (int64_t i = 0; i < hw; ++i) s += x[p * hw + i];
      mean[p] = s / T(hw);
    }
  });
}

template <typename T>
void chscale(int64_t planes, int64_t hw, const T* x, const T* s, T* y) {
  parallel_for(planes, hw, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p)
      for (int64_t i = 0; i < hw; ++i) y[p * hw + i] = x[p * hw + i] * s[p];
  });
}

}  // namespace

bool gap_fwd_f32_ref(int64_t planes, int64_t hw, const float* x, float* mean) {
  gap(planes, hw, x, mean);
  return true;
}
bool gap_fwd_f64_ref(int64_t planes, int64_t hw, const double* x, double* mean) {
  gap(planes, hw, x, mean);
  return true;
}
bool chscale_fwd_f32_ref(int64_t planes, int64_t hw, const float* x, const float* s, float* y) {
  chscale(planes, hw, x, s, y);
  return true;
}
bool chscale_fwd_f64_ref(int64_t planes, int64_t hw, const double* x, const double* s, double* y) {
  chscale(planes, hw, x, s, y);
  return true;
}

}  // namespace cnnfast
