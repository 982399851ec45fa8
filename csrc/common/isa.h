// The instruction-set paths a kernel can be compiled for. CNNFAST_HAVE_X86_SIMD is defined by
// CMake on x86-64 builds, where the avx2/avx512 sources are compiled with per-file flags.
#pragma once
#include <string>
#include <vector>

namespace cnnfast {

enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// ISAs compiled into this build, in order ref, avx2, avx512.
std::vector<Isa> compiled_isas();
// ISAs that are compiled in *and* supported by this CPU.
std::vector<Isa> available_isas();
// Best available ISA for this CPU.
Isa best_isa();
// Currently selected ISA (CNNFAST_ISA at first use, else best_isa(); changeable by set_isa).
Isa current_isa();
// Throws std::invalid_argument naming the valid values if `name` is unknown, or if the ISA is
// not compiled in or not supported by this CPU.
void set_isa(const std::string& name);
Isa parse_isa(const std::string& name);

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
};
const CpuFeatures& cpu_features();

}  // namespace cnnfast
