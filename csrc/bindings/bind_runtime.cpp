#include <pybind11/stl.h>

#include <cstdlib>
#include <string>

#include "common/allocator.h"
#include "common/scratch.h"
#include "common/check.h"
#include "common/isa.h"
#include "common/parallel.h"
#include "dispatch/dispatch.h"
#include "kernels/conv2d/winograd_switch.h"

namespace py = pybind11;
using namespace py::literals;

namespace {

void set_num_threads(int n) {
  CNNFAST_CHECK(n >= 1, "set_num_threads: the number of threads must be a positive integer, got ", n);
  CNNFAST_CHECK(n <= 4096, "set_num_threads: at most 4096 threads, got ", n);
  cnnfast::num_threads_override().store(n);
}

// Full name of the implementation that last ran for (op, dir, dtype), e.g.
// "conv2d_fwd_f32_avx2_winograd", or None before the first call.
py::object last_kernel_name(const std::string& key) {
  using namespace cnnfast;
#define CNNFAST_KERNEL(op, dir, dtype, isa) CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, )
#define CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, variant)                                        \
  if (key == #op "_" #dir "_" #dtype &&                                                             \
      last_kernel<op##_##dir##_sig<dtype##_t>>().load() == &op##_##dir##_##dtype##_##isa##variant) \
    return py::str(#op "_" #dir "_" #dtype "_" #isa #variant);
#include "kernels/kernels.inc"
#undef CNNFAST_KERNEL_VARIANT
#undef CNNFAST_KERNEL
  return py::none();
}

py::dict runtime_info() {
  using namespace cnnfast;
  py::dict d;
  py::list compiled, available;
  for (Isa i : compiled_isas()) compiled.append(isa_name(i));
  for (Isa i : available_isas()) available.append(isa_name(i));
  d["compiled_isas"] = compiled;
  d["available_isas"] = available;
  d["selected_isa"] = isa_name(current_isa());
  const CpuFeatures& f = cpu_features();
  d["cpu_features"] = py::dict("avx2"_a = f.avx2, "fma"_a = f.fma, "avx512f"_a = f.avx512f, "avx512bw"_a = f.avx512bw,
                               "avx512dq"_a = f.avx512dq, "avx512vl"_a = f.avx512vl);
  // Threads come from cnnfast's own pool (common/threadpool.h): no OpenMP runtime is loaded.
  d["threading"] = "cnnfast thread pool (spin " + std::to_string(cnnfast::pool::spin_time_us()) + " us, then sleep)";
  d["pool_workers_started"] = cnnfast::pool::workers_started();
  d["num_threads"] = max_threads();
  py::dict kernels;
  kernels["conv2d_fwd_f32"] = selected_kernel_isa<float>(&KernelTable<float>::conv2d_fwd);
  kernels["conv2d_bwd_input_f32"] = selected_kernel_isa<float>(&KernelTable<float>::conv2d_bwd_input);
  kernels["conv2d_bwd_weight_f32"] = selected_kernel_isa<float>(&KernelTable<float>::conv2d_bwd_weight);
  kernels["maxpool2d_fwd_f32"] = selected_kernel_isa<float>(&KernelTable<float>::maxpool2d_fwd);
  kernels["maxpool2d_bwd_f32"] = selected_kernel_isa<float>(&KernelTable<float>::maxpool2d_bwd);
  kernels["relu_fwd_f32"] = selected_kernel_isa<float>(&KernelTable<float>::relu_fwd);
  kernels["relu_bwd_f32"] = selected_kernel_isa<float>(&KernelTable<float>::relu_bwd);
  d["kernels"] = kernels;
  py::dict last;
  for (const char* key : {"conv2d_fwd_f32", "conv2d_fwd_f64", "conv2d_bwd_input_f32", "conv2d_bwd_input_f64",
                          "conv2d_bwd_weight_f32", "conv2d_bwd_weight_f64"})
    last[key] = last_kernel_name(key);
  d["last_kernels"] = last;
  d["winograd"] = winograd_enabled().load();
#ifdef CNNFAST_SANITIZED
  d["sanitized"] = true;
#else
  d["sanitized"] = false;
#endif
  return d;
}

py::list kernel_list() {
  py::list l;
#define CNNFAST_KERNEL(op, dir, dtype, isa) l.append(py::make_tuple(#op, #dir, #dtype, #isa, ""));
#define CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, variant) l.append(py::make_tuple(#op, #dir, #dtype, #isa, #variant));
#include "kernels/kernels.inc"
#undef CNNFAST_KERNEL_VARIANT
#undef CNNFAST_KERNEL
  return l;
}

}  // namespace

void bind_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, "n"_a, "Set the number of threads cnnfast kernels use (process-wide).");
  m.def("get_num_threads", &cnnfast::max_threads, "Number of threads a cnnfast kernel will use.");
  m.def("set_isa", &cnnfast::set_isa, "name"_a, "Force a kernel path: 'ref', 'avx2' or 'avx512'.");
  m.def("get_isa", [] { return std::string(cnnfast::isa_name(cnnfast::current_isa())); }, "The selected kernel path.");
  m.def("set_winograd", [](bool on) { cnnfast::winograd_enabled().store(on); }, "enabled"_a,
        "Allow (True) or forbid (False) the Winograd F(4x4,3x3) conv2d kernels (process-wide).");
  m.def("get_winograd", [] { return cnnfast::winograd_enabled().load(); }, "Whether the Winograd kernels may run.");
  m.def("runtime_info", &runtime_info, "Compiled/available ISAs, selected ISA, CPU features, threading, threads.");
  m.def("_set_pool_spin_us", [](int64_t us) { CNNFAST_CHECK(us >= 0 && us <= 1000000, "_set_pool_spin_us: 0..1000000, got ", us); cnnfast::pool::set_spin_time_us(us); }, "us"_a,
        "How long idle pool workers spin before sleeping, in microseconds (default 100; for measurements).");
  m.def("_get_pool_spin_us", &cnnfast::pool::spin_time_us, "How long idle pool workers spin before sleeping (us).");
  m.def("_kernel_list", &kernel_list, "Every (op, dir, dtype, isa, variant) in kernels.inc.");
  m.def("empty_cache", [] { return cnnfast::empty_cache() + cnnfast::scratch_registry::release_all(); },
        "Free the cached output buffers (common/allocator.h) and, between kernel calls, the kernels' scratch "
        "(common/scratch.h); returns bytes freed.");
  m.def("set_cache_limit", &cnnfast::set_cache_limit, "bytes"_a, "Bound the output-buffer cache (bytes, 0 disables it); returns the old bound.");
  m.def("cache_info", [] { const auto s = cnnfast::cache_stats(); return py::dict("cached_bytes"_a = s.cached_bytes, "cached_blocks"_a = s.cached_blocks, "hits"_a = s.hits, "misses"_a = s.misses, "limit"_a = cnnfast::cache_limit()); }, "Output-buffer cache statistics.");
  // Read environment overrides once, at import: a bad CNNFAST_ISA / CNNFAST_NUM_THREADS raises here.
  if (const char* nt = std::getenv("CNNFAST_NUM_THREADS"); nt && *nt) {
    char* end = nullptr;
    const long n = std::strtol(nt, &end, 10);
    CNNFAST_CHECK(end && *end == '\0' && n >= 1 && n <= 4096,
                  "CNNFAST_NUM_THREADS must be a positive integer, got '", nt, "'");
    set_num_threads(static_cast<int>(n));
  }
  if (const char* cm = std::getenv("CNNFAST_CACHE_MB"); cm && *cm) {
    char* end = nullptr;
    const long long mb = std::strtoll(cm, &end, 10);
    CNNFAST_CHECK(end && *end == '\0' && mb >= 0 && mb <= (1LL << 30),
                  "CNNFAST_CACHE_MB must be a non-negative integer (MiB; 0 disables the cache), got '", cm, "'");
    cnnfast::set_cache_limit(static_cast<std::size_t>(mb) << 20);
  }
  if (const char* wg = std::getenv("CNNFAST_WINOGRAD"); wg && *wg) {
    const std::string v(wg);
    CNNFAST_CHECK(v == "0" || v == "1", "CNNFAST_WINOGRAD must be 0 or 1, got '", wg, "'");
    cnnfast::winograd_enabled().store(v == "1");
  }
  (void)cnnfast::current_isa();
}
