#include "dispatch/dispatch.h"

#include <cstdlib>
#include <type_traits>

namespace cnnfast {
namespace {

template <typename T>
struct Tables {
  KernelTable<T> t[3];
};

template <typename T>
Tables<T> build() {
  Tables<T> tabs;
  // Append each kernel to its slot's list, in kernels.inc order.
  auto add = [](auto& list, auto* fn) {
    for (auto& slot : list)
      if (!slot) {
        slot = fn;
        return;
      }
    std::abort();  // more than kMaxImpls implementations for one slot: raise kMaxImpls
  };
#define CNNFAST_KERNEL(op, dir, dtype, isa) CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, )
#define CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, variant) \
  if constexpr (std::is_same_v<T, dtype##_t>)                \
    add(tabs.t[static_cast<int>(Isa::isa)].op##_##dir, &op##_##dir##_##dtype##_##isa##variant);
#include "kernels/kernels.inc"
#undef CNNFAST_KERNEL_VARIANT
#undef CNNFAST_KERNEL
  return tabs;
}

}  // namespace

template <typename T>
const KernelTable<T>& kernel_table(Isa isa) {
  static const Tables<T> tabs = build<T>();  // built once, thread-safe (magic static)
  return tabs.t[static_cast<int>(isa)];
}

template const KernelTable<float>& kernel_table<float>(Isa);
template const KernelTable<double>& kernel_table<double>(Isa);

}  // namespace cnnfast
