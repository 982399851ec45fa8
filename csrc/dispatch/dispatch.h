// Runtime kernel dispatch. The table is built once from kernels.inc; each (op, dir, dtype) has
// an ordered list of implementations: the selected ISA's kernel first, then `ref`, which accepts
// every configuration. A kernel that returns false declines and the next one runs.
#pragma once
#include "common/isa.h"
#include "dispatch/kernels.h"

namespace cnnfast {

template <typename T>
struct KernelTable {
  conv2d_fwd_sig<T>* conv2d_fwd = nullptr;
  conv2d_bwd_input_sig<T>* conv2d_bwd_input = nullptr;
  conv2d_bwd_weight_sig<T>* conv2d_bwd_weight = nullptr;
  maxpool2d_fwd_sig<T>* maxpool2d_fwd = nullptr;
  maxpool2d_bwd_sig<T>* maxpool2d_bwd = nullptr;
  relu_fwd_sig<T>* relu_fwd = nullptr;
  relu_bwd_sig<T>* relu_bwd = nullptr;
};

// The kernels compiled for `isa` (null where that ISA has no kernel of its own).
template <typename T>
const KernelTable<T>& kernel_table(Isa isa);

// Runs the kernel `member` for the currently selected ISA, falling back to ref if it is missing
// or declines. Example: dispatch<float>(&KernelTable<float>::relu_fwd, n, x, y);
template <typename T, typename Fn, typename... Args>
void dispatch(Fn* KernelTable<T>::*member, Args&&... args) {
  const Isa isa = current_isa();
  if (isa != Isa::ref) {
    Fn* f = kernel_table<T>(isa).*member;
    if (f && f(args...)) return;
  }
  (kernel_table<T>(Isa::ref).*member)(args...);
}

// Name of the kernel that handles `member` for the selected ISA ("conv2d_fwd_f32_avx512"), for show_runtime.
template <typename T, typename Fn>
const char* selected_kernel_isa(Fn* KernelTable<T>::*member) {
  const Isa isa = current_isa();
  return (kernel_table<T>(isa).*member) ? isa_name(isa) : isa_name(Isa::ref);
}

}  // namespace cnnfast
