// The store-time activation of the forward kernels (Conv2dShape::act, conv2d.h), as a functor on a
// vector -- ReLU if asked, then the fused activation -- and on a scalar for the kernels' tails. The
// vector form computes exactly what kernels/pointwise's pass computes on the stored value (the same
// fma, min and max, NaN kept), so fusing changes no result.
#pragma once
#include <type_traits>

#include "common/portable.h"
#include "common/simd.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/pointwise/pointwise_impl.h"

namespace cnnfast {
namespace {

template <class V>
struct ActEpi {
  using R = typename V::R;
  using T = typename V::T;
  bool relu;
  int kind;
  R a, b, lo, hi;
  ActEpi(bool relu_first, const ConvAct& act)
      : relu(relu_first),
        kind(act.kind),
        a(V::set1(T(act.a))),
        b(V::set1(T(act.b))),
        lo(V::set1(T(act.lo))),
        hi(V::set1(T(act.hi))) {}
  CNNFAST_FORCE_INLINE R operator()(R v) const {
    if (relu) v = V::relu(v);  // max(0, NaN) = NaN
    if (kind == kActNone) return v;
    if (kind == kActRelu) return V::relu(v);
    const R t = pointwise_simd::vmin(hi, pointwise_simd::vmax(lo, V::fma(v, a, b)));
    return kind == kActHardswish ? V::mul(v, t) : t;
  }
};

// kActSilu's epilogue (float32): ReLU if asked, then SiLU. A type of its own, instantiated only
// where the kernel's caller asks for SiLU: inlined into ActEpi, its constants cost the AVX2
// register tiles of every other activation (the depthwise chains ran 0.91x-0.98x, bench/ab_builds.py).
template <class V>
struct SiluEpi {
  bool relu;
  CNNFAST_FORCE_INLINE typename V::R operator()(typename V::R v) const {
    if (relu) v = V::relu(v);
    return pointwise_simd::vsilu<V>(v);
  }
};

// The activation (an ActEpi without ReLU; nothing if it has none) over y[0, n) in place: for
// kernels whose register tiles have no room for the activation's constants (the depthwise ones keep
// their taps in registers), run on each block of output just written, while it is in L1.
template <class V>
inline void act_sweep(typename V::T* y, int64_t n, const ActEpi<V>& act) {
  if (act.kind == kActNone) return;
  constexpr int N = V::N;
  if constexpr (std::is_same_v<typename V::T, float>) {
    if (act.kind == kActSilu) {
      const SiluEpi<V> silu{false};
      int64_t i = 0;
      for (; i + N <= n; i += N) V::store(y + i, silu(V::load(y + i)));
      if (i < n) {
        const int r = static_cast<int>(n - i);
        V::store_n(y + i, silu(V::load_part(y + i, 0, r, 0.0f)), r);
      }
      return;
    }
  }
  int64_t i = 0;
  for (; i + N <= n; i += N) V::store(y + i, act(V::load(y + i)));
  if (i < n) {
    const int r = static_cast<int>(n - i);
    V::store_n(y + i, act(V::load_part(y + i, 0, r, typename V::T(0))), r);
  }
}

// The same on one value (kernels/pointwise's scalar tail: clamp1 of a*v + b).
template <typename T>
inline T act_scalar(bool relu, const ConvAct& act, T v) {
  if (relu) v = v < T(0) ? T(0) : v;  // NaN stays NaN
  if (act.kind == kActNone) return v;
  if (act.kind == kActRelu) return v < T(0) ? T(0) : v;
  if constexpr (std::is_same_v<T, float>) {
    if (act.kind == kActSilu) return pointwise_simd::silu1(v);
  }
  const T t = pointwise_simd::clamp1<T>(v * T(act.a) + T(act.b), T(act.lo), T(act.hi));
  return act.kind == kActHardswish ? v * t : t;
}

}  // namespace
}  // namespace cnnfast
