"""cnnfast.onnx_export.export: ONNX Runtime runs the exported file and matches cnnfast.

Every layer kind of cnnfast.nn and every architecture of cnnfast.models is exported on a batch
of 2 and run by ONNX Runtime on a batch of 3 (the batch dimension is free), against the same
model in eval mode on ndarrays. float32 tolerance: relative to the output's magnitude, 1e-5 for
single layers, 1e-4 for whole networks (tens of layers of float32 rounding, two runtimes).
"""

from __future__ import annotations

import io
import os
import zlib

import numpy as np
import pytest

import cnnfast
from cnnfast import functional as F
from cnnfast import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnnfast.onnx_export import UnsupportedExportError, export


def _randomize(model, rng):
    """Non-trivial BatchNorm statistics and affine parameters, and O(1) classifier weights (the
    models' init makes logits ~0.01, which would hide errors)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.normal(0, 0.2, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
                m.bias.data[...] = rng.normal(0, 0.2, m.num_features)
        elif isinstance(m, nn.Linear):
            m.weight.data[...] = rng.normal(0, 1 / np.sqrt(m.in_features), m.weight.shape)
    return model


def _run_ort(path, x, name="input"):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {name: x})


def _check(model, path, in_shape, rtol, rng, export_batch=2, run_batch=3, **kw):
    x = rng.standard_normal((export_batch,) + tuple(in_shape)).astype(np.float32)
    export(model, path, x, **kw)
    x2 = rng.standard_normal((run_batch,) + tuple(in_shape)).astype(np.float32)
    with cnnfast.no_grad():
        ref = np.asarray(model.eval()(x2))
    got = _run_ort(path, x2)[0]
    assert got.shape == ref.shape
    scale = max(float(np.abs(ref).max()), 1e-3)
    err = float(np.abs(got - ref).max())
    assert err <= rtol * scale, f"max error {err:.3g} vs output magnitude {scale:.3g}"
    return onnx.load(str(path))


# ------------------------------------------------------------------------------------- layers
LAYER_CASES = {
    "conv_bias": lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)),
    "conv_stride_nobias": lambda: nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2, bias=False)),
    "conv_groups_dilation": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)
    ),
    "conv_depthwise": lambda: nn.Sequential(nn.Conv2d(3, 6, 1), nn.Conv2d(6, 6, 3, padding=1, groups=6)),
    "conv_asym_padding": lambda: nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=(0, 1, 1, 2))),
    "conv_same": lambda: nn.Sequential(nn.Conv2d(3, 4, 4, padding="same")),
    "conv_rect": lambda: nn.Sequential(nn.Conv2d(3, 4, (3, 1), stride=(2, 1), padding=(1, 0))),
    "relu_family": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU6(), nn.Conv2d(4, 4, 1), nn.LeakyReLU(0.2)
    ),
    "smooth_acts": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 1),
        nn.SiLU(),
        nn.Conv2d(4, 4, 1),
        nn.Hardswish(),
        nn.Conv2d(4, 4, 1),
        nn.Hardsigmoid(),
        nn.Conv2d(4, 4, 1),
        nn.Sigmoid(),
        nn.Conv2d(4, 4, 1),
        nn.Tanh(),
    ),
    "gelu_erf": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU()),
    "gelu_tanh": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU(approximate="tanh")),
    "prelu_shared": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.PReLU()),
    "prelu_channels": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.PReLU(4, init=0.1)),
    "batchnorm": lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, eps=1e-3)),
    "batchnorm_noaffine": lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False)),
    "maxpool": lambda: nn.Sequential(nn.MaxPool2d(3, 2, 1)),
    "maxpool_ceil": lambda: nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True)),
    "maxpool_dilation": lambda: nn.Sequential(nn.MaxPool2d(2, 1, dilation=2)),
    "maxpool_asym": lambda: nn.Sequential(nn.MaxPool2d(3, 2, (0, 1, 1, 0))),
    "avgpool": lambda: nn.Sequential(nn.AvgPool2d(2)),
    "avgpool_pad": lambda: nn.Sequential(nn.AvgPool2d(3, 2, 1)),
    "avgpool_pad_exclude": lambda: nn.Sequential(nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
    "avgpool_ceil": lambda: nn.Sequential(nn.AvgPool2d(3, 2, ceil_mode=True)),
    "avgpool_ceil_pad": lambda: nn.Sequential(nn.AvgPool2d(3, 2, 1, ceil_mode=True)),
    "avgpool_ceil_pad_exclude": lambda: nn.Sequential(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
    "avgpool_asym": lambda: nn.Sequential(nn.AvgPool2d(3, 2, (1, 0, 0, 1))),
    "avgpool_asym_exclude": lambda: nn.Sequential(nn.AvgPool2d(3, 2, (1, 0, 0, 1), count_include_pad=False)),
    "adaptive_global": lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5)),
    "adaptive_divisible": lambda: nn.Sequential(nn.AdaptiveAvgPool2d((3, 1))),
    "lrn_odd": lambda: nn.Sequential(nn.Conv2d(3, 7, 1), nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0)),
    "lrn_even": lambda: nn.Sequential(nn.Conv2d(3, 7, 1), nn.LocalResponseNorm(4, alpha=1e-2, beta=0.6, k=1.5)),
    "head": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Identity(),
        nn.Linear(4 * 10 * 10, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
        nn.LogSoftmax(dim=1),
    ),
    "flatten_partial": lambda: nn.Sequential(nn.Flatten(2), nn.Softmax(dim=-1)),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_onnxruntime(case, tmp_path):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    model = _randomize(LAYER_CASES[case](), rng)
    proto = _check(model, tmp_path / "m.onnx", (3, 12, 12), 1e-5, rng)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_layer_nodes_are_named_after_modules(tmp_path):
    rng = np.random.default_rng(0)
    model = _randomize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), rng)
    proto = _check(model, tmp_path / "m.onnx", (3, 8, 8), 1e-5, rng)
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["Conv", "BatchNormalization", "Relu"]
    inits = {i.name for i in proto.graph.initializer}
    assert {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"} <= inits
    assert [o.name for o in proto.graph.output] == ["output"]


# ------------------------------------------------------------------------------------- models
MODELS = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "googlenet"]


@pytest.mark.parametrize("name", MODELS)
def test_model_matches_onnxruntime(name, tmp_path):
    rng = np.random.default_rng(MODELS.index(name))
    model = _randomize(getattr(cnnfast.models, name)(num_classes=7), rng)
    proto = _check(model, tmp_path / f"{name}.onnx", (3, 64, 64), 1e-4, rng, export_batch=2, run_batch=1)
    n_params = sum(
        int(np.prod(i.dims)) for i in proto.graph.initializer if not i.name.endswith(("running_mean", "running_var"))
    )
    assert n_params >= model.num_parameters()  # every parameter is in the file (plus small constants)


def test_export_runs_in_eval_mode_and_restores_flags(tmp_path):
    rng = np.random.default_rng(2)
    model = _randomize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.9)), rng)
    model.train()
    model[1].eval()
    before = model[1].running_mean.copy()
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    export(model, tmp_path / "m.onnx", x)
    assert [m.training for m in model.modules()] == [True, True, False, True]
    np.testing.assert_array_equal(model[1].running_mean, before)  # no batch statistics were taken
    with cnnfast.no_grad():
        ref = model.eval()(x)
    np.testing.assert_allclose(_run_ort(tmp_path / "m.onnx", x)[0], ref, rtol=1e-5, atol=1e-6)


def test_googlenet_transform_input(tmp_path):
    rng = np.random.default_rng(5)
    model = _randomize(cnnfast.models.googlenet(num_classes=4, transform_input=True), rng)
    _check(model, tmp_path / "g.onnx", (3, 48, 48), 1e-4, rng)


# ------------------------------------------------------------- custom forward()s: recorded ops
class Block(nn.Module):
    """Residual add, squeeze-excitation multiply, cat, functional pad/relu/pools, reshape, mean."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 1)
        self.scale = nn.Parameter(np.full((1, 4, 1, 1), 0.5, np.float32))

    def forward(self, x):
        y = F.relu(self.a(x)) + x
        gate = F.sigmoid(F.adaptive_avg_pool2d(y, 1))
        y = y * gate * self.scale - 0.25
        z = F.cat([self.b(y), F.silu(y)], dim=1)
        z = F.pad(z, (1, 0, 0, 1), value=-1.0)
        z = F.max_pool2d(z, 2, 2, ceil_mode=True) / 2 + F.avg_pool2d(z, 2, 2, 0, True)
        z = F.conv2d(z, np.ones((3, 6, 1, 1), np.float32) / 6, None, 1, 0)
        w = F.hardswish(F.relu6(z)) + F.gelu(z) + F.hardsigmoid(z) + F.leaky_relu(z, 0.1) + z.exp().tanh()
        w = F.batch_norm(w, np.full(3, 0.1, np.float32), np.full(3, 2.0, np.float32), None, None, False, 0.1, 1e-5)
        return F.linear(w.mean(axis=(2, 3)), np.eye(2, 3, dtype=np.float32), np.ones(2, np.float32)) + w.reshape(
            w.shape[0], -1
        ).sum(axis=1, keepdims=True)


