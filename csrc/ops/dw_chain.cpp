// Ops layer of the depthwise-separable chain (kernels/dwchain): [1x1 expand -> BatchNorm -> act]
// -> depthwise -> BatchNorm -> act -> [1x1 project -> BatchNorm -> act] in one call, for eval
// inference of MobileNet-style blocks (cnnfast/nn/_eval_fusion.py, cnnfast/onnx/_fuse.py). The
// BatchNorms are folded into the weights (new arrays; the module's own are never touched). Returns
// None where the chain would not pay or the SIMD kernels do not apply, so the caller runs the layers
// one by one; bad shapes raise.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "common/allocator.h"
#include "common/parallel.h"
#include "dispatch/dispatch.h"
#include "ops/array_util.h"
#include "ops/bn_fold.h"
#include "ops/ops.h"
#include "ops/pointwise_ops.h"

namespace cnnfast {
namespace {

// The intermediate (the depthwise stage's input) of the whole batch must be at least this large for
// the chain to run. Chosen because (Xeon, AVX-512, 2 threads, bench/dw_chain_blocks.py) the chain
// ran MobileNetV2's and PP-LCNet's blocks from 0.95x (a 32-channel depthwise on 112x112 at batch 1)
// to 2.3x the layers one by one, and the text classifier's 5x5 blocks on 2-3 rows of 96 (150-200
// KB an image) 1.3-1.4x even at batch 1: the layer-wise kernels' separate calls cost more than the
// chain saves only on tiny inputs.
constexpr int64_t kMinChainBytes = 64 * 1024;

struct Stage {
  py::array w;
  std::optional<py::array> b;
  std::optional<py::tuple> bn;
  ChainAct act{};
};

Stage parse_stage(const py::tuple& t, const char* name) {
  CNNFAST_CHECK(t.size() == 8, "dw_chain_forward: ", name,
                " must be (weight, bias, bn, act, a, b, lo, hi), got a tuple of ", t.size());
  Stage s;
  s.w = py::cast<py::array>(t[0]);
  if (!t[1].is_none()) s.b = py::cast<py::array>(t[1]);
  if (!t[2].is_none()) s.bn = py::cast<py::tuple>(t[2]);
  const std::string act = py::cast<std::string>(t[3]);
  int k = -1;
  if (act == "none") k = kChainNone;
  if (act == "relu") k = kChainRelu;
  if (act == "clamp") k = kChainClamp;
  if (act == "hardswish") k = kChainHardswish;
  CNNFAST_CHECK(k >= 0, "dw_chain_forward: ", name, " act must be 'none', 'relu', 'clamp' or 'hardswish', got '", act,
                "'");
  s.act = {k, py::cast<double>(t[4]), py::cast<double>(t[5]), py::cast<double>(t[6]), py::cast<double>(t[7])};
  return s;
}

// The stage's weights as T with its BatchNorm folded in (bias: the folded one, or the stage's own).
template <typename T>
carray<T> folded(Stage& s, const char* name, int64_t O, int64_t per, std::optional<carray<T>>& bias) {
  CNNFAST_CHECK(s.w.dtype().equal(py::dtype::of<T>()), "dw_chain_forward: ", name, " weight has dtype ",
                std::string(py::str(s.w.dtype())), " but the input has dtype ",
                std::string(py::str(py::dtype::of<T>())));
  carray<T> w(s.w);
  CNNFAST_CHECK(w.ndim() == 4 && w.shape(0) == O && w.size() == O * per, "dw_chain_forward: ", name, " weight of size ",
                shape_str(shape_of(w)), " does not fit the chain");
  if (s.b) {
    CNNFAST_CHECK(s.b->ndim() == 1 && s.b->shape(0) == O, "dw_chain_forward: ", name, " bias of size ",
                  shape_str(shape_of(*s.b)), " does not match its ", O, " output channels");
  }
  std::optional<py::array> b = s.b;
  if (s.bn) {
    std::vector<T> scale, shift;
    bn_scale_shift<T>(*s.bn, O, "dw_chain_forward", scale, shift);
    fold_bn<T>(w, b, scale, shift);
  }
  if (b) bias.emplace(*b);
  return w;
}

template <typename T>
py::object run(const py::array& x_, std::optional<Stage>& ex, Stage& dw, std::optional<Stage>& pr, Pair stride,
               Pair padding, bool force) {
  CNNFAST_CHECK(x_.ndim() == 4, "dw_chain_forward: input must be 4-D, got size ", shape_str(shape_of(x_)));
  const int64_t N = x_.shape(0), C = x_.shape(1), H = x_.shape(2), W = x_.shape(3);
  const int64_t E = ex ? ex->w.shape(0) : C;
  CNNFAST_CHECK(dw.w.ndim() == 4 && dw.w.shape(0) == E && dw.w.shape(1) == 1 && dw.w.shape(2) == dw.w.shape(3),
                "dw_chain_forward: depthwise weight of size ", shape_str(shape_of(dw.w)), " is not (", E,
                ", 1, R, R) for ", E, " channels");
  CNNFAST_CHECK(stride[0] == stride[1] && padding[0] == padding[1] && stride[0] >= 1 && padding[0] >= 0,
                "dw_chain_forward: stride (", stride[0], ", ", stride[1], ") and padding (", padding[0], ", ",
                padding[1], ") must be equal on both axes");
  const int64_t R = dw.w.shape(2), s = stride[0], pad = padding[0];
  CNNFAST_CHECK(H + 2 * pad >= R && W + 2 * pad >= R, "dw_chain_forward: the ", R, "x", R,
                " filter is larger than the padded input ", H, "x", W);
  const int64_t OH = (H + 2 * pad - R) / s + 1, OW = (W + 2 * pad - R) / s + 1;
  const int64_t K = pr ? pr->w.shape(0) : E;
  // Where the chain pays (Xeon, AVX-512, bench/dw_chain_blocks.py, process CPU time, batch 1 and 8):
  // outputs of 14 and more columns (MobileNetV2's 14x14 blocks 1.07-1.23x; its 7x7 ones and
  // PP-LCNet's 7x7 5x5 blocks ran 0.54-0.91x: 4 rows of 7 columns leave the project stage too few
  // pixels a block); stride 2 without an expand stage only from 48 output columns (PP-LCNet's
  // 128 -> 256 on 56 -> 28 ran 0.83-0.86x: the chain saves only the small depthwise output there).
  const bool domain = (R == 3 || R == 5 || R == 7) && s <= 2 && pad < R && OW >= 12 && (s == 1 || ex || OW >= 48);
  if (!force && (!domain || N * E * H * W * int64_t(sizeof(T)) < kMinChainBytes)) return py::none();
  DwChain p{};
  p.N = N, p.C = C, p.H = H, p.W = W, p.E = E, p.K = K, p.R = R, p.stride = s, p.pad = pad, p.OH = OH, p.OW = OW;
  p.expand = bool(ex), p.project = bool(pr);
  p.ea = ex ? ex->act : ChainAct{}, p.da = dw.act, p.pa = pr ? pr->act : ChainAct{};
  // Every thread needs a unit: at batch 1 on a short plane the layer-wise kernels, which split
  // channels among the threads, use them all (PP-LCNet at batch 1 on 2 threads was slower with its
  // 14x14 chains on one thread).
  const int64_t mt = max_threads();
  // The 1x1 stages' weights are read once per block of output rows (the layer-wise kernels read
  // them once per plane): PP-LCNet's 256 -> 256 after a 5x5 depthwise on 14x14 (4.6 KB of weights
  // per block pixel) was slower than the layers in its network at batch 1 on 2 threads, while
  // MobileNetV2's 56x56 blocks (0.4 KB) and PP-LCNet's 128 -> 128 on 56x56 (1.2 KB) gain
  // (bench/dw_chain_blocks.py).
  const int64_t wbytes = ((ex ? E * C : 0) + (pr ? K * E : 0)) * int64_t(sizeof(T));
  const int64_t block_px = (s == 1 ? kDwChainRowsS1 : kDwChainRowsS2) * OW;
  if (!force && wbytes > 2048 * block_px) return py::none();
  if (!force && N * dwchain_row_chunks(p, mt) < std::min<int64_t>(mt, N * OH)) return py::none();
  std::optional<carray<T>> be, bd, bp;
  std::optional<carray<T>> we, wp;
  if (ex) {
    CNNFAST_CHECK(ex->w.ndim() == 4 && ex->w.shape(1) == C, "dw_chain_forward: expand weight of size ",
                  shape_str(shape_of(ex->w)), " does not take the input's ", C, " channels");
    we.emplace(folded<T>(*ex, "expand", E, C, be));
  }
  carray<T> wd = folded<T>(dw, "depthwise", E, R * R, bd);
  if (pr) {
    CNNFAST_CHECK(pr->w.ndim() == 4 && pr->w.shape(1) == E, "dw_chain_forward: project weight of size ",
                  shape_str(shape_of(pr->w)), " does not take the depthwise stage's ", E, " channels");
    wp.emplace(folded<T>(*pr, "project", K, E, bp));
  }
  carray<T> x(x_);
  carray<T> y = new_array<T>({N, K, OH, OW});
  const T* xp = x.data();
  const T* wep = we ? we->data() : nullptr;
  const T* bep = be ? be->data() : nullptr;
  const T* wdp = wd.data();
  const T* bdp = bd ? bd->data() : nullptr;
  const T* wpp = wp ? wp->data() : nullptr;
  const T* bpp = bp ? bp->data() : nullptr;
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    dispatch<T>(&KernelTable<T>::dwchain_fwd, p, xp, wep, bep, wdp, bdp, wpp, bpp, yp);
  }
  return std::move(y);
}

}  // namespace

py::object dw_chain_forward(const py::array& x, const std::optional<py::tuple>& expand, const py::tuple& dw,
                            const std::optional<py::tuple>& project, Pair stride, Pair padding, bool force) {
  check_float(x, "dw_chain_forward", "input");
  std::optional<Stage> ex, pr;
  if (expand) ex = parse_stage(*expand, "expand");
  Stage d = parse_stage(dw, "depthwise");
  if (project) pr = parse_stage(*project, "project");
  return is_f64(x) ? run<double>(x, ex, d, pr, stride, padding, force)
                   : run<float>(x, ex, d, pr, stride, padding, force);
}

}  // namespace cnnfast
