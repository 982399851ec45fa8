// The per-thread switch that lets the conv2d autotuner (dispatch/autotune.h) time kernels the
// ordered list's thresholds would skip. A kernel declines a configuration for one of two reasons:
//   * it cannot compute it (wrong kernel size, stride, groups; out of memory; Winograd beyond
//     512 input channels, where its rounding error outgrows float32): always honoured;
//   * a threshold measured on one CPU says another kernel is probably faster (Winograd's
//     pays_off, the direct kernels' channel and plane limits): skipped while relax_heuristics()
//     is true on the calling thread.
// Only the autotuner sets it, around a timed run or a call of a winner it chose that way; the
// kernels read it at entry, on the calling thread, before any parallel region.
//
// External linkage on purpose (as winograd_switch.h): one flag per thread shared by every ISA file.
#pragma once
#include <cstdint>

namespace cnnfast {

inline bool& relax_heuristics() {
  thread_local bool on = false;
  return on;
}

// With heuristics relaxed the direct kernels still bound their per-thread copy of the padded
// plane (kPlaneMaxBytes, 64 KiB) -- by this factor times that, 4 MiB: beyond it their scratch
// would grow with the image (a whole 512 x 224 x 224 plane is 100 MB per thread).
constexpr int64_t kRelaxedPlaneBytesFactor = 64;

// Sets relax_heuristics() for a scope, restoring the previous value.
struct RelaxHeuristics {
  explicit RelaxHeuristics(bool on) : prev(relax_heuristics()) { relax_heuristics() = on; }
  ~RelaxHeuristics() { relax_heuristics() = prev; }
  RelaxHeuristics(const RelaxHeuristics&) = delete;
  RelaxHeuristics& operator=(const RelaxHeuristics&) = delete;
  bool prev;
};

}  // namespace cnnfast