def test_custom_forward_recorded_ops(tmp_path):
    rng = np.random.default_rng(7)
    _check(Block(), tmp_path / "b.onnx", (4, 9, 9), 1e-5, rng)


def test_multiple_outputs_and_names(tmp_path):
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.c(x)
            return y, F.relu(y)

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    path = tmp_path / "two.onnx"
    export(Two(), path, x, input_names=["image"], output_names=["features", "activated"], dynamic_batch=False)
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["features", "activated"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    y, r = _run_ort(path, x, "image")
    np.testing.assert_allclose(r, np.maximum(y, 0))


@pytest.mark.parametrize("opset", [14, 18, 20])
def test_opsets(opset, tmp_path):
    rng = np.random.default_rng(opset)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    proto = _check(model, tmp_path / "m.onnx", (3, 8, 8), 1e-5, rng, opset=opset)
    assert proto.opset_import[0].version == opset


def test_file_object(tmp_path):
    rng = np.random.default_rng(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    buf = io.BytesIO()
    export(model, buf, x)
    path = tmp_path / "m.onnx"
    export(model, path, x)
    assert buf.getvalue() == path.read_bytes()


# ------------------------------------------------------------------------------------- errors
class NumpyInside(nn.Module):
    def forward(self, x):
        return cnnfast.Tensor(np.sort(x.data, axis=1))  # computed outside the recorded ops


class Indexing(nn.Module):
    def forward(self, x):
        return x[:, ::2]


@pytest.mark.parametrize(
    "bad, words",
    [
        (lambda: nn.Sequential(nn.Conv2d(3, 3, 1), NumpyInside()), ["'1'", "NumpyInside", "recorded"]),
        (lambda: nn.Sequential(nn.Conv2d(3, 3, 1), Indexing()), ["'1'", "Indexing", "GetItem"]),
        (
            lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)),
            ["'1'", "BatchNorm2d", "track_running_stats"],
        ),
        (lambda: nn.Sequential(nn.MaxPool2d(2, return_indices=True)), ["'0'", "MaxPool2d", "return_indices"]),
        (lambda: nn.Sequential(nn.Identity(), nn.AdaptiveAvgPool2d(5)), ["'1'", "AdaptiveAvgPool2d", "8x8 to 5x5"]),
        (lambda: nn.Sequential(nn.Flatten(0)), ["'0'", "Flatten", "batch"]),
        (lambda: nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), ["'0'", "AvgPool2d", "divisor_override"]),
    ],
)
def test_unsupported_names_the_module(bad, words, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    path = tmp_path / "bad.onnx"
    with pytest.raises(UnsupportedExportError) as e:
        export(bad(), path, x)
    for w in words:
        assert w in str(e.value), str(e.value)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_failed_export_leaves_existing_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(UnsupportedExportError):
        export(nn.Sequential(Indexing()), path, x)
    assert path.read_bytes() == b"previous"

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        export(nn.Sequential(nn.Conv2d(3, 4, 3)), path, x)
    assert path.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]  # the temporary file is gone


