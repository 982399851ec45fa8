// Helpers for the ops layer: obtain C-contiguous typed buffers from NumPy arrays and allocate
// outputs. The Python layer already converts inputs; forcecast here keeps the C++ API safe too.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <vector>

#include "common/check.h"

namespace cnnfast {
namespace py = pybind11;

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

inline std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

// A dtype equal to T's native one. Identity is the fast path; an equal but distinct dtype object
// (arrays unpickled in another process, e.g. Dask workers) compares equal through NumPy.
template <typename T>
inline bool dtype_is(const py::dtype& d) {
  const auto want = py::dtype::of<T>();
  return d.is(want) || d.equal(want);
}

inline bool is_f64(const py::array& a) { return dtype_is<double>(a.dtype()); }

inline void check_float(const py::array& a, const char* op, const char* what) {
  CNNFAST_CHECK(dtype_is<float>(a.dtype()) || dtype_is<double>(a.dtype()), op, ": ", what,
                " must be float32 or float64 at the C++ boundary, got dtype ", std::string(py::str(a.dtype())));
}

// An `out=` array must be C-contiguous, writeable, of the right dtype and shape.
template <typename T>
carray<T> check_out(const py::array& out, const std::vector<int64_t>& shape, const char* op) {
  CNNFAST_CHECK(dtype_is<T>(out.dtype()), op, ": out has dtype ", std::string(py::str(out.dtype())),
                " but the result has dtype ", std::string(py::str(py::dtype::of<T>())));
  CNNFAST_CHECK(shape_of(out) == shape, op, ": out has size ", shape_str(shape_of(out)), " but the result has size ",
                shape_str(shape));
  CNNFAST_CHECK(out.flags() & py::array::c_style, op, ": out must be C-contiguous");
  CNNFAST_CHECK(out.writeable(), op, ": out is read-only");
  return py::reinterpret_borrow<carray<T>>(out);
}

}  // namespace cnnfast
