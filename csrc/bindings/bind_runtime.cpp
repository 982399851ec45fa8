#include <pybind11/stl.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/allocator.h"
#include "common/check.h"
#include "common/isa.h"
#include "common/parallel.h"
#include "common/scratch.h"
#include "dispatch/autotune.h"
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
#define CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, variant)                                       \
  if (key == #op "_" #dir "_" #dtype &&                                                            \
      last_kernel<op##_##dir##_sig<dtype##_t>>().load() == &op##_##dir##_##dtype##_##isa##variant) \
    return py::str(#op "_" #dir "_" #dtype "_" #isa #variant);
#include "kernels/kernels.inc"
#undef CNNFAST_KERNEL_VARIANT
#undef CNNFAST_KERNEL
  return py::none();
}

// Every kernel of kernels.inc as (full name, address), for naming the autotuner's candidates.
const std::vector<std::pair<std::string, const void*>>& kernel_names() {
  using namespace cnnfast;
  static const std::vector<std::pair<std::string, const void*>> names = [] {
    std::vector<std::pair<std::string, const void*>> v;
#define CNNFAST_KERNEL(op, dir, dtype, isa) CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, )
#define CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, variant) \
  v.emplace_back(#op "_" #dir "_" #dtype "_" #isa #variant,  \
                 reinterpret_cast<const void*>(&op##_##dir##_##dtype##_##isa##variant));
#include "kernels/kernels.inc"
#undef CNNFAST_KERNEL_VARIANT
#undef CNNFAST_KERNEL
    return v;
  }();
  return names;
}

std::string kernel_name(const void* f) {
  for (const auto& [name, addr] : kernel_names())
    if (addr == f) return name;
  return "?";
}

// cnnfast.autotune_cache(): one dict per tuned configuration.
py::list autotune_cache() {
  using namespace cnnfast::autotune;
  static const char* passes[] = {"fwd", "bwd_input", "bwd_weight"};
  py::list out;
  for (const auto& [k, e] : snapshot()) {
    const int64_t* v = k.v;
    py::dict d;
    d["pass"] = passes[v[0]];
    d["dtype"] = v[1] == 4 ? "float32" : "float64";
    d["isa"] = cnnfast::isa_name(static_cast<cnnfast::Isa>(v[2]));
    d["threads"] = v[3];
    d["winograd"] = v[4] != 0;
    d["bias"] = (v[5] & 1) != 0;
    d["relu"] = (v[5] & 2) != 0;
    d["input"] = py::make_tuple(v[6], v[7], v[8], v[9]);
    d["weight"] = py::make_tuple(v[10], v[7] / v[21], v[11], v[12]);
    d["output"] = py::make_tuple(v[6], v[10], v[13], v[14]);
    d["stride"] = py::make_tuple(v[15], v[16]);
    d["padding"] = py::make_tuple(v[17], v[18]);
    d["dilation"] = py::make_tuple(v[19], v[20]);
    d["groups"] = v[21];
    d["winner"] = e.winner >= 0 ? py::object(py::str(kernel_name(e.cand[e.winner].fn))) : py::none();
    d["heuristic"] = e.heuristic >= 0 ? py::object(py::str(kernel_name(e.cand[e.heuristic].fn))) : py::none();
    py::dict times, relaxed;
    for (int i = 0; i < e.n; ++i) {
      times[py::str(kernel_name(e.cand[i].fn))] = e.cand[i].seconds * 1e3;
      relaxed[py::str(kernel_name(e.cand[i].fn))] = e.cand[i].relaxed;
    }
    d["times_ms"] = times;
    d["relaxed"] = relaxed;
    d["rounds"] = e.rounds;
    d["screened"] = e.screened;
    d["first_call_ms"] = e.first_call_seconds * 1e3;
    out.append(d);
  }
  return out;
}

void pin_conv2d_kernel(const std::optional<std::string>& name) {
  if (!name) {
    cnnfast::autotune::pinned().store(nullptr);
    return;
  }
  for (const auto& [n, addr] : kernel_names())
    if (n == *name && n.rfind("conv2d_", 0) == 0) {
      cnnfast::autotune::pinned().store(addr);
      return;
    }
  CNNFAST_CHECK(false, "_pin_conv2d_kernel: no conv2d kernel named '", *name, "'");
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
  d["autotune"] = autotune::enabled().load();
  d["autotune_entries"] = autotune::snapshot().size();
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
#define CNNFAST_KERNEL_VARIANT(op, dir, dtype, isa, variant) \
  l.append(py::make_tuple(#op, #dir, #dtype, #isa, #variant));
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
  m.def(
      "set_winograd", [](bool on) { cnnfast::winograd_enabled().store(on); }, "enabled"_a,
      "Allow (True) or forbid (False) the Winograd F(4x4,3x3) conv2d kernels (process-wide).");
  m.def("get_winograd", [] { return cnnfast::winograd_enabled().load(); }, "Whether the Winograd kernels may run.");
  m.def("runtime_info", &runtime_info, "Compiled/available ISAs, selected ISA, CPU features, threading, threads.");
  m.def(
      "_set_pool_spin_us",
      [](int64_t us) {
        CNNFAST_CHECK(us >= 0 && us <= 1000000, "_set_pool_spin_us: 0..1000000, got ", us);
        cnnfast::pool::set_spin_time_us(us);
      },
      "us"_a, "How long idle pool workers spin before sleeping, in microseconds (default 100; for measurements).");
  m.def("_get_pool_spin_us", &cnnfast::pool::spin_time_us, "How long idle pool workers spin before sleeping (us).");
  m.def(
      "set_autotune", [](bool on) { cnnfast::autotune::enabled().store(on); }, "enabled"_a,
      "Time the conv2d kernels on the first call of each new configuration and reuse the fastest (process-wide).");
  m.def("get_autotune", [] { return cnnfast::autotune::enabled().load(); }, "Whether conv2d calls are autotuned.");
  m.def("autotune_cache", &autotune_cache, "The tuned conv2d configurations: winner, candidates' times.");
  m.def("clear_autotune_cache", [] { cnnfast::autotune::clear(); }, "Forget every tuned conv2d configuration.");
  m.def(
      "_autotune_counters",
      [] {
        const auto& c = cnnfast::autotune::counters();
        return py::dict("tunings"_a = c.tunings.load(), "timed_runs"_a = c.timed_runs.load(), "hits"_a = c.hits.load(),
                        "untuned"_a = c.untuned.load());
      },
      "Counters of the conv2d autotuner (for tests).");
  m.def("_pin_conv2d_kernel", &pin_conv2d_kernel, "name"_a,
        "Test/bench hook: run this conv2d kernel (heuristics relaxed) wherever it is in the list; None unpins.");
  m.def("_kernel_list", &kernel_list, "Every (op, dir, dtype, isa, variant) in kernels.inc.");
  m.def(
      "empty_cache", [] { return cnnfast::empty_cache() + cnnfast::scratch_registry::release_all(); },
      "Free the cached output buffers (common/allocator.h) and, between kernel calls, the kernels' scratch "
      "(common/scratch.h); returns bytes freed.");
  m.def("set_cache_limit", &cnnfast::set_cache_limit, "bytes"_a,
        "Bound the output-buffer cache (bytes, 0 disables it); returns the old bound.");
  m.def(
      "cache_info",
      [] {
        const auto s = cnnfast::cache_stats();
        return py::dict("cached_bytes"_a = s.cached_bytes, "cached_blocks"_a = s.cached_blocks, "hits"_a = s.hits,
                        "misses"_a = s.misses, "limit"_a = cnnfast::cache_limit());
      },
      "Output-buffer cache statistics.");
  // Read environment overrides once, at import: a bad CNNFAST_ISA / CNNFAST_NUM_THREADS raises here.
  if (const char* nt = std::getenv("CNNFAST_NUM_THREADS"); nt && *nt) {
    char* end = nullptr;
    const long n = std::strtol(nt, &end, 10);
    CNNFAST_CHECK(end && *end == '\0' && n >= 1 && n <= 4096, "CNNFAST_NUM_THREADS must be a positive integer, got '",
                  nt, "'");
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
  if (const char* at = std::getenv("CNNFAST_AUTOTUNE"); at && *at) {
    const std::string v(at);
    CNNFAST_CHECK(v == "0" || v == "1", "CNNFAST_AUTOTUNE must be 0 or 1, got '", at, "'");
    cnnfast::autotune::enabled().store(v == "1");
  }
  (void)cnnfast::current_isa();
}