def test_bad_arguments(tmp_path):
    x = np.zeros((1, 3, 4, 4), np.float32)
    model = nn.Sequential(nn.Conv2d(3, 4, 1))
    with pytest.raises(ValueError, match="opset"):
        export(model, tmp_path / "m.onnx", x, opset=9)
    with pytest.raises(TypeError, match="float32 or float64"):
        export(model, tmp_path / "m.onnx", x.astype(np.int32))
    with pytest.raises(TypeError, match="cnnfast.nn.Module"):
        export(lambda t: t, tmp_path / "m.onnx", x)
    with pytest.raises(ValueError, match="output_names"):
        export(model, tmp_path / "m.onnx", x, output_names=["a", "b"])


def test_missing_onnx_message(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'cnnfast\[onnx\]'"):
        export(nn.Sequential(nn.ReLU()), tmp_path / "m.onnx", np.zeros((1, 1, 2, 2), np.float32))


def test_round_trip_through_onnx_load(tmp_path):
    """An ONNX file imported by cnnfast.onnx.load (when this build has it) exports back to a file
    that ONNX Runtime runs to the same outputs."""
    cf_onnx = pytest.importorskip("cnnfast.onnx")
    if not hasattr(cf_onnx, "load"):
        pytest.skip("this build's cnnfast.onnx has no load")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    inits = {
        "w1": rng.standard_normal((8, 3, 3, 3)) * 0.3,
        "s": rng.uniform(0.5, 1.5, 8),
        "b": rng.normal(0, 0.1, 8),
        "m": rng.normal(0, 0.1, 8),
        "v": rng.uniform(0.5, 1.5, 8),
        "wd": rng.standard_normal((8, 1, 3, 3)) * 0.3,
        "fc": rng.standard_normal((4, 8)) * 0.3,
        "fcb": rng.normal(0, 0.1, 4),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"], epsilon=1e-5),
        helper.make_node("HardSwish", ["n1"], ["h1"]),
        helper.make_node("Conv", ["h1", "wd"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["c2", "h1"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    src = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    src.ir_version = 8
    onnx.save(src, str(tmp_path / "src.onnx"))
    model = cf_onnx.load(str(tmp_path / "src.onnx"))
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    export(model, tmp_path / "back.onnx", x)
    want = _run_ort(tmp_path / "src.onnx", x, "x")[0]
    got = _run_ort(tmp_path / "back.onnx", x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
