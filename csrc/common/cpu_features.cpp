// CPU feature detection and ISA selection (chosen once, at first use; CNNFAST_ISA overrides).
#include <atomic>
#include <cstdlib>
#include <mutex>

#include "common/check.h"
#include "common/isa.h"
#include "common/portable.h"

namespace cnnfast {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    // MSVC has no __builtin_cpu_supports: CPUID leaves 1 and 7, and XGETBV for the OS-enabled
    // register state (YMM for AVX2, ZMM + opmask for AVX-512), as the GCC builtin checks.
    int r1[4], r7[4];
    __cpuid(r1, 1);
    __cpuidex(r7, 7, 0);
    const bool osxsave = (r1[2] >> 27) & 1;
    const unsigned long long xcr0 = osxsave ? _xgetbv(0) : 0;
    const bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0;
    c.avx2 = ymm && ((r7[1] >> 5) & 1);
    c.fma = ymm && ((r1[2] >> 12) & 1);
    c.avx512f = zmm && ((r7[1] >> 16) & 1);
    c.avx512dq = zmm && ((r7[1] >> 17) & 1);
    c.avx512bw = zmm && ((r7[1] >> 30) & 1);
    c.avx512vl = zmm && ((r7[1] >> 31) & 1);
#elif defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
#endif
    return c;
  }();
  return f;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    default: return "ref";
  }
}

std::vector<Isa> compiled_isas() {
#if CNNFAST_HAVE_X86_SIMD
  return {Isa::ref, Isa::avx2, Isa::avx512};
#else
  return {Isa::ref};
#endif
}

static bool cpu_supports(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::avx2: return f.avx2 && f.fma;
    case Isa::avx512: return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
    default: return true;
  }
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa i : compiled_isas())
    if (cpu_supports(i)) out.push_back(i);
  return out;
}

Isa best_isa() { return available_isas().back(); }

Isa parse_isa(const std::string& name) {
  for (Isa i : {Isa::ref, Isa::avx2, Isa::avx512})
    if (name == isa_name(i)) return i;
  throw_invalid("CNNFAST_ISA: unknown ISA '", name, "'; valid values are ref, avx2, avx512");
}

static std::atomic<int> g_isa{-1};

static void select(Isa i) {
  bool compiled = false;
  for (Isa c : compiled_isas()) compiled |= (c == i);
  CNNFAST_CHECK(compiled, "CNNFAST_ISA: '", isa_name(i), "' is not compiled into this build of cnnfast");
  CNNFAST_CHECK(cpu_supports(i), "CNNFAST_ISA: this CPU does not support '", isa_name(i), "'");
  g_isa.store(static_cast<int>(i));
}

void set_isa(const std::string& name) { select(parse_isa(name)); }

Isa current_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v >= 0) return static_cast<Isa>(v);
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("CNNFAST_ISA");
    if (env && *env)
      select(parse_isa(env));  // errors surface at import (see runtime binding)
    else
      g_isa.store(static_cast<int>(best_isa()));
  });
  return static_cast<Isa>(g_isa.load());
}

}  // namespace cnnfast
