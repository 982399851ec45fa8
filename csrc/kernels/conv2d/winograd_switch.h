// The process-wide switch for the Winograd conv2d kernels (conv2d_winograd.h): when off they
// decline and the GEMM path runs. Set by cnnfast.set_winograd() and, at import, by the
// environment variable CNNFAST_WINOGRAD=0|1 (bindings/bind_runtime.cpp). On by default.
//
// External linkage on purpose (unlike the kernels): one flag shared by every ISA file. It holds
// no ISA-specific code, so the linker merging the copies is what we want.
#pragma once
#include <atomic>

namespace cnnfast {

inline std::atomic<bool>& winograd_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

}  // namespace cnnfast
