// Argument checking for the ops layer. CNNFAST_CHECK throws std::invalid_argument, which
// pybind11 turns into a Python ValueError. Kernels never throw: they only assert.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cnnfast {

template <typename... Args>
[[noreturn]] inline void throw_invalid(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw std::invalid_argument(os.str());
}

#define CNNFAST_CHECK(cond, ...)                        \
  do {                                                  \
    if (!(cond)) ::cnnfast::throw_invalid(__VA_ARGS__); \
  } while (0)

// "(1, 4, 5, 5)" -- PyTorch prints shapes this way in its messages.
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

// Product of sizes with overflow detection (sizes whose product overflows int64 are rejected).
inline int64_t checked_numel(const std::vector<int64_t>& s, const char* op, const char* what) {
  int64_t n = 1;
  for (int64_t d : s) {
    CNNFAST_CHECK(d >= 0, op, ": ", what, " has a negative size ", shape_str(s));
    if (d != 0 && n > INT64_MAX / d)
      throw_invalid(op, ": ", what, " of size ", shape_str(s), " has too many elements (overflows int64)");
    n *= d;
  }
  return n;
}

}  // namespace cnnfast
