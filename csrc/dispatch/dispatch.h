// Runtime kernel dispatch. The table is built once from kernels.inc; each (op, dir, dtype) has
// an ordered list of implementations: the selected ISA's kernels in the order kernels.inc lists
// them (specialised ones such as depthwise first), then `ref`, which accepts every
// configuration. A kernel that returns false declines and the next one runs.
#pragma once
#include <array>
#include <atomic>

#include "common/isa.h"
#include "common/scratch.h"
#include "dispatch/kernels.h"

namespace cnnfast {

// Up to kMaxImpls implementations per (op, dir, dtype, isa), tried in order; unused slots are null.
constexpr int kMaxImpls = 8;
template <typename Sig>
using ImplList = std::array<Sig*, kMaxImpls>;

template <typename T>
struct KernelTable {
  ImplList<conv2d_fwd_sig<T>> conv2d_fwd{};
  ImplList<conv2d_bwd_input_sig<T>> conv2d_bwd_input{};
  ImplList<conv2d_bwd_weight_sig<T>> conv2d_bwd_weight{};
  ImplList<maxpool2d_fwd_sig<T>> maxpool2d_fwd{};
  ImplList<maxpool2d_bwd_sig<T>> maxpool2d_bwd{};
  ImplList<relu_fwd_sig<T>> relu_fwd{};
  ImplList<relu_bwd_sig<T>> relu_bwd{};
  ImplList<pointwise_fwd_sig<T>> pointwise_fwd{};
  ImplList<linear_fwd_sig<T>> linear_fwd{};
  ImplList<dwchain_fwd_sig<T>> dwchain_fwd{};
  ImplList<gap_fwd_sig<T>> gap_fwd{};
  ImplList<chscale_fwd_sig<T>> chscale_fwd{};
};

// The kernels compiled for `isa` (empty lists where that ISA has no kernel of its own).
template <typename T>
const KernelTable<T>& kernel_table(Isa isa);

// The implementation that last completed a dispatch() with signature Fn (one per (op, dir,
// dtype): the signatures differ), null before the first call. For runtime_info()["last_kernels"],
// which names it, so users and tests can see which variant (e.g. _winograd) ran.
template <typename Fn>
std::atomic<Fn*>& last_kernel() {
  static std::atomic<Fn*> f{nullptr};
  return f;
}

// Runs the kernel `member` for the currently selected ISA, falling back to ref if it is missing
// or declines. Example: dispatch<float>(&KernelTable<float>::relu_fwd, n, x, y);
template <typename T, typename Fn, typename... Args>
void dispatch(ImplList<Fn> KernelTable<T>::* member, Args&&... args) {
  const scratch_registry::KernelScope running;  // empty_cache() frees scratch only between kernels
  const Isa isa = current_isa();
  if (isa != Isa::ref)
    for (Fn* f : kernel_table<T>(isa).*member)
      if (f && f(args...)) {
        last_kernel<Fn>().store(f, std::memory_order_relaxed);
        return;
      }
  Fn* ref = (kernel_table<T>(Isa::ref).*member)[0];
  ref(args...);
  last_kernel<Fn>().store(ref, std::memory_order_relaxed);
}

// ISA whose kernels handle `member` first for the selected ISA ("avx2", or "ref"), for show_runtime.
template <typename T, typename Fn>
const char* selected_kernel_isa(ImplList<Fn> KernelTable<T>::* member) {
  const Isa isa = current_isa();
  return (kernel_table<T>(isa).*member)[0] ? isa_name(isa) : isa_name(Isa::ref);
}

}  // namespace cnnfast
