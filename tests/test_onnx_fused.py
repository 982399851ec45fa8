"""The eval-mode ndarray path of imported graphs (cnnfast/onnx/_fuse.py): Conv + BatchNorm +
activation fused into one conv call must give the node-by-node path's results, use weights changed
in place, fall back for hooks / training-mode children, and leave Tensor inputs recorded."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
import cnnfast.onnx as connx
from cnnfast.onnx._graph import _EVAL_PROGRAMS

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper


def _bn_inputs(const, rng, i, cout, spread):
    """A BatchNormalization node's scale, bias, mean and variance initializers (random; bias and mean
    with standard deviation ``spread``), named ``g{i}``, ``b{i}``, ``m{i}``, ``v{i}``."""
    return [
        const(f"{p}{i}", v)
        for p, v in (
            ("g", rng.uniform(0.5, 1.5, cout)),
            ("b", rng.normal(0, spread, cout)),
            ("m", rng.normal(0, spread, cout)),
            ("v", rng.uniform(0.5, 2, cout)),
        )
    ]


def _graph(seed=0, dtype=np.float32, hw=(12, 10)):
    """x -> [Conv, BN, act] blocks with every activation the fusion knows (Relu, HardSwish,
    HardSigmoid, Clip, Paddle's Add/Clip/Mul/Div hardswish), a strided SAME_UPPER conv, an
    asymmetric-padded conv, an SE gate (GAP -> Conv+Relu -> Conv -> HardSigmoid -> Mul) and a
    residual Add."""
    rng = np.random.default_rng(seed)
    tp = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    inits, nodes = [], []
    C = 8

    def const(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a, dtype), name))
        return name

    def conv_bn(i, x, cin, cout, k=3, stride=1, group=1, pads=None, bn=True, auto_pad=None):
        w = const(f"w{i}", rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin // group * k * k))
        out = f"c{i}"
        geometry = {"auto_pad": auto_pad} if auto_pad else {"pads": pads or [k // 2] * 4}
        nodes.append(
            helper.make_node(
                "Conv", [x, w], [out], kernel_shape=[k, k], strides=[stride, stride], group=group, **geometry
            )
        )
        if not bn:
            return out
        names = _bn_inputs(const, rng, i, cout, 0.2)
        nodes.append(helper.make_node("BatchNormalization", [out] + names, [f"bn{i}"], epsilon=1e-5))
        return f"bn{i}"

    y = conv_bn(0, "x", 3, C, stride=2, auto_pad="SAME_UPPER")  # padding from the input size: (0, 1)
    nodes.append(helper.make_node("Relu", [y], ["a0"]))
    y = conv_bn(1, "a0", C, C, group=C)
    nodes.append(helper.make_node("HardSwish", [y], ["a1"]))
    y = conv_bn(2, "a1", C, C, k=1)
    nodes.append(helper.make_node("Clip", [y, const("lo", 0.0), const("hi", 6.0)], ["a2"]))
    y = conv_bn(3, "a2", C, 2 * C, k=3, stride=2, pads=[0, 0, 1, 1])  # SAME_UPPER-style asymmetric
    nodes += [
        helper.make_node("Add", [y, const("three", 3.0)], ["p0"]),
        helper.make_node("Clip", ["p0", const("zero", 0.0), const("six", 6.0)], ["p1"]),
        helper.make_node("Mul", [y, "p1"], ["p2"]),
        helper.make_node("Div", ["p2", const("six_b", 6.0)], ["a3"]),
    ]
    y = conv_bn(4, "a3", 2 * C, 2 * C, k=5, group=2 * C)
    nodes.append(helper.make_node("HardSigmoid", [y], ["a4"], alpha=0.2, beta=0.5))
    nodes.append(helper.make_node("GlobalAveragePool", ["a4"], ["se0"]))
    y = conv_bn(5, "se0", 2 * C, C // 2, k=1, bn=False)
    nodes.append(helper.make_node("Relu", [y], ["se1"]))
    y = conv_bn(6, "se1", C // 2, 2 * C, k=1, bn=False)
    nodes.append(helper.make_node("HardSigmoid", [y], ["se2"], alpha=1 / 6, beta=0.5))
    nodes.append(helper.make_node("Mul", ["a4", "se2"], ["a5"]))
    y = conv_bn(7, "a5", 2 * C, 2 * C, k=1)  # no activation
    nodes.append(helper.make_node("Add", [y, "a5"], ["out"]))
    g = helper.make_graph(
        nodes,
        "fused",
        [helper.make_tensor_value_info("x", tp, [None, 3, *hw])],
        [helper.make_tensor_value_info("out", tp, None)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def _unfused(model, x):
    """The node-by-node path: a Tensor input (recorded, eval mode), read back as an ndarray."""
    return model(cnnfast.Tensor(x)).data


def _close(a, b, rtol=2e-5):
    scale = max(float(np.abs(b).max()), 1e-30)
    err = float(np.abs(np.asarray(a, np.float64) - b).max())
    assert err <= rtol * scale, f"max error {err:.3g} vs magnitude {scale:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3])
def test_fused_equals_node_by_node(dtype, n):
    model = connx.load(_graph(dtype=dtype))
    x = np.random.default_rng(1).standard_normal((n, 3, 12, 10)).astype(dtype)
    got = model(x)
    assert isinstance(got, np.ndarray) and got.dtype == dtype
    _close(got, _unfused(model, x), 2e-5 if dtype == np.float32 else 1e-12)
    # the eight Conv/BN/activation groups became one step each
    _consts, steps = _EVAL_PROGRAMS[model]
    assert len(steps) < len(model._plan) - 10
    ops = [" ".join(nd.op for nd in s[1]) for s in steps]
    assert "Conv BatchNormalization Add Clip Mul Div" in ops
    # the SE gate is one step (its fc2 -> HardSigmoid no longer a conv step of its own)
    assert "GlobalAveragePool Conv Conv HardSigmoid Mul" in ops and "Conv HardSigmoid" not in ops
    # the depthwise conv and the 1x1 conv after it: one chain step (_core.dw_chain_forward)
    assert "Conv BatchNormalization HardSwish Conv BatchNormalization Clip" in ops


def test_chain_step_runs_and_equals_node_by_node(chain_calls):
    """On a plane large enough for the chain kernel, the depthwise -> 1x1 step runs as one
    dw_chain_forward call (its Clip constants read at run time) with the node-by-node result."""
    model = connx.load(_graph(hw=(80, 96)))
    x = np.random.default_rng(5).standard_normal((2, 3, 80, 96)).astype(np.float32)
    taken = chain_calls
    got = model(x)
    assert taken == [True]
    _close(got, _unfused(model, x))
    getattr(model, model._names["hi"]).data[...] = 0.5  # a trainable Clip bound, changed in place
    _close(model(x), _unfused(model, x))


def test_weights_changed_in_place_are_used():
    model = connx.load(_graph())
    x = np.random.default_rng(2).standard_normal((2, 3, 12, 10)).astype(np.float32)
    before = model(x)
    convs = [m for m in model.modules() if isinstance(m, cnnfast.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, cnnfast.nn.BatchNorm2d)]
    convs[1].weight.data *= 1.7
    bns[3].running_var[...] *= 3.0
    bns[4].weight.data[...] = -bns[4].weight.data
    getattr(model, model._names["three"]).data[...] = 2.5  # the Paddle hardswish's trainable "3"
    after = model(x)
    assert np.abs(after - before).max() > 1e-3
    _close(after, _unfused(model, x))
    # load_state_dict writes in place too
    sd = {k: np.asarray(v) * 0.9 if k.endswith("weight") else np.asarray(v) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    _close(model(x), _unfused(model, x))


def test_tensor_input_still_records_gradients():
    model = connx.load(_graph())
    x = cnnfast.Tensor(np.random.default_rng(3).standard_normal((2, 3, 12, 10)).astype(np.float32), requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and np.abs(np.asarray(getattr(x.grad, "data", x.grad))).max() > 0
    conv = next(m for m in model.modules() if isinstance(m, cnnfast.nn.Conv2d))
    assert conv.weight.grad is not None


def test_hooks_and_training_children_fall_back():
    model = connx.load(_graph())
    x = np.random.default_rng(4).standard_normal((2, 3, 12, 10)).astype(np.float32)
    ref = _unfused(model, x)
    seen = []
    conv = next(m for m in model.modules() if isinstance(m, cnnfast.nn.Conv2d))
    handle = conv.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    _close(model(x), ref)
    assert seen == [(2, 8, 6, 5)]
    handle.remove()
    bn = next(m for m in model.modules() if isinstance(m, cnnfast.nn.BatchNorm2d))
    bn.train()  # this BatchNorm alone uses batch statistics: the fused step must not fold it
    got = model(x)
    _close(got, _unfused(model, x))
    assert np.abs(got - ref).max() > 1e-3


def test_residual_add_joins_the_conv_step_in_place_unless_its_output_is_held():
    model = connx.load(_graph())
    x = np.random.default_rng(6).standard_normal((2, 3, 12, 10)).astype(np.float32)
    ref = _unfused(model, x)
    _close(model(x), ref)
    _consts, steps = _EVAL_PROGRAMS[model]
    assert "Conv BatchNormalization Add" in [" ".join(nd.op for nd in s[1]) for s in steps]
    # a forward hook keeps the conv step's output: the kept array is not overwritten by the add
    nd = next(n for n in model._plan if n.outputs == ["bn7"])
    kept = []
    model._modules[nd.attrs["_module"]].register_forward_hook(lambda mod, args, out: kept.append((out, out.copy())))
    _close(model(x), ref)
    assert len(kept) == 1
    np.testing.assert_array_equal(kept[0][0], kept[0][1])


def test_residual_add_with_broadcasting_falls_back():
    rng = np.random.default_rng(7)
    C = 4
    inits = [numpy_helper.from_array(rng.standard_normal((C, C, 1, 1)).astype(np.float32), "w")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["c", "s"], ["out"]),
    ]
    g = helper.make_graph(
        nodes,
        "bcast",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, C, 5, 6]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    model = connx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]))
    x = rng.standard_normal((2, C, 5, 6)).astype(np.float32)
    for s in (
        rng.standard_normal((1, C, 1, 1)).astype(np.float32),  # broadcast: a new array
        rng.standard_normal((2, C, 5, 6)).astype(np.float32),  # in place
    ):
        s0 = s.copy()
        got = model(x, s)
        want = model(cnnfast.Tensor(x), cnnfast.Tensor(s)).data
        assert got.shape == want.shape and got.dtype == want.dtype
        _close(got, want)
        np.testing.assert_array_equal(s, s0)
    _consts, steps = _EVAL_PROGRAMS[model]
    assert [" ".join(nd.op for nd in s[1]) for s in steps] == ["Conv Add"]


@pytest.mark.parametrize("pattern", ["dense", "depthwise", "chain"])
def test_relu_before_batchnorm_is_not_folded(pattern, chain_calls):
    """Conv -> Relu -> BatchNormalization (Keras-style): the importer gives the conv its ReLU, and the
    BatchNorm after it cannot be folded into the weights (relu(conv) * s + t is no conv of scaled
    weights) -- not in the fused conv step, not in a depthwise chain stage. Against ONNX Runtime."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(7)
    C, hw = 16, 40
    inits, nodes = [], []

    def const(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a, np.float32), name))
        return name

    def conv_relu_bn(i, x, cin, cout, k, group):
        w = const(f"w{i}", rng.standard_normal((cout, cin // group, k, k)) * 0.3)
        nodes.append(helper.make_node("Conv", [x, w], [f"c{i}"], pads=[k // 2] * 4, group=group))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        bn = _bn_inputs(const, rng, i, cout, 0.5)
        nodes.append(helper.make_node("BatchNormalization", [f"r{i}", *bn], [f"y{i}"]))
        return f"y{i}"

    if pattern == "dense":
        y = conv_relu_bn(0, "x", C, 24, 3, 1)
    elif pattern == "depthwise":
        y = conv_relu_bn(0, "x", C, C, 3, C)
    else:  # 1x1 expand -> depthwise, each Conv -> Relu -> BN: a chain's stages
        y = conv_relu_bn(1, conv_relu_bn(0, "x", C, 32, 1, 1), 32, 32, 3, 32)
    shape = [1, C, hw, hw]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.standard_normal(shape).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    net = connx.load(model).eval()
    with cnnfast.no_grad():
        got = net(x)
    _close(got, ref, rtol=1e-5)
    assert not any(chain_calls)  # a chain may not take these stages


# ---------------------------------------------------------------------------------------------
# Fast programs (GraphModule._forward_eval): from the third call with the same module structure
# and input shapes, the steps' bound forms run; anything changed since must still be used.


def _warm(model, *xs):
    """Calls ``model`` until its fast program is bound and used; returns the last output."""
    from cnnfast.onnx._graph import _FAST_PROGRAMS

    for _ in range(3):
        out = model(*xs)
    state = _FAST_PROGRAMS.get(model)
    assert state is not None and state[2] is not None, "the fast program was not bound"
    return out


def _fast_bound(model):
    from cnnfast.onnx._graph import _FAST_PROGRAMS

    state = _FAST_PROGRAMS.get(model)
    return state is not None and state[2] is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_program_equals_checked_steps(dtype):
    model = connx.load(_graph(dtype=dtype))
    x = np.random.default_rng(11).standard_normal((2, 3, 12, 10)).astype(dtype)
    first = model(x)
    got = _warm(model, x)
    np.testing.assert_array_equal(got, first)  # the same calls, bound once
    _consts, steps = _EVAL_PROGRAMS[model]
    from cnnfast.onnx._graph import _FAST_PROGRAMS

    fast_steps = _FAST_PROGRAMS[model][2][1]
    # every step has a bound form but the two convs whose input is padded on each call (the
    # SAME_UPPER one with an odd total and the asymmetric one), which rerun their checks
    assert len(fast_steps) == len(steps)
    unbound = [i for i, ((f, _free), s) in enumerate(zip(fast_steps, steps)) if f is s[0]]
    assert unbound == [0, 2]


def test_fast_program_uses_parameters_changed_in_place_or_reassigned():
    model = connx.load(_graph())
    x = np.random.default_rng(12).standard_normal((2, 3, 12, 10)).astype(np.float32)
    before = _warm(model, x)
    convs = [m for m in model.modules() if isinstance(m, cnnfast.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, cnnfast.nn.BatchNorm2d)]
    convs[2].weight.data *= 1.5  # in place
    convs[4].weight.data = convs[4].weight.data * -1.0  # a new array: no module attribute changes
    bns[3].running_var[...] *= 3.0
    bns[1].bias.data = bns[1].bias.data + 0.25
    getattr(model, model._names["three"]).data[...] = 2.5  # the Paddle hardswish's constant
    getattr(model, model._names["hi"]).data[...] = 0.5  # the Clip bound
    after = model(x)
    assert _fast_bound(model)  # (still the fast program: nothing structural changed)
    assert np.abs(after - before).max() > 1e-3
    _close(after, _unfused(model, x))


def test_fast_program_restarts_on_parameters_of_another_dtype():
    model = connx.load(_graph())
    x = np.random.default_rng(13).standard_normal((2, 3, 12, 10)).astype(np.float32)
    _warm(model, x)
    conv = [m for m in model.modules() if isinstance(m, cnnfast.nn.Conv2d)][2]
    conv.weight.data = conv.weight.data.astype(np.float64) * 0.5
    got = model(x)
    assert not _fast_bound(model)  # dropped, rebuilt later from the checked steps
    want = _unfused(model, x)
    assert got.dtype == want.dtype
    _close(got, want)
    np.testing.assert_array_equal(_warm(model, x), got)


def test_fast_program_follows_hooks_modes_and_input_shapes():
    model = connx.load(_graph())
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 3, 12, 10)).astype(np.float32)
    ref = _warm(model, x)
    seen = []
    conv = next(m for m in model.modules() if isinstance(m, cnnfast.nn.Conv2d))
    handle = conv.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    for _ in range(3):
        _close(model(x), ref)
    assert seen == [(2, 8, 6, 5)] * 3
    handle.remove()
    bn = next(m for m in model.modules() if isinstance(m, cnnfast.nn.BatchNorm2d))
    bn.train()  # batch statistics for this one: not folded (and no fast program: each call
    for _ in range(3):  # updates its running statistics, a structure change)
        got = model(x)
    _close(got, _unfused(model, x))
    assert np.abs(got - ref).max() > 1e-3
    bn.eval()  # (its running statistics moved while it trained)
    _close(_warm(model, x), _unfused(model, x))
    x2 = rng.standard_normal((1, 3, 12, 10)).astype(np.float32)  # another batch: another program
    got2 = model(x2)
    _close(got2, _unfused(model, x2))
    np.testing.assert_array_equal(_warm(model, x2), got2)


def _flatten_head_graph(ends=1):
    """x -> Conv -> MaxPool -> Reshape to Concat(Slice(Shape(.), 0, ends), [-1]) (the flatten
    PaddlePaddle exports for a free batch size) -> MatMul -> Softmax (opset 11: over the 2-D view)."""
    rng = np.random.default_rng(15)
    C = 6
    inits = [
        numpy_helper.from_array(rng.standard_normal((C, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([ends], np.int64), "ends"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
        numpy_helper.from_array(rng.standard_normal((C * 4 * 4, 5)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Shape", ["p"], ["s"]),
        helper.make_node("Slice", ["s", "starts", "ends", "axes"], ["n"]),
        helper.make_node("Concat", ["n", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    g = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def test_fast_program_records_shape_arithmetic_and_checks_its_constants():
    model = connx.load(_flatten_head_graph())
    x = np.random.default_rng(16).standard_normal((3, 3, 8, 8)).astype(np.float32)
    first = model(x)
    got = _warm(model, x)
    np.testing.assert_array_equal(got, first)
    _close(got, _unfused(model, x), 1e-5)
    from cnnfast.onnx._graph import _FAST_PROGRAMS

    need, steps, static, checks = _FAST_PROGRAMS[model][2]
    assert {"s", "n", "target"} <= set(static)  # Shape -> Slice -> Concat: recorded
    assert len(steps) == len(_EVAL_PROGRAMS[model][1]) - 2  # Slice and Concat no longer run
    # a constant buffer the recorded values came from, edited in place: checked, not stale
    getattr(model, model._names["ends"])[...] = 2  # the reshape target becomes (n, C, -1)
    with pytest.raises(ValueError):  # MatMul of (3, 6, 16) by (96, 5): as the checked steps say
        _unfused(model, x)
    with pytest.raises(ValueError):
        model(x)
    getattr(model, model._names["ends"])[...] = 1
    np.testing.assert_array_equal(_warm(model, x), first)
    fc = getattr(model, model._names["fc"])  # the MatMul's constant operand, read on every call
    fc.data = fc.data * 2.0
    _close(model(x), _unfused(model, x), 1e-5)
    fc.data = fc.data.astype(np.float64)  # another dtype: the bound MatMul restarts the call
    got64 = model(x)
    assert got64.dtype == np.float64 and not _fast_bound(model)
    _close(got64, _unfused(model, x), 1e-5)
    fc.data = fc.data.astype(np.float32)
    x2 = np.random.default_rng(17).standard_normal((5, 3, 8, 8)).astype(np.float32)  # another batch
    _close(model(x2), _unfused(model, x2), 1e-5)
    _close(_warm(model, x2), _unfused(model, x2), 1e-5)


def test_fast_program_is_not_kept_alive_by_its_module():
    import gc
    import weakref

    model = connx.load(_graph())
    x = np.random.default_rng(18).standard_normal((1, 3, 12, 10)).astype(np.float32)
    _warm(model, x)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_fast_program_survives_eval_calls_that_change_nothing():
    """``model.eval()`` before every call (a common loop) leaves the structure as it is: the fast
    program stays; a real mode change drops it."""
    model = connx.load(_graph())
    x = np.random.default_rng(19).standard_normal((1, 3, 12, 10)).astype(np.float32)
    want = _warm(model, x)
    for _ in range(3):
        model.eval()
        np.testing.assert_array_equal(model(x), want)
        assert _fast_bound(model)
    model.train()
    model(cnnfast.Tensor(x))
    model.eval()
    model(x)
    assert not _fast_bound(model)


def _gelu_graph(dtype=np.float32):
    """x -> Conv -> GELU as PyTorch exports it (Div(sqrt 2) -> Erf -> Add(1) -> Mul(y) -> Mul(0.5))
    -> Conv (whose output ``c1`` is also a graph output) -> the same GELU with every commutative
    operand swapped -> ``out``."""
    rng = np.random.default_rng(21)
    tp = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    inits = []

    def const(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a, dtype), name))
        return name

    w0 = const("w0", rng.standard_normal((6, 3, 3, 3)) / 3)
    w1 = const("w1", rng.standard_normal((6, 6, 1, 1)) / 2)
    N = helper.make_node
    nodes = [
        N("Conv", ["x", w0], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N("Div", ["c0", const("r2a", np.sqrt(2.0))], ["d0"]),
        N("Erf", ["d0"], ["e0"]),
        N("Add", ["e0", const("one_a", 1.0)], ["a0"]),
        N("Mul", ["c0", "a0"], ["m0"]),
        N("Mul", ["m0", const("half_a", 0.5)], ["g0"]),
        N("Conv", ["g0", w1], ["c1"], kernel_shape=[1, 1]),
        N("Div", ["c1", const("r2b", np.sqrt(2.0))], ["d1"]),
        N("Erf", ["d1"], ["e1"]),
        N("Add", [const("one_b", 1.0), "e1"], ["a1"]),
        N("Mul", ["a1", "c1"], ["m1"]),
        N("Mul", [const("half_b", 0.5), "m1"], ["out"]),
    ]
    g = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", tp, [None, 3, 9, 11])],
        [helper.make_tensor_value_info("out", tp, None), helper.make_tensor_value_info("c1", tp, None)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_nodes_are_one_kernel_step(dtype):
    """The five GELU nodes run as one pointwise_forward call (bound in the fast program) with the
    node-by-node results; a graph output feeding one (``c1``) is not overwritten by it."""
    model = connx.load(_gelu_graph(dtype))
    x = np.random.default_rng(22).standard_normal((2, 3, 9, 11)).astype(dtype)
    want_out, want_c1 = (t.data for t in model(cnnfast.Tensor(x)))
    first = model(x)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    for got in (first, _warm(model, x)):
        assert got[0].dtype == dtype
        _close(got[0], want_out, tol)
        _close(got[1], want_c1, tol)
    np.testing.assert_array_equal(_warm(model, x)[0], first[0])
    _consts, steps = _EVAL_PROGRAMS[model]
    ops = [" ".join(nd.op for nd in s[1]) for s in steps]
    assert ops.count("Div Erf Add Mul Mul") == 2 and "Erf" not in ops
    from cnnfast.onnx._graph import _FAST_PROGRAMS

    fast_steps = _FAST_PROGRAMS[model][2][1]
    assert all(f is not s[0] for (f, _free), s in zip(fast_steps, steps))  # every step bound


def test_gelu_step_reads_its_constants_and_falls_back_for_other_values():
    model = connx.load(_gelu_graph())
    x = np.random.default_rng(23).standard_normal((2, 3, 9, 11)).astype(np.float32)
    _warm(model, x)
    for name, value, fused in (("r2a", 1.4140625, True), ("half_b", 0.25, True), ("one_a", 2.0, False)):
        getattr(model, model._names[name]).data[...] = value  # in place: the structure is unchanged
        got = model(x)
        want = [t.data for t in model(cnnfast.Tensor(x))]
        _close(got[0], want[0], 2e-6)
        _close(got[1], want[1], 2e-6)
        assert _fast_bound(model) == fused  # (an Add constant other than 1: the nodes one by one)


def _silu_graph(dtype=np.float32):
    """x -> Conv -> BN -> SiLU as PyTorch exports it (Sigmoid, Mul(y, s)) -> depthwise Conv -> BN ->
    SiLU with Mul's operands swapped -> 1x1 Conv -> Sigmoid -> Mul whose other operand is not the
    conv's output (a gate, not a SiLU) -> ``out``; and ``c2``, a conv output read by a SiLU and by
    the graph's second output (not fused)."""
    rng = np.random.default_rng(31)
    tp = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    inits = []

    def const(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a, dtype), name))
        return name

    C = 8
    N = helper.make_node
    nodes = [
        N("Conv", ["x", const("w0", rng.standard_normal((C, 3, 3, 3)) / 4)], ["c0"], kernel_shape=[3, 3], pads=[1] * 4),
        N("BatchNormalization", ["c0"] + _bn_inputs(const, rng, 0, C, 0.2), ["n0"], epsilon=1e-5),
        N("Sigmoid", ["n0"], ["s0"]),
        N("Mul", ["n0", "s0"], ["a0"]),
        N(
            "Conv",
            ["a0", const("w1", rng.standard_normal((C, 1, 3, 3)) / 3)],
            ["c1"],
            kernel_shape=[3, 3],
            pads=[1] * 4,
            group=C,
        ),
        N("BatchNormalization", ["c1"] + _bn_inputs(const, rng, 1, C, 0.2), ["n1"], epsilon=1e-5),
        N("Sigmoid", ["n1"], ["s1"]),
        N("Mul", ["s1", "n1"], ["a1"]),
        N("Conv", ["a1", const("w2", rng.standard_normal((C, C, 1, 1)) / 3)], ["c2"], kernel_shape=[1, 1]),
        N("Sigmoid", ["c2"], ["s2"]),
        N("Mul", ["c2", "s2"], ["a2"]),
        N("Sigmoid", ["a2"], ["s3"]),
        N("Mul", ["a1", "s3"], ["out"]),
    ]
    g = helper.make_graph(
        nodes,
        "silu",
        [helper.make_tensor_value_info("x", tp, [None, 3, 10, 12])],
        [helper.make_tensor_value_info("out", tp, None), helper.make_tensor_value_info("c2", tp, None)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silu_nodes_join_the_conv_step(dtype):
    """Conv [-> BN] -> Sigmoid -> Mul(y, .) is one conv step (activation 'silu') with the
    node-by-node results, bound in the fast program; a conv output another node also reads keeps
    its Sigmoid and Mul as nodes of their own."""
    model = connx.load(_silu_graph(dtype))
    x = np.random.default_rng(32).standard_normal((2, 3, 10, 12)).astype(dtype)
    want = [t.data for t in model(cnnfast.Tensor(x))]
    first = model(x)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    for got in (first, _warm(model, x)):
        assert got[0].dtype == dtype
        _close(got[0], want[0], tol)
        _close(got[1], want[1], tol)
    np.testing.assert_array_equal(_warm(model, x)[0], first[0])
    _consts, steps = _EVAL_PROGRAMS[model]
    ops = [" ".join(nd.op for nd in s[1]) for s in steps]
    assert ops.count("Conv BatchNormalization Sigmoid Mul") == 2, ops
    assert "Conv" in ops and ops.count("Sigmoid") == 2  # c2's SiLU and the gate stay nodes


@pytest.mark.parametrize("opset", [17, 20])
def test_exported_gelu_imports_fused(opset, tmp_path):
    """cnnfast.onnx.export's GELU -- below opset 20 ``Mul(Mul(y, 0.5), Add(Erf(Div(y, sqrt 2)), 1))``,
    from opset 20 the ``Gelu`` operator (erf and tanh forms) -- imports, runs fused (one GELU step,
    or the conv step's activation), and matches ONNX Runtime and the node-by-node path."""
    ort = pytest.importorskip("onnxruntime")
    from cnnfast.onnx_export import export

    nn = cnnfast.nn
    cnnfast.manual_seed(3)
    src = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.GELU(), nn.Conv2d(6, 4, 1), nn.GELU(approximate="tanh"))
    x = np.random.default_rng(33).standard_normal((2, 3, 9, 10)).astype(np.float32)
    path = str(tmp_path / "g.onnx")
    export(src, path, x, opset=opset)
    model = connx.load(path)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    for got in (model(x), _warm(model, x), model(cnnfast.Tensor(x)).data):
        _close(got, want, 2e-6)
    _consts, steps = _EVAL_PROGRAMS[model]
    ops = [" ".join(nd.op for nd in s[1]) for s in steps]
    assert ("Conv Gelu" if opset >= 20 else "Div Erf Add Mul Mul") in ops, ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_leaky_relu_joins_the_conv_step(dtype):
    """Conv -> BN -> LeakyRelu(alpha) and Conv -> LeakyRelu (default alpha) are conv steps with the
    'leaky' activation; results equal the node-by-node path's, also from the bound fast program."""
    rng = np.random.default_rng(41)
    tp = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    inits = []

    def const(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a, dtype), name))
        return name

    N = helper.make_node
    nodes = [
        N("Conv", ["x", const("w0", rng.standard_normal((8, 3, 3, 3)) / 4)], ["c0"], kernel_shape=[3, 3], pads=[1] * 4),
        N("BatchNormalization", ["c0"] + _bn_inputs(const, rng, 0, 8, 0.2), ["n0"], epsilon=1e-5),
        N("LeakyRelu", ["n0"], ["a0"], alpha=0.2),
        N("Conv", ["a0", const("w1", rng.standard_normal((4, 8, 1, 1)) / 3)], ["c1"], kernel_shape=[1, 1]),
        N("LeakyRelu", ["c1"], ["out"]),
    ]
    g = helper.make_graph(
        nodes,
        "leaky",
        [helper.make_tensor_value_info("x", tp, [None, 3, 10, 12])],
        [helper.make_tensor_value_info("out", tp, None)],
        inits,
    )
    model = connx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]))
    x = rng.standard_normal((2, 3, 10, 12)).astype(dtype)
    want = model(cnnfast.Tensor(x)).data
    tol = 2e-6 if dtype == np.float32 else 1e-12
    first = model(x)
    _close(first, want, tol)
    np.testing.assert_array_equal(_warm(model, x), first)
    _consts, steps = _EVAL_PROGRAMS[model]
    assert [" ".join(nd.op for nd in s[1]) for s in steps] == ["Conv BatchNormalization LeakyRelu", "Conv LeakyRelu"]
