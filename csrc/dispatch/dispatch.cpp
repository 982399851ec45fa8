#include "dispatch/dispatch.h"

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
#define CNNFAST_KERNEL(op, dir, dtype, isa)                                                   \
  if constexpr (std::is_same_v<T, dtype##_t>)                                                 \
    tabs.t[static_cast<int>(Isa::isa)].op##_##dir = &op##_##dir##_##dtype##_##isa;
#include "kernels/kernels.inc"
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
