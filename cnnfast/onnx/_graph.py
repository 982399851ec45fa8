"""A computation graph as a trainable ``cnnfast.nn.Module`` (no dependency on the onnx package).

:class:`GraphSpec` is a plain description of an ONNX-style graph: named inputs and outputs, nodes
(operator, input names, output names, attributes as Python values) and constants (ndarrays).
``cnnfast.onnx.load`` builds one from an ONNX file; cnnfast's shipped pretrained networks store one
as JSON + npz (:func:`save_spec` / :func:`load_spec`), read without the onnx package.

:class:`GraphModule` runs it on cnnfast's ops. Building it cuts the graph to the requested outputs,
folds the nodes whose inputs are all constants, drops ``Identity`` nodes, fuses a Conv with a
following bias ``Add`` and ``Relu``, and turns Conv into ``nn.Conv2d``, BatchNormalization into
``nn.BatchNorm2d`` and Gemm with a constant weight into ``nn.Linear``. The remaining float
constants become Parameters, integer ones buffers. ndarray in -> ndarray out; Tensor in -> Tensor
out, recorded for backward. ndarrays in eval mode take the compiled path of :mod:`._fuse` (Conv +
BatchNorm + activation as one conv call, BatchNorm folded from the current weights on each call).
"""

from __future__ import annotations

import json
import math
import re
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core
from .. import functional as F
from .._ndarray.pointwise import _erf as _erf_kernel
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.module import Module, Parameter, _structure_epoch
from ..nn.normalization import BatchNorm2d

if TYPE_CHECKING:
    from .._typing import Array, DTypeLike

__all__ = ["SUPPORTED_OPS", "GraphModule", "GraphSpec", "Node", "OnnxImportError", "load_spec", "save_spec"]

# ONNX TensorProto data types -> NumPy
DTYPES = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}


class OnnxImportError(ValueError):
    """A graph cnnfast cannot import: an unsupported operator or a malformed graph."""


class Node:
    """One operator application: ``op`` (ONNX op_type), input/output names ('' = omitted), attrs."""

    __slots__ = ("attrs", "inputs", "name", "op", "outputs")

    def __init__(
        self,
        op: str,
        inputs: Iterable[str],
        outputs: Iterable[str],
        attrs: dict[str, Any] | None = None,
        name: str = "",
    ) -> None:
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs or {})
        self.name = name or (self.outputs[0] if self.outputs else op)

    def __repr__(self):
        return f"Node({self.op}, {self.inputs} -> {self.outputs})"


class GraphSpec:
    """inputs: [(name, shape with None for free dims, numpy dtype)], outputs: [names],
    nodes: [Node] in topological order, constants: {name: ndarray}, opset: default-domain version."""

    def __init__(
        self,
        inputs: Iterable[tuple[str, Sequence[int | None] | None, DTypeLike]],
        outputs: Iterable[str],
        nodes: Iterable[Node],
        constants: dict[str, Array],
        opset: int = 13,
        source: str = "",
    ) -> None:
        self.inputs = [(n, None if s is None else tuple(s), np.dtype(d)) for n, s, d in inputs]
        self.outputs = list(outputs)
        self.nodes = list(nodes)
        self.constants = dict(constants)
        self.opset = int(opset)
        self.source = source


# ---------------------------------------------------------------------------- serialisation


