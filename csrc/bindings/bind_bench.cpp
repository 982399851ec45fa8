// Private helpers for bench/: machine peak FMA throughput and memory bandwidth, the denominators
// of the benchmark report's "% of peak" and "% of bandwidth" columns.
#include <pybind11/stl.h>

#include <string>

#include "bench/fma_peak.h"
#include "common/check.h"
#include "common/isa.h"

namespace py = pybind11;
using namespace py::literals;

namespace {

double bench_fma_peak(const std::string& isa_name, int threads, double seconds) {
  using namespace cnnfast;
  CNNFAST_CHECK(threads >= 1, "_bench_fma_peak: threads must be >= 1, got ", threads);
  CNNFAST_CHECK(seconds > 0 && seconds <= 60, "_bench_fma_peak: seconds must be in (0, 60], got ", seconds);
  const Isa isa = parse_isa(isa_name);  // throws, listing the valid names, for an unknown one
  bool available = false;
  for (Isa i : available_isas()) available = available || i == isa;
  CNNFAST_CHECK(available, "_bench_fma_peak: ISA '", isa_name, "' is not compiled in or not supported by this CPU");
  CNNFAST_CHECK(isa == Isa::avx2 || isa == Isa::avx512, "_bench_fma_peak: no FMA microbenchmark for ISA '", isa_name,
                "' (use avx2 or avx512)");
  py::gil_scoped_release release;  // pure computation on local data
#if CNNFAST_HAVE_X86_SIMD
  return isa == Isa::avx512 ? bench::fma_peak_avx512(threads, seconds) : bench::fma_peak_avx2(threads, seconds);
#else
  return 0.0;  // unreachable: no x86 SIMD ISA is available on this build
#endif
}

py::dict bench_bandwidth(int threads, double megabytes, int repeats) {
  CNNFAST_CHECK(threads >= 1, "_bench_bandwidth: threads must be >= 1, got ", threads);
  CNNFAST_CHECK(megabytes > 0 && megabytes <= 4096, "_bench_bandwidth: megabytes must be in (0, 4096], got ",
                megabytes);
  CNNFAST_CHECK(repeats >= 1, "_bench_bandwidth: repeats must be >= 1, got ", repeats);
  cnnfast::bench::Bandwidth bw{};
  {
    py::gil_scoped_release release;  // allocates and touches only its own arrays
    bw = cnnfast::bench::bandwidth(threads, megabytes, repeats);
  }
  return py::dict("copy"_a = bw.copy, "scale"_a = bw.scale, "triad"_a = bw.triad);
}

}  // namespace

void bind_bench(py::module_& m) {
  m.def("_bench_fma_peak", &bench_fma_peak, "isa"_a, "threads"_a, "seconds"_a = 0.5,
        "Peak FMA throughput in GFLOP/s: independent FMA chains on `threads` threads for `seconds` (bench/ only).");
  m.def(
      "_bench_bandwidth", &bench_bandwidth, "threads"_a, "megabytes"_a = 128.0, "repeats"_a = 5,
      "Best-of-`repeats` STREAM copy/scale/triad bandwidth in GB/s over arrays of `megabytes` MB each (bench/ only).");
}
