#include <atomic>

#include "common/allocator.h"
#include "common/parallel.h"
#include "dispatch/dispatch.h"
#include "ops/array_util.h"
#include "ops/maxpool2d_checks.h"
#include "ops/ops.h"

namespace cnnfast {
namespace {

template <typename T>
py::object fwd(const py::array& x_, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode,
               bool return_indices) {
  const Pool2dShape p = maxpool2d_shape(shape_of(x_), kernel, stride, padding, dilation, ceil_mode);
  carray<T> x(x_);
  carray<T> y = new_array<T>(maxpool2d_output_size(p));
  std::optional<py::array_t<int64_t>> idx;
  if (return_indices) idx = new_array<int64_t>(maxpool2d_output_size(p));
  const T* xp = x.data();
  T* yp = y.mutable_data();
  int64_t* ip = idx ? idx->mutable_data() : nullptr;
  {
    // Safe to drop the GIL: local py::array handles keep the buffers alive; kernels touch no Python objects.
    py::gil_scoped_release release;
    if (p.N > 0) dispatch<T>(&KernelTable<T>::maxpool2d_fwd, p, xp, yp, ip);
  }
  if (return_indices) return py::make_tuple(y, *idx);
  return std::move(y);
}

template <typename T>
py::array bwd(const py::array& gy_, const std::vector<int64_t>& input_size, const py::array& idx_, Pair kernel,
              Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
  const Pool2dShape p = maxpool2d_shape(input_size, kernel, stride, padding, dilation, ceil_mode);
  const auto osz = maxpool2d_output_size(p);
  CNNFAST_CHECK(shape_of(gy_) == osz, "max_pool2d_backward: expected grad_output of size ", shape_str(osz),
                " (the forward output for input ", shape_str(input_size), "), but got grad_output of size ",
                shape_str(shape_of(gy_)));
  CNNFAST_CHECK(shape_of(idx_) == osz, "max_pool2d_backward: expected indices of size ", shape_str(osz),
                ", but got indices of size ", shape_str(shape_of(idx_)));
  CNNFAST_CHECK(idx_.dtype().kind() == 'i' || idx_.dtype().kind() == 'u',
                "max_pool2d_backward: indices must be an integer array, got dtype ",
                std::string(py::str(idx_.dtype())));
  carray<T> gy(gy_);
  carray<int64_t> idx(idx_);
  carray<T> gx = new_array<T>(input_size);
  const T* gyp = gy.data();
  const int64_t* ip = idx.data();
  T* gxp = gx.mutable_data();
  const int64_t n = idx.size(), plane = p.H * p.W;
  bool ok = true;
  {
    py::gil_scoped_release release;  // see fwd()
    // Indices come from the user: an out-of-range one would write outside gx, so check them all
    // (one pass, memory-bound; run on all threads so it stays small next to the scatter).
    std::atomic<bool> all_ok{true};
    parallel_for(n, 1, [&](int64_t b, int64_t e) {
      // v is valid iff v >= 0 and v - plane < 0: OR up v | ~(v - plane) and test the sign bit
      // (branch-free; four independent accumulators so the loop is not one dependency chain).
      auto bad = [plane](int64_t v) {
        return v | ~static_cast<int64_t>(static_cast<uint64_t>(v) - static_cast<uint64_t>(plane));
      };
      int64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, i = b;
      for (; i + 4 <= e; i += 4) {
        a0 |= bad(ip[i]);
        a1 |= bad(ip[i + 1]);
        a2 |= bad(ip[i + 2]);
        a3 |= bad(ip[i + 3]);
      }
      for (; i < e; ++i) a0 |= bad(ip[i]);
      const int64_t acc = a0 | a1 | a2 | a3;
      if (acc < 0) all_ok.store(false, std::memory_order_relaxed);
    });
    ok = all_ok.load();
    if (ok && p.N > 0) dispatch<T>(&KernelTable<T>::maxpool2d_bwd, p, gyp, ip, gxp);
  }
  CNNFAST_CHECK(ok, "max_pool2d_backward: indices must lie in [0, H*W) = [0, ", plane, ") for input ",
                shape_str(input_size));
  return std::move(gx);
}

}  // namespace

py::object max_pool2d_forward(const py::array& x, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode,
                              bool return_indices) {
  check_float(x, "max_pool2d", "input");
  return is_f64(x) ? fwd<double>(x, kernel, stride, padding, dilation, ceil_mode, return_indices)
                   : fwd<float>(x, kernel, stride, padding, dilation, ceil_mode, return_indices);
}

py::array max_pool2d_backward(const py::array& gy, const std::vector<int64_t>& input_size, const py::array& indices,
                              Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
  check_float(gy, "max_pool2d_backward", "grad_output");
  return is_f64(gy) ? bwd<double>(gy, input_size, indices, kernel, stride, padding, dilation, ceil_mode)
                    : bwd<float>(gy, input_size, indices, kernel, stride, padding, dilation, ceil_mode);
}

}  // namespace cnnfast