def _attr_to_json(v):
    if isinstance(v, np.ndarray):
        return {"__ndarray__": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, (list, tuple)):
        return [_attr_to_json(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def _attr_from_json(v):
    if isinstance(v, dict) and "__ndarray__" in v:
        return np.array(v["__ndarray__"], dtype=v["dtype"]).reshape(v["shape"])
    if isinstance(v, list):
        return [_attr_from_json(x) for x in v]
    return v


def save_spec(spec, json_path, npz_path, float_dtype=None, meta=None):
    """Write ``spec`` as a JSON graph description and an npz of its constants.

    ``float_dtype=np.float16`` stores the float constants at half precision (they are read back as
    float32). ``meta`` (a dict) is stored in the JSON under ``"meta"``.
    """
    names = sorted(spec.constants)
    arrays = {}
    for i, n in enumerate(names):
        a = np.asarray(spec.constants[n])
        if float_dtype is not None and a.dtype.kind == "f":
            a = a.astype(float_dtype)
        arrays[f"c{i}"] = a
    doc = {
        "format": "cnnfast-graph",
        "version": 1,
        "opset": spec.opset,
        "source": spec.source,
        "meta": meta or {},
        "inputs": [[n, None if s is None else list(s), str(d)] for n, s, d in spec.inputs],
        "outputs": spec.outputs,
        "constants": {
            n: {"key": f"c{i}", "dtype": str(np.asarray(spec.constants[n]).dtype)} for i, n in enumerate(names)
        },
        "nodes": [
            {
                "op": nd.op,
                "name": nd.name,
                "inputs": nd.inputs,
                "outputs": nd.outputs,
                "attrs": {k: _attr_to_json(v) for k, v in nd.attrs.items()},
            }
            for nd in spec.nodes
        ],
    }
    tmp_json, tmp_npz = json_path + ".tmp", npz_path + ".tmp.npz"
    with open(tmp_json, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
    np.savez_compressed(tmp_npz, **arrays)
    import os

    os.replace(tmp_npz, npz_path)
    os.replace(tmp_json, json_path)


def load_spec(json_path, npz_path):
    """Read a graph written by :func:`save_spec`; returns ``(GraphSpec, meta)``."""
    with open(json_path) as f:
        doc = json.load(f)
    if doc.get("format") != "cnnfast-graph":
        raise OnnxImportError(f"load_spec: {json_path} is not a cnnfast graph description")
    with np.load(npz_path) as z:
        constants = {}
        for n, c in doc["constants"].items():
            a = z[c["key"]]
            constants[n] = a.astype(c["dtype"]) if str(a.dtype) != c["dtype"] else a
    nodes = [
        Node(d["op"], d["inputs"], d["outputs"], {k: _attr_from_json(v) for k, v in d["attrs"].items()}, d["name"])
        for d in doc["nodes"]
    ]
    inputs = [(n, None if s is None else tuple(s), d) for n, s, d in doc["inputs"]]
    return GraphSpec(inputs, doc["outputs"], nodes, constants, doc["opset"], doc.get("source", "")), doc.get("meta", {})


# ---------------------------------------------------------------------------- helpers


def _is_t(x):
    return isinstance(x, Tensor)


def _d(x):
    return x.data if isinstance(x, Tensor) else x


def _ints(x):
    return [int(v) for v in np.asarray(_d(x)).reshape(-1)]


def _scalar(x):
    return float(np.asarray(_d(x)).reshape(-1)[0])


def _erf(x):
    """erf: the C++ kernel for float32 / float64 (float32 within 4e-7 of the exact erf, float64
    <cmath>), math.erf per element for other dtypes."""
    return _erf_kernel(np.asarray(x))


class _Erf(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _erf(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        t = a.dtype.type
        return g * (t(2 / math.sqrt(math.pi)) * np.exp(-a * a))


def _binary(a, b, ufunc, pyop):
    if _is_t(a) or _is_t(b):
        return pyop(a, b)
    return ufunc(a, b)


def _div(a, b):
    if _is_t(a) or _is_t(b):
        return a / b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return np.trunc(a / b).astype(np.result_type(a, b))
    return np.divide(a, b)


def _reshape(x, shape):
    return x.reshape(tuple(shape)) if _is_t(x) else np.reshape(x, tuple(shape))


def _onnx_pads(pads):
    """ONNX 2-D pads [top, left, bottom, right] -> cnnfast (top, bottom, left, right) or a pair."""
    t, l, b, r = (int(p) for p in pads)
    if t == b and l == r:
        return (t, l)
    return (t, b, l, r)


def _auto_pads(auto_pad, in_hw, kernel, stride, dilation):
    out = []
    for i in range(2):
        if auto_pad == "VALID":
            out.append((0, 0))
            continue
        o = -(-in_hw[i] // stride[i])
        total = max((o - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i], 0)
        small = total // 2
        out.append((small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small))
    return _onnx_pads((out[0][0], out[1][0], out[0][1], out[1][1]))


def _spatial(node, key, default):
    v = node.attrs.get(key, default)
    v = [int(x) for x in v]
    if len(v) != 2:
        raise OnnxImportError(f"{node.op} node {node.name!r}: only 2-D (NCHW) is supported, got {key}={v}")
    return tuple(v)


def _pool_pads(node):
    auto = node.attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        return auto
    if auto != "NOTSET":
        raise OnnxImportError(f"{node.op} node {node.name!r}: unknown auto_pad {auto!r}")
    return _onnx_pads(node.attrs.get("pads", [0, 0, 0, 0]))


# ---------------------------------------------------------------------------- operators
# Each takes (module, node, args) -> one output or a tuple of outputs. ``args`` holds ndarrays or
# Tensors (None for omitted inputs); constants come as Parameters when the call records.


class OnnxConv2d(Conv2d):
    """An ``nn.Conv2d`` that also does ONNX's ``auto_pad`` (``'SAME_UPPER'`` / ``'SAME_LOWER'``
    padding computed from the input size) and, with ``fused_relu``, the ReLU that followed it in
    the graph, in the same kernel pass."""

    auto_pad = None
    fused_relu = False

    def forward(self, input):
        pads = self.padding
        if self.auto_pad is not None:
            pads = _auto_pads(self.auto_pad, _d(input).shape[-2:], self.kernel_size, self.stride, self.dilation)
        w, b = self.weight, self.bias
        if not _is_t(input):
            w, b = w.data, (None if b is None else b.data)
        fn = F.conv2d_relu if self.fused_relu else F.conv2d
        return fn(input, w, b, self.stride, pads, self.dilation, self.groups)

    def extra_repr(self):
        s = super().extra_repr()
        if self.auto_pad is not None:
            s += f", auto_pad={self.auto_pad!r}"
        if self.fused_relu:
            s += ", fused_relu=True"
        return s


def _op_conv(m, node, args):
    return m._modules[node.attrs["_module"]](args[0])


def _op_bn(m, node, args):
    x = args[0]
    bn = m._modules[node.attrs["_module"]]
    shape = _d(x).shape
    if len(shape) == 4:
        return bn(x)
    y = bn(_reshape(x, (shape[0], shape[1], -1, 1)))
    return _reshape(y, shape)


def _op_linear(m, node, args):
    lin = m._modules[node.attrs["_module"]]
    return lin(args[0])


def _op_gemm(m, node, args):
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 else None
    if node.attrs.get("transA", 0):
        a = a.T if _is_t(a) else np.transpose(a)
    if node.attrs.get("transB", 0):
        b = b.T if _is_t(b) else np.transpose(b)
    y = _binary(a, b, np.matmul, lambda p, q: p @ q)
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = y * np.float32(alpha)
    if c is not None:
        y = _binary(y, c if beta == 1.0 else c * np.float32(beta), np.add, lambda p, q: p + q)
    return y


def _op_pool(kind):
    def op(m, node, args):
        x = args[0]
        k = _spatial(node, "kernel_shape", [])
        s = _spatial(node, "strides", [1, 1])
        pads = _pool_pads(node)
        ceil = bool(node.attrs.get("ceil_mode", 0))
        if kind == "max":
            dil = _spatial(node, "dilations", [1, 1])
            if isinstance(pads, str):
                pads = _auto_pads(pads, _d(x).shape[2:], k, s, dil)
            if len(node.outputs) > 1 and node.outputs[1]:
                raise OnnxImportError(f"MaxPool node {node.name!r}: the Indices output is not supported")
            return F.max_pool2d(x, k, s, pads, dil, ceil)
        if isinstance(pads, str):
            pads = _auto_pads(pads, _d(x).shape[2:], k, s, (1, 1))
        return F.avg_pool2d(x, k, s, pads, ceil, bool(node.attrs.get("count_include_pad", 0)))

    def bind(m, node, values):
        """The fast form (``_fuse.run_fast``) of a MaxPool of a float NCHW ndarray with symmetric
        padding: one ``_core.max_pool2d_forward`` call, the geometry worked out here."""
        xin, out = node.inputs[0], node.outputs[0]
        x = values[xin]
        if kind != "max" or (len(node.outputs) > 1 and node.outputs[1]):
            return None
        if type(x) is not np.ndarray or x.ndim != 4 or x.dtype.char not in "fd":
            return None
        k = _spatial(node, "kernel_shape", [])
        s = _spatial(node, "strides", [1, 1])
        d = _spatial(node, "dilations", [1, 1])
        pads = _pool_pads(node)
        if isinstance(pads, str):
            pads = _auto_pads(pads, x.shape[2:], k, s, d)
        if len(pads) != 2:
            return None
        from .._ndarray.pooling import _pool_args
        from ._fuse import Stale

        args = (*_pool_args("max_pool2d", k, s, pads, d), bool(node.attrs.get("ceil_mode", 0)), False)
        dt, hw, pool = x.dtype, x.shape[2:], _core.max_pool2d_forward

        def fast(gm, values):
            x = values[xin]
            if (x.dtype is not dt and x.dtype != dt) or x.shape[2:] != hw:  # (auto pads depend on the plane)
                raise Stale
            values[out] = pool(x, *args)

        return fast

    op.bind = bind
    return op


def _op_softmax(log):
    def op(m, node, args):
        x = args[0]
        fn = F.log_softmax if log else F.softmax
        shape = _d(x).shape
        if m._opset < 13:  # coerce to 2-D at axis (default 1), softmax over the flattened tail
            axis = node.attrs.get("axis", 1) % max(len(shape), 1)
            n = int(np.prod(shape[:axis]))
            return _reshape(fn(_reshape(x, (n, -1)), 1), shape)
        return fn(x, node.attrs.get("axis", -1))

    def bind(m, node, values):
        """The fast form of a Softmax of a float ndarray: the axis (and the 2-D view of opset < 13)
        worked out here, then F.softmax's own ndarray function without its argument handling."""
        from .._ndarray.misc import _softmax
        from ._fuse import Stale

        xin, out = node.inputs[0], node.outputs[0]
        x = values[xin]
        if log or type(x) is not np.ndarray or x.dtype.kind != "f" or x.ndim == 0:
            return None
        shape, dt = x.shape, x.dtype
        if m._opset < 13:
            axis = node.attrs.get("axis", 1) % x.ndim
            view, ax = (int(np.prod(shape[:axis])), -1), 1
        else:
            view, ax = None, int(node.attrs.get("axis", -1)) % x.ndim

        def fast(gm, values):
            x = values[xin]
            if x.shape != shape or (x.dtype is not dt and x.dtype != dt):
                raise Stale
            e = _softmax(x if view is None else x.reshape(view), ax)
            values[out] = e if view is None else e.reshape(shape)

        return fast

    op.bind = bind
    return op


def _op_clip(m, node, args):
    x = args[0]
    if m._opset < 11:
        lo, hi = node.attrs.get("min"), node.attrs.get("max")
    else:
        lo = None if len(args) < 2 or args[1] is None else _scalar(args[1])
        hi = None if len(args) < 3 or args[2] is None else _scalar(args[2])
    if lo == 0.0 and hi == 6.0:
        return F.relu6(x)
    return x.clip(lo, hi) if _is_t(x) else np.clip(x, lo, hi)


def _op_hardsigmoid(m, node, args):
    x = args[0]
    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    if abs(alpha - 1 / 6) < 1e-6 and beta == 0.5:
        return F.hardsigmoid(x)
    t = _d(x).dtype.type
    y = x * t(alpha) + t(beta)
    return y.clip(0, 1) if _is_t(y) else np.clip(y, 0, 1)


def _op_unary(fn_t, fn_np):
    return lambda m, node, args: fn_t(args[0]) if _is_t(args[0]) else fn_np(args[0])


def _axes(m, node, args, pos):
    if len(args) > pos and args[pos] is not None:
        return _ints(args[pos])
    a = node.attrs.get("axes")
    return None if a is None else [int(v) for v in a]


def _op_reduce(kind):
    def op(m, node, args):
        x = args[0]
        axes = _axes(m, node, args, 1)
        keep = bool(node.attrs.get("keepdims", 1))
        if not axes:
            if node.attrs.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(_d(x).ndim))
        axes = tuple(a % _d(x).ndim for a in axes)
        if _is_t(x):
            return getattr(x, kind)(axis=axes, keepdims=keep)
        return getattr(np, kind)(x, axis=axes, keepdims=keep).astype(_d(x).dtype, copy=False)

    return op


def _op_reshape(m, node, args):
    x, shape = args[0], _ints(args[1])
    in_shape = _d(x).shape
    if not node.attrs.get("allowzero", 0):
        shape = [in_shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return _reshape(x, shape)


def _op_flatten(m, node, args):
    x = args[0]
    shape = _d(x).shape
    axis = node.attrs.get("axis", 1) % (len(shape) + 1)
    return _reshape(x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))


def _op_transpose(m, node, args):
    x = args[0]
    perm = node.attrs.get("perm") or list(range(_d(x).ndim))[::-1]
    return x.permute(*perm) if _is_t(x) else np.transpose(x, perm)


def _op_squeeze(m, node, args):
    x = args[0]
    shape = _d(x).shape
    axes = _axes(m, node, args, 1)
    if axes is None:
        axes = [i for i, s in enumerate(shape) if s == 1]
    axes = {a % len(shape) for a in axes}
    return _reshape(x, [s for i, s in enumerate(shape) if i not in axes])


def _op_unsqueeze(m, node, args):
    x = args[0]
    shape = list(_d(x).shape)
    axes = _axes(m, node, args, 1)
    n = len(shape) + len(axes)
    for a in sorted(a % n for a in axes):
        shape.insert(a, 1)
    return _reshape(x, shape)


def _op_concat(m, node, args):
    items = [a for a in args if a is not None]
    axis = node.attrs["axis"]
    if not any(_is_t(a) for a in items):
        return np.concatenate([np.asarray(a) for a in items], axis=axis)
    return F.cat(items, dim=axis % _d(items[0]).ndim)


def _op_slice(m, node, args):
    x = args[0]
    nd = _d(x).ndim
    if m._opset < 10:
        starts, ends = node.attrs["starts"], node.attrs["ends"]
        axes = node.attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(args[1]), _ints(args[2])
        axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
        steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * nd
    for s, e, a, st in zip(starts, ends, axes, steps):
        dim = _d(x).shape[a % nd]
        if st < 0:  # ONNX clamps ends to [-1, dim-1] going backwards; -1 there means "through index 0"
            e = None if e < -dim else e
        index[a % nd] = slice(s, e, st)
    return x[tuple(index)]


def _op_gather(m, node, args):
    x, idx = args[0], np.asarray(_d(args[1]))
    axis = node.attrs.get("axis", 0) % _d(x).ndim
    if not _is_t(x):
        return np.take(x, idx, axis=axis)
    key = (slice(None),) * axis + ((int(idx),) if idx.ndim == 0 else (idx,))
    return x[key]


def _op_cast(m, node, args):
    x = args[0]
    to = node.attrs["to"]
    if to not in DTYPES:
        raise OnnxImportError(f"Cast node {node.name!r}: unsupported target type {to}")
    dt = DTYPES[to]
    return x.astype(dt) if _is_t(x) else np.asarray(x).astype(dt)


def _op_shape(m, node, args):
    shape = _d(args[0]).shape
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return np.array(shape[start:end], dtype=np.int64)


def _op_constant_of_shape(m, node, args):
    value = node.attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    return np.full(_ints(args[0]), value.reshape(-1)[0], dtype=value.dtype)


def _op_dropout(m, node, args):
    x = args[0]
    ratio = node.attrs.get("ratio", 0.5)
    if len(args) > 1 and args[1] is not None:
        ratio = _scalar(args[1])
    y = F.dropout(x, ratio, training=True) if m.training and _is_t(x) else x
    if len(node.outputs) > 1 and node.outputs[1]:
        return y, np.ones(_d(x).shape, dtype=np.bool_)
    return y


def _op_sum(m, node, args):
    y = args[0]
    for a in args[1:]:
        y = _binary(y, a, np.add, lambda p, q: p + q)
    return y


def _op_prelu(m, node, args):
    x, slope = args
    return _binary(x, 0, np.maximum, lambda p, q: p.relu()) + _binary(
        _binary(x, 0, np.minimum, lambda p, q: -((-p).relu())), slope, np.multiply, lambda p, q: p * q
    )


def _op_gap(m, node, args):
    x = args[0]
    if _d(x).ndim != 4:
        raise OnnxImportError(
            f"GlobalAveragePool node {node.name!r}: only 4-D input is supported, " f"got shape {_d(x).shape}"
        )
    return F.global_avg_pool2d(x)


def _op_gmp(m, node, args):
    x = args[0]
    return x.max(axis=(2, 3), keepdims=True) if _is_t(x) else np.max(x, axis=(2, 3), keepdims=True)


def _op_lrn(m, node, args):
    a = node.attrs
    return F.local_response_norm(args[0], int(a["size"]), a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0))


def _op_leaky(m, node, args):
    return F.leaky_relu(args[0], node.attrs.get("alpha", 0.01))


def _op_gelu(m, node, args):
    """Gelu (opset 20): ``approximate`` 'none' (erf) or 'tanh'."""
    approximate = node.attrs.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise OnnxImportError(f"Gelu node {node.name!r}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return F.gelu(args[0], approximate=approximate)


def _op_erf(m, node, args):
    x = args[0]
    return _Erf.apply(x) if _is_t(x) else _erf(x)


def _float_binary_bind(ufunc):
    """``bind`` (see ``_fuse.Capture``) of a two-operand op on float ndarrays: one ``ufunc`` call,
    a constant operand read through its Parameter (or buffer) on every call."""

    def bind(m, node, values):
        from ._fuse import Stale, _const_getter

        (xa, xb), out = node.inputs[:2], node.outputs[0]
        a, b = values[xa], values[xb]
        if type(a) is not np.ndarray or type(b) is not np.ndarray or a.dtype.kind != "f" or b.dtype.kind != "f":
            return None
        const = m._names.keys() - set(m.input_names)
        ga = _const_getter(m, xa) if xa in const else None
        gb = _const_getter(m, xb) if xb in const else None
        da, db = a.dtype, b.dtype

        def fast(gm, values):
            a = values[xa] if ga is None else ga()
            b = values[xb] if gb is None else gb()
            if a.dtype is not da or b.dtype is not db:
                raise Stale
            values[out] = ufunc(a, b)

        return fast

    return bind


def _op_binary(ufunc, pyop, fn=None):
    def op(m, node, args):
        if fn is not None:
            return fn(args[0], args[1])
        return _binary(args[0], args[1], ufunc, pyop)

    op.bind = _float_binary_bind(ufunc)
    return op


_op_matmul = _op_binary(np.matmul, lambda p, q: p @ q)


def _op_pow(m, node, args):
    a, b = args
    if not _is_t(b):
        b = np.asarray(b)
        if b.size == 1 and _scalar(b) == 2.0:
            return _binary(a, a, np.multiply, lambda p, q: p * q)
        b = b.astype(_d(a).dtype, copy=False)
    return _binary(a, b, np.power, lambda p, q: p**q)


def _sqrt_np(x):
    return np.sqrt(x)


OPS = {
    "Conv": _op_conv,
    "BatchNormalization": _op_bn,
    "_Linear": _op_linear,
    "Gemm": _op_gemm,
    "MatMul": _op_matmul,
    "MaxPool": _op_pool("max"),
    "AveragePool": _op_pool("avg"),
    "GlobalAveragePool": _op_gap,
    "GlobalMaxPool": _op_gmp,
    "LRN": _op_lrn,
    "Relu": lambda m, n, a: F.relu(a[0]),
    "LeakyRelu": _op_leaky,
    "PRelu": _op_prelu,
    "Sigmoid": lambda m, n, a: F.sigmoid(a[0]),
    "Tanh": lambda m, n, a: F.tanh(a[0]),
    "HardSigmoid": _op_hardsigmoid,
    "HardSwish": lambda m, n, a: F.hardswish(a[0]),
    "Clip": _op_clip,
    "Erf": _op_erf,
    "Gelu": _op_gelu,
    "Softmax": _op_softmax(False),
    "LogSoftmax": _op_softmax(True),
    "Exp": _op_unary(lambda t: t.exp(), np.exp),
    "Log": _op_unary(lambda t: t.log(), np.log),
    "Sqrt": _op_unary(lambda t: t.sqrt(), _sqrt_np),
    "Abs": _op_unary(lambda t: t.abs(), np.abs),
    "Neg": _op_unary(lambda t: -t, np.negative),
    "Add": _op_binary(np.add, lambda p, q: p + q),
    "Sub": _op_binary(np.subtract, lambda p, q: p - q),
    "Mul": _op_binary(np.multiply, lambda p, q: p * q),
    "Div": _op_binary(np.divide, None, _div),  # (floats: np.divide; the bound form takes floats only)
    "Pow": _op_pow,
    "Sum": _op_sum,
    "ReduceMean": _op_reduce("mean"),
    "ReduceSum": _op_reduce("sum"),
    "ReduceMax": _op_reduce("max"),
    "Reshape": _op_reshape,
    "Flatten": _op_flatten,
    "Transpose": _op_transpose,
    "Squeeze": _op_squeeze,
    "Unsqueeze": _op_unsqueeze,
    "Concat": _op_concat,
    "Slice": _op_slice,
    "Gather": _op_gather,
    "Cast": _op_cast,
    "Shape": _op_shape,
    "ConstantOfShape": _op_constant_of_shape,
    "Dropout": _op_dropout,
    "Identity": lambda m, n, a: a[0],
}
SUPPORTED_OPS = sorted(k for k in OPS if not k.startswith("_"))
_NO_FOLD = {"Conv", "BatchNormalization", "Dropout", "_Linear"}
# inputs read as plain values (bounds, shapes, axes, ratios): constants there are buffers, not Parameters
_STATIC_INPUTS = {
    "Clip": (1, 2),
    "Dropout": (1, 2),
    "Reshape": (1,),
    "Slice": (1, 2, 3, 4),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "ReduceMean": (1,),
    "ReduceSum": (1,),
    "ReduceMax": (1,),
    "Gather": (1,),
    "ConstantOfShape": (0,),
}


# ---------------------------------------------------------------------------- the module


def simplify(spec, outputs=None, inputs=None):
    """``spec`` cut to ``outputs`` (default: its own), starting from the tensors ``inputs`` (default:
    its own inputs), with the nodes whose inputs are all constants folded into constants and the
    Identity nodes dropped: a new :class:`GraphSpec`. Raises :class:`OnnxImportError` for unknown
    tensors, unsupported operators or dangling references."""
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        made = {o for nd in spec.nodes for o in nd.outputs if o}
        given = {n: (s, d) for n, s, d in spec.inputs}
        for n in inputs:
            if n not in made and n not in given:
                raise OnnxImportError(
                    f"input {n!r} is not a tensor of the graph (not an input or the output of " f"any node)"
                )
        spec = GraphSpec(
            [(n,) + given.get(n, (None, np.float32)) for n in inputs],
            spec.outputs,
            [nd for nd in spec.nodes if not set(nd.outputs) & set(inputs)],
            spec.constants,
            spec.opset,
            spec.source,
        )
    if outputs is None:
        outputs = list(spec.outputs)
    elif isinstance(outputs, str):
        outputs = [outputs]
    else:
        outputs = list(outputs)
    if not outputs:
        raise OnnxImportError("the graph has no outputs (pass outputs=[tensor names])")
    folder = _Folder(spec.opset)
    consts = dict(spec.constants)
    input_names = [n for n, _, _ in spec.inputs if n not in consts]
    producer = {}
    for i, nd in enumerate(spec.nodes):
        for o in nd.outputs:
            if o:
                producer[o] = i
    known = set(consts) | set(input_names) | set(producer)
    for o in outputs:
        if o not in known:
            raise OnnxImportError(
                f"output {o!r} is not a tensor of the graph (not an input, a constant or " f"the output of any node)"
            )
    # nodes needed for the outputs
    need, stack = set(), list(outputs)
    while stack:
        t = stack.pop()
        i = producer.get(t)
        if i is None or i in need:
            continue
        need.add(i)
        stack.extend(x for x in spec.nodes[i].inputs if x)
    nodes = [spec.nodes[i] for i in sorted(need)]
    unsupported = sorted({f"{n.op}" for n in nodes if n.op not in OPS})
    if unsupported:
        first = next(n for n in nodes if n.op in unsupported)
        raise OnnxImportError(
            f"unsupported ONNX operator(s) {', '.join(unsupported)} (e.g. node {first.name!r}); "
            f"cnnfast supports: {', '.join(SUPPORTED_OPS)}"
        )
    # check the references (topological order), fold constants, drop Identity nodes
    alias = {}
    defined = set(consts) | set(input_names)
    kept = []
    for nd in nodes:
        ins = [alias.get(x, x) for x in nd.inputs]
        for x in ins:
            if x and x not in defined:
                raise OnnxImportError(
                    f"malformed graph: input {x!r} of {nd.op} node {nd.name!r} is not produced "
                    f"by an earlier node, a constant or a graph input"
                )
        nd = Node(nd.op, ins, nd.outputs, nd.attrs, nd.name)
        defined.update(o for o in nd.outputs if o)
        if nd.op == "Identity":
            alias[nd.outputs[0]] = ins[0]
            continue
        if nd.op not in _NO_FOLD and all((not x) or x in consts for x in ins):
            args = [consts[x] if x else None for x in ins]
            try:
                res = OPS[nd.op](folder, nd, args)
            except OnnxImportError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure here means a malformed graph
                raise OnnxImportError(f"{nd.op} node {nd.name!r} failed on its constant inputs: {e}") from None
            res = res if isinstance(res, tuple) else (res,)
            for o, r in zip(nd.outputs, res):
                if o:
                    consts[o] = np.asarray(r)
            continue
        kept.append(nd)
    # an output produced through Identity nodes keeps its name: rename the producing node's output
    made = {o: nd for nd in kept for o in nd.outputs if o}
    rename = {}
    for o in outputs:
        a = alias.get(o)
        while a in alias:
            a = alias[a]
        if a is not None and a in made and a not in outputs and a not in rename:
            rename[a] = o
    if rename:
        for nd in kept:
            nd.inputs = [rename.get(x, x) for x in nd.inputs]
            nd.outputs = [rename.get(x, x) for x in nd.outputs]
    outputs = [o if o in rename.values() else alias.get(o, o) for o in outputs]
    needed = {x for nd in kept for x in nd.inputs} | set(outputs)
    inputs = [(n, s, d) for n, s, d in spec.inputs if n in input_names and n in needed]
    constants = {n: consts[n] for n in consts if n in needed}
    return GraphSpec(inputs, outputs, kept, constants, spec.opset, spec.source)


class _Folder:
    """Stands in for the module when folding constants (eval mode, no children)."""

    training = False

    def __init__(self, opset):
        self._opset = opset
        self._modules = {}


def _uninitialised(cls, *args, **kwargs):
    """A layer built without its random initialisation (its weights are overwritten right after)."""
    obj = cls.__new__(cls)
    obj.__dict__["reset_parameters"] = lambda generator=None: None
    cls.__init__(obj, *args, **kwargs)
    del obj.__dict__["reset_parameters"]
    return obj


def _sanitize(name):
    s = re.sub(r"\W", "_", name).strip("_") or "t"
    return "t_" + s if s[0].isdigit() else s


# GraphModule -> its compiled eval-mode steps (kept outside the module: not pickled or deep-copied)
_EVAL_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# GraphModule -> (program, (structure epoch, input shapes and dtypes), fast program or None): see
# GraphModule._forward_eval
_FAST_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class GraphModule(Module):
    """A graph (see :class:`GraphSpec`) as a trainable module; ``forward(*inputs)``.

    Conv, BatchNormalization and Gemm nodes are :class:`OnnxConv2d` (an ``nn.Conv2d``) /
    ``nn.BatchNorm2d`` / ``nn.Linear`` children; the other float constants are Parameters (integer ones buffers) named after the
    graph's tensors. Built in eval mode (BatchNorm with running statistics, Dropout off): call
    ``train()`` to fine-tune. ``input_names`` / ``output_names`` list the graph's ends.
    """

    def __init__(
        self, spec: GraphSpec, outputs: str | Sequence[str] | None = None, inputs: str | Sequence[str] | None = None
    ) -> None:
        super().__init__()
        if outputs is None:
            outputs = list(spec.outputs)
        elif isinstance(outputs, str):
            outputs = [outputs]
        else:
            outputs = list(outputs)
        if not outputs:
            raise OnnxImportError("the graph has no outputs (pass outputs=[tensor names])")
        self.__dict__["_opset"] = spec.opset
        self._build(simplify(spec, outputs, inputs))
        self.eval()

    # ------------------------------------------------------------------ build
    def _build(self, spec):
        consts = dict(spec.constants)
        input_names = [n for n, _, _ in spec.inputs]
        input_info = {n: (s, d) for n, s, d in spec.inputs}
        kept, outputs = spec.nodes, spec.outputs
        used = {}
        for nd in kept:
            for x in nd.inputs:
                if x:
                    used.setdefault(x, []).append(nd)
        out_set = set(outputs)

        def sole_consumer(t):
            c = used.get(t, [])
            return c[0] if len(c) == 1 and t not in out_set else None

        # fusions: Conv + Add(bias) + Relu
        dropped = set()
        for nd in kept:
            if nd.op != "Conv" or id(nd) in dropped:
                continue
            if len(nd.inputs) < 3 or not nd.inputs[2]:
                c = sole_consumer(nd.outputs[0])
                w = consts.get(nd.inputs[1]) if len(nd.inputs) > 1 else None
                if c is not None and c.op == "Add" and w is not None:
                    other = c.inputs[1] if c.inputs[0] == nd.outputs[0] else c.inputs[0]
                    b = consts.get(other)
                    if (
                        b is not None
                        and b.dtype.kind == "f"
                        and b.size == w.shape[0]
                        and b.shape in ((w.shape[0],), (1, w.shape[0], 1, 1), (w.shape[0], 1, 1))
                    ):
                        name = other + "__bias"
                        consts[name] = b.reshape(-1)
                        nd.inputs = nd.inputs[:2] + [name]
                        nd.outputs = [c.outputs[0]]
                        dropped.add(id(c))
            c = sole_consumer(nd.outputs[0])
            if c is not None and c.op == "Relu":
                nd.attrs = dict(nd.attrs, _relu=True)
                nd.outputs = [c.outputs[0]]
                dropped.add(id(c))
        kept = [nd for nd in kept if id(nd) not in dropped]
        # modules, parameters, buffers
        self.__dict__["_names"] = names = {}
        taken = set(dir(self))

        def unique(base):
            base = _sanitize(base)
            n, k = base, 1
            while n in taken:
                n, k = f"{base}_{k}", k + 1
            taken.add(n)
            return n

        owned = set()  # constants absorbed into a module
        plan = []
        for nd in kept:
            if nd.op == "Conv":
                nd = self._make_conv(nd, consts, unique)
                owned.update(nd.inputs[1:])
                nd = Node(nd.op, nd.inputs[:1], nd.outputs, nd.attrs, nd.name)
            elif nd.op == "BatchNormalization" and all(x in consts for x in nd.inputs[1:5]):
                nd = self._make_bn(nd, consts, unique)
                owned.update(nd.inputs[1:5])
                nd = Node(nd.op, nd.inputs[:1], nd.outputs[:1], nd.attrs, nd.name)
            elif nd.op == "BatchNormalization":
                raise OnnxImportError(
                    f"BatchNormalization node {nd.name!r}: scale, bias, mean and variance must be " f"constants"
                )
            elif (
                nd.op == "Gemm"
                and nd.inputs[1] in consts
                and not nd.attrs.get("transA", 0)
                and nd.attrs.get("alpha", 1.0) == 1.0
                and nd.attrs.get("beta", 1.0) == 1.0
                and consts[nd.inputs[1]].ndim == 2
                and (
                    len(nd.inputs) < 3
                    or not nd.inputs[2]
                    or (
                        nd.inputs[2] in consts
                        and consts[nd.inputs[2]].size
                        == consts[nd.inputs[1]].shape[0 if nd.attrs.get("transB", 0) else 1]
                    )
                )
            ):
                nd = self._make_linear(nd, consts, unique)
                owned.update(x for x in nd.inputs[1:] if x)
                nd = Node("_Linear", nd.inputs[:1], nd.outputs, nd.attrs, nd.name)
            plan.append(nd)
        learnable = {x for nd in plan for i, x in enumerate(nd.inputs) if i not in _STATIC_INPUTS.get(nd.op, ())}
        for nd in plan:
            for x in nd.inputs:
                if x and x in consts and x not in owned and x not in names:
                    a = consts[x]
                    n = unique(x)
                    names[x] = n
                    if a.dtype.kind == "f" and x in learnable:
                        self.register_parameter(n, Parameter(np.array(a)))
                    else:
                        self.register_buffer(n, np.array(a))
        for o in outputs:  # an output that is a constant
            if o in consts and o not in names:
                n = unique(o)
                names[o] = n
                self.register_buffer(n, np.array(consts[o]))
        needed_inputs = {x for nd in plan for x in nd.inputs} | set(outputs)
        d = self.__dict__
        d["input_names"] = [n for n in input_names if n in needed_inputs]
        d["_input_info"] = {n: input_info.get(n, (None, np.float32)) for n in d["input_names"]}
        d["output_names"] = list(outputs)
        d["_plan"] = plan
        self._check_consumers(plan)

    def _check_consumers(self, plan):
        last = {}
        for i, nd in enumerate(plan):
            for x in nd.inputs:
                if x:
                    last[x] = i
        keep = set(self.output_names)
        self.__dict__["_free_after"] = [
            [x for x in set(nd.inputs) if x and last.get(x) == i and x not in keep] for i, nd in enumerate(plan)
        ]

    def _make_conv(self, nd, consts, unique):
        if nd.inputs[1] not in consts or (len(nd.inputs) > 2 and nd.inputs[2] and nd.inputs[2] not in consts):
            raise OnnxImportError(f"Conv node {nd.name!r}: the weight and bias must be constants")
        w = consts[nd.inputs[1]]
        if w.ndim != 4:
            raise OnnxImportError(
                f"Conv node {nd.name!r}: only 2-D convolutions are supported (weight of shape " f"{w.shape})"
            )
        b = consts[nd.inputs[2]] if len(nd.inputs) > 2 and nd.inputs[2] else None
        groups = int(nd.attrs.get("group", 1))
        stride = _spatial(nd, "strides", [1, 1])
        dil = _spatial(nd, "dilations", [1, 1])
        if "kernel_shape" in nd.attrs and tuple(nd.attrs["kernel_shape"]) != tuple(w.shape[2:]):
            raise OnnxImportError(
                f"Conv node {nd.name!r}: kernel_shape {nd.attrs['kernel_shape']} does not match the "
                f"weight of shape {w.shape}"
            )
        pads = _pool_pads(nd)
        if pads == "VALID":
            pads = (0, 0)
        if isinstance(pads, str) and stride == (1, 1):  # SAME with stride 1 does not depend on the input size
            pads = _auto_pads(pads, (1, 1), w.shape[2:], stride, dil)
        dtype = w.dtype if w.dtype in (np.float32, np.float64) else np.float32
        conv = _uninitialised(
            OnnxConv2d,
            w.shape[1] * groups,
            w.shape[0],
            tuple(w.shape[2:]),
            stride,
            pads if not isinstance(pads, str) else 0,
            dil,
            groups,
            bias=b is not None,
            dtype=dtype,
        )
        if isinstance(pads, str):
            conv.auto_pad = pads
        conv.fused_relu = bool(nd.attrs.get("_relu"))
        conv.weight.data[...] = w
        if b is not None:
            conv.bias.data[...] = b.reshape(-1)
        name = unique(nd.name)
        self.add_module(name, conv)
        return Node(nd.op, nd.inputs, nd.outputs, dict(nd.attrs, _module=name), nd.name)

    def _make_bn(self, nd, consts, unique):
        scale, bias, mean, var = (consts[x] for x in nd.inputs[1:5])
        dtype = scale.dtype if scale.dtype in (np.float32, np.float64) else np.float32
        bn = BatchNorm2d(
            scale.shape[0],
            eps=float(nd.attrs.get("epsilon", 1e-5)),
            momentum=1.0 - float(nd.attrs.get("momentum", 0.9)),
            dtype=dtype,
        )
        bn.weight.data[...] = scale
        bn.bias.data[...] = bias
        bn.running_mean[...] = mean
        bn.running_var[...] = var
        name = unique(nd.name)
        self.add_module(name, bn)
        return Node(nd.op, nd.inputs, nd.outputs, dict(nd.attrs, _module=name), nd.name)

    def _make_linear(self, nd, consts, unique):
        w = consts[nd.inputs[1]]
        if not nd.attrs.get("transB", 0):
            w = w.T
        b = consts[nd.inputs[2]] if len(nd.inputs) > 2 and nd.inputs[2] else None
        dtype = w.dtype if w.dtype in (np.float32, np.float64) else np.float32
        lin = _uninitialised(Linear, w.shape[1], w.shape[0], bias=b is not None, dtype=dtype)
        lin.weight.data[...] = w
        if b is not None:
            lin.bias.data[...] = b.reshape(-1)
        name = unique(nd.name)
        self.add_module(name, lin)
        return Node(nd.op, nd.inputs, nd.outputs, dict(nd.attrs, _module=name), nd.name)

    # ------------------------------------------------------------------ run
    def forward(self, *inputs: Any) -> Any:
        names = self.input_names
        if len(inputs) != len(names):
            raise ValueError(f"GraphModule: expected {len(names)} input(s) {names}, got {len(inputs)}")
        record = any(_is_t(x) for x in inputs)
        values = {}
        for n, x in zip(names, inputs):
            shape, dtype = self._input_info[n]
            if not _is_t(x):
                x = np.asarray(x)
                if x.dtype != dtype and x.dtype.kind in "biuf":
                    x = x.astype(dtype)
            xs = _d(x).shape
            if shape is not None and (
                len(xs) != len(shape) or any(s is not None and s != v for s, v in zip(shape, xs))
            ):
                want = tuple("?" if s is None else s for s in shape)
                raise ValueError(f"GraphModule: input {n!r} should have shape {want}, got {tuple(xs)}")
            values[n] = x
        if not record and not self.training:
            return self._forward_eval(values)
        for n, attr in self._names.items():
            v = self.__dict__[attr]
            values[n] = v if record or not _is_t(v) else v.data
        for nd, free in zip(self._plan, self._free_after):
            args = [values[x] if x else None for x in nd.inputs]
            try:
                res = OPS[nd.op](self, nd, args)
            except OnnxImportError:
                raise
            except (ValueError, TypeError) as e:
                shapes = [None if a is None else tuple(_d(a).shape) for a in args]
                raise ValueError(
                    f"GraphModule: {nd.op} node {nd.name!r} failed on inputs of shapes {shapes}: " f"{e}"
                ) from None
            if isinstance(res, tuple):
                for o, r in zip(nd.outputs, res):
                    if o:
                        values[o] = r
            else:
                values[nd.outputs[0]] = res
            for x in free:
                values.pop(x, None)
        out = tuple(values[o] for o in self.output_names)
        return out[0] if len(out) == 1 else out

    def _forward_eval(self, values):
        """ndarrays in eval mode: the compiled steps of :mod:`._fuse` (Conv + BatchNorm + activation
        as one conv call, nothing recorded). The second call with the same module structure
        (``nn.module._structure_epoch``) and the same input shapes and dtypes also binds each
        step's fast form; later such calls run those (``_fuse.run_fast``), which skip the checks
        only a structure change can fail and restart here if anything else changed."""
        prog = _EVAL_PROGRAMS.get(self)
        if prog is None:
            from ._fuse import compile_eval

            prog = _EVAL_PROGRAMS[self] = compile_eval(self, OPS, OnnxConv2d, _auto_pads)
        key = (_structure_epoch[0], tuple((v.shape, v.dtype) for v in values.values()))
        state = _FAST_PROGRAMS.get(self)
        capture = None
        if state is not None and state[0] is prog and state[1] == key:
            if state[2] is not None:
                from ._fuse import run_fast

                try:
                    out = run_fast(self, state[2], dict(values), self.output_names)
                    return out[0] if len(out) == 1 else out
                except Exception:  # Stale, or an error the checked steps below report by node
                    del _FAST_PROGRAMS[self]
            else:
                from ._fuse import Capture

                capture = Capture(self)
        else:
            _FAST_PROGRAMS[self] = (prog, key, None)
        consts, steps = prog
        d = self.__dict__
        for n, attr in consts:
            v = d[attr]
            values[n] = v.data if isinstance(v, Tensor) else v
        step = None
        try:
            for step in steps:
                if capture is not None:
                    capture.before(self, step, values)
                step[0](self, values)
                if capture is not None:
                    capture.after(self, values)
                for x in step[2]:
                    del values[x]
        except OnnxImportError:
            raise
        except (ValueError, TypeError) as e:
            nd = step[1][0]
            shapes = [None if not x or x not in values else tuple(np.shape(_d(values[x]))) for x in nd.inputs]
            raise ValueError(
                f"GraphModule: {nd.op} node {nd.name!r} failed on inputs of shapes {shapes}: " f"{e}"
            ) from None
        if capture is not None and _structure_epoch[0] == key[0]:
            _FAST_PROGRAMS[self] = (prog, key, capture.program(consts))
        out = tuple(values[o] for o in self.output_names)
        return out[0] if len(out) == 1 else out

    def extra_repr(self):
        return f"inputs={self.input_names}, outputs={self.output_names}, nodes={len(self._plan)}"
