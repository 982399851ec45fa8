// cnnfast._core: the compiled part of cnnfast. Only calls one bind_* function per binding file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_conv2d(py::module_& m);
void bind_pool(py::module_& m);
void bind_activation(py::module_& m);
void bind_pointwise(py::module_& m);
void bind_runtime(py::module_& m);
void bind_bench(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "cnnfast compiled kernels (private; use the cnnfast package)";
  bind_runtime(m);
  bind_conv2d(m);
  bind_pool(m);
  bind_activation(m);
  bind_pointwise(m);
  bind_bench(m);
}
