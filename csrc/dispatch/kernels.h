// Declarations of every kernel in kernels.inc, e.g.
//   bool conv2d_fwd_f32_avx512(const Conv2dShape&, const float*, const float*, const float*, float*, bool);
#pragma once
#include "kernels/conv2d/conv2d.h"
#include "kernels/dwchain/dwchain.h"
#include "kernels/linear/linear.h"
#include "kernels/maxpool2d/maxpool2d.h"
#include "kernels/pointwise/pointwise.h"
#include "kernels/relu/relu.h"
#include "kernels/se/se.h"

namespace cnnfast {
using f32_t = float;
using f64_t = double;

#define CNNFAST_KERNEL(op, dir, dtype, isa) op##_##dir##_sig<dtype##_t> op##_##dir##_##dtype##_##isa;
#define CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, variant) \
  op##_##dir##_sig<dtype##_t> op##_##dir##_##dtype##_##isa##variant;
#include "kernels/kernels.inc"
#undef CNNFAST_KERNEL_VARIANT
#undef CNNFAST_KERNEL
}  // namespace cnnfast
