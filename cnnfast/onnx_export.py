"""Export a cnnfast network to an ONNX file (``cnnfast.onnx.export`` delegates here).

The model is traced: it runs once, in eval mode, on the example input wrapped in a
``cnnfast.Tensor``, so every operation of its forward is recorded by autograd, and a forward hook
on every submodule marks where each layer begins and ends. The layers of ``cnnfast.nn`` become
one ONNX node each (Conv, BatchNormalization, MaxPool, ...; a few are small subgraphs), named
after the module's path in the model (``layer1.0.conv1``); what the models' own ``forward`` code
does between layers (residual ``+``, squeeze-and-excitation ``*``, ``cat``, ``reshape``,
``F.relu``, ``F.adaptive_avg_pool2d``, ...) is read from the recorded autograd graph. Parameters
and buffers become initializers under their state-dict names (``layer1.0.conv1.weight``,
``bn1.running_mean``), so the file keeps the model's naming.

An operation without an ONNX translation, or a module whose forward computes outside cnnfast's
recorded operations (on ``.data`` with NumPy, say), raises an error naming the module. The file is
written atomically: a temporary file in the same folder, renamed over ``path`` once complete.

Needs the ``onnx`` package (``pip install 'cnnfast[onnx]'``), imported on first use.
"""

from __future__ import annotations

import math
import numbers
import os
import secrets
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np

from .autograd import ops as _ops
from .autograd.function import Function
from .autograd.grad_mode import enable_grad
from .autograd.tensor import Tensor

if TYPE_CHECKING:
    from .nn.module import Module

#: Where export writes: a file name or a binary file object.
_Dest = Union[str, "os.PathLike[str]", IO[bytes]]

__all__ = ["UnsupportedExportError", "export"]

MIN_OPSET = 14  # HardSwish appears in opset 14; Softmax's axis semantics are opset 13's


class UnsupportedExportError(ValueError):
    """The model holds a module or an operation that has no ONNX translation."""


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise ImportError(
            "cnnfast.onnx.export needs the 'onnx' package, which is not installed: "
            "pip install 'cnnfast[onnx]' (or pip install onnx)"
        ) from e
    return onnx, helper, numpy_helper


# ------------------------------------------------------------------------------------------ tracing
class _ModuleCall(Function):
    """A recorded call of a layer with a direct ONNX translation: parents = (input,). Never
    differentiated; it only cuts the traced graph at layer boundaries."""

    def name(self):
        return f"{type(self.module).__name__}[{self.path or '<model>'}]"


def _module_label(path, module):
    return f"module '{path}' ({type(module).__name__})" if path else f"the model ({type(module).__name__})"


def _tensors_in(obj):
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors_in(o)]
    return []


class _Tracer:
    def __init__(self, model):
        self.model = model
        self.handles = []

    def __enter__(self):
        from .nn.module import Module

        for path, m in self.model.named_modules():
            if isinstance(m, Module):
                self.handles.append(m.register_forward_hook(self._hook(path)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _hook(self, path):
        def hook(module, args, out):
            inputs = _tensors_in(args)
            label = _module_label(path, module)
            outs = _tensors_in(out)
            if not outs or (not isinstance(out, Tensor) and not isinstance(out, (tuple, list))):
                raise UnsupportedExportError(
                    f"cnnfast.onnx.export: {label} returned {type(out).__name__} for a Tensor input; its forward "
                    f"computes outside cnnfast's recorded operations, so it cannot be traced"
                )
            in_ids = {id(t) for t in inputs}
            if any(t.requires_grad for t in inputs):
                for t in outs:
                    if t._ctx is None and id(t) not in in_ids:
                        raise UnsupportedExportError(
                            f"cnnfast.onnx.export: {label} returned a Tensor that is not computed from its input by "
                            f"recorded operations (NumPy on .data?), so it cannot be traced"
                        )
            handler = _layer_handler(module)
            if handler is not None and handler is not _PASS and not isinstance(out, Tensor):
                why = (
                    "; only the pooled values can be exported (return_indices=True)"
                    if getattr(module, "return_indices", False)
                    else ""
                )
                raise UnsupportedExportError(f"cnnfast.onnx.export: {label} returned {type(out).__name__}{why}")
            if handler is not None and handler is not _PASS:
                if len(inputs) != 1 or len(args) != 1:
                    raise UnsupportedExportError(
                        f"cnnfast.onnx.export: {label} was called with {len(args)} "
                        f"arguments; one Tensor input is expected"
                    )
                ctx = _ModuleCall()
                ctx.module, ctx.path, ctx.parents = module, path, (inputs[0],)
                ctx.needs_input_grad = (True,)
                ctx._onnx_path = path
                return Tensor._make(out.data, ctx)
            # a container or a module with its own forward: tag the nodes it created with its path
            stack = [t for t in outs]
            while stack:
                t = stack.pop()
                ctx = t._ctx
                if ctx is None or id(t) in in_ids or getattr(ctx, "_onnx_path", None) is not None:
                    continue
                ctx._onnx_path = path
                stack.extend(p for p in ctx.parents if isinstance(p, Tensor))
            return None

        return hook


# ------------------------------------------------------------------------------------------ builder
class _Graph:
    """Accumulates nodes and initializers; names tensors."""

    def __init__(self, helper, numpy_helper, opset, dtype, dynamic_batch, batch):
        self.helper, self.nh = helper, numpy_helper
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.dynamic_batch, self.batch = dynamic_batch, batch
        self.nodes, self.inits = [], []
        self.names = {}  # id(Tensor or ndarray) -> name
        self.keep = []  # keep traced objects alive while their ids are keys
        self.used = set()
        self.batched = set()  # ids of the traced Tensors computed from the inputs
        self.counter = 0

    def unique(self, base):
        base = base or "t"
        name, k = base, 1
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name

    def node(self, op, inputs, n_out=1, name=None, outputs=None, **attrs):
        self.counter += 1
        stem = name or op
        outputs = outputs or [self.unique(f"{stem}_out" if n_out == 1 else f"{stem}_out{i}") for i in range(n_out)]
        self.nodes.append(
            self.helper.make_node(op, list(inputs), list(outputs), name=self.unique(f"{stem}:{op}"), **attrs)
        )
        return outputs[0] if n_out == 1 else outputs

    def const(self, value, name=None, dtype=None):
        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        nm = self.unique(name or "const")
        self.inits.append(self.nh.from_array(arr, nm))
        return nm

    def ints(self, values, name=None):
        return self.const(np.asarray(values, dtype=np.int64), name, np.int64)

    def array(self, arr, name):
        """An initializer for a parameter or buffer array, once per array object."""
        key = id(arr)
        if key not in self.names:
            a = np.asarray(arr)
            if a.dtype.kind == "f" and a.dtype != self.dtype:
                a = a.astype(self.dtype)
            nm = self.unique(name)
            self.inits.append(self.nh.from_array(np.ascontiguousarray(a), nm))
            self.names[key] = nm
            self.keep.append(arr)
        return self.names[key]


_PASS = object()  # layers that return their input in eval mode


def _layer_handler(module):
    """The translation function of a cnnfast.nn layer, _PASS for identities, None for others.

    A subclass that overrides ``forward`` is traced through its forward instead."""
    for cls, fn in _LAYERS.items():
        if isinstance(module, cls) and type(module).forward is cls.forward:
            return fn
    return None


def _pair(v):
    return (int(v), int(v)) if isinstance(v, numbers.Integral) else tuple(int(a) for a in v)


def _onnx_pads(padding):
    """cnnfast padding (int, pair, or (top, bottom, left, right)) -> ONNX [top, left, bottom, right]."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        t, b, l, r = (int(p) for p in padding)
        return [t, l, b, r]
    ph, pw = _pair(padding)
    return [ph, pw, ph, pw]


# -------------------------------------------------------------- translations of cnnfast.nn layers
# Each takes (g, module, path, x_name, x, out) -> output name. x, out: the traced Tensors.


def _conv_layer(g, m, path, xn, x, out):
    from .functional.conv import _conv_pads

    w = m.weight.data
    pads = _conv_pads("Conv2d", m.padding, w.shape, tuple(m.stride), tuple(m.dilation))
    inputs = [xn, g.array(m.weight.data, f"{path}.weight" if path else "weight")]
    if m.bias is not None:
        inputs.append(g.array(m.bias.data, f"{path}.bias" if path else "bias"))
    t, b, l, r = pads
    return g.node(
        "Conv",
        inputs,
        name=path,
        kernel_shape=list(w.shape[2:]),
        strides=list(m.stride),
        dilations=list(m.dilation),
        pads=[t, l, b, r],
        group=int(m.groups),
    )


def _linear(g, path, xn, x, wn, bn, w_shape):
    if x.ndim == 2:
        return g.node("Gemm", [xn, wn] + ([bn] if bn else []), name=path, transB=1)
    wt = g.node("Transpose", [wn], name=f"{path}.weight_t", perm=[1, 0])
    y = g.node("MatMul", [xn, wt], name=path)
    return g.node("Add", [y, bn], name=path) if bn else y


def _linear_layer(g, m, path, xn, x, out):
    wn = g.array(m.weight.data, f"{path}.weight" if path else "weight")
    bn = g.array(m.bias.data, f"{path}.bias" if path else "bias") if m.bias is not None else None
    return _linear(g, path, xn, x, wn, bn, m.weight.shape)


def _bn_layer(g, m, path, xn, x, out):
    if m.running_mean is None or m.running_var is None:
        raise UnsupportedExportError(
            f"cnnfast.onnx.export: {_module_label(path, m)} has track_running_stats=False, "
            f"so it normalises with each batch's statistics even in eval mode; ONNX "
            f"BatchNormalization (inference) needs running statistics"
        )
    c = m.num_features
    p = f"{path}." if path else ""
    scale = g.array(m.weight.data, p + "weight") if m.weight is not None else g.const(np.ones(c), p + "weight")
    bias = g.array(m.bias.data, p + "bias") if m.bias is not None else g.const(np.zeros(c), p + "bias")
    return g.node(
        "BatchNormalization",
        [xn, scale, bias, g.array(m.running_mean, p + "running_mean"), g.array(m.running_var, p + "running_var")],
        name=path,
        epsilon=float(m.eps),
    )


def _relu6(g, path, xn):
    return g.node("Clip", [xn, g.const(0.0, "zero"), g.const(6.0, "six")], name=path)


def _silu(g, path, xn):
    return g.node("Mul", [xn, g.node("Sigmoid", [xn], name=path)], name=path)


def _gelu(g, path, xn, approximate):
    if g.opset >= 20:
        return g.node("Gelu", [xn], name=path, approximate=approximate)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = g.node("Mul", [xn, g.node("Mul", [xn, xn], name=path)], name=path)
        inner = g.node("Add", [xn, g.node("Mul", [x3, g.const(0.044715)], name=path)], name=path)
        t = g.node("Tanh", [g.node("Mul", [inner, g.const(math.sqrt(2.0 / math.pi))], name=path)], name=path)
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = g.node("Erf", [g.node("Div", [xn, g.const(math.sqrt(2.0))], name=path)], name=path)
    half_x = g.node("Mul", [xn, g.const(0.5)], name=path)
    return g.node("Mul", [half_x, g.node("Add", [t, g.const(1.0, "one")], name=path)], name=path)


def _hardsigmoid(g, path, xn):
    return g.node("HardSigmoid", [xn], name=path, alpha=1.0 / 6.0, beta=0.5)


def _prelu(g, path, xn, x, wn, w_size):
    if w_size != 1 and x.ndim > 2:  # one slope per channel (dim 1): shape (C, 1, ..., 1) to broadcast
        wn = g.node("Reshape", [wn, g.ints([w_size] + [1] * (x.ndim - 2), "prelu_shape")], name=f"{path}.weight")
    return g.node("PRelu", [xn, wn], name=path)


def _pool_args(m):
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    return k, s, _onnx_pads(m.padding)


def _maxpool_layer(g, m, path, xn, x, out):
    if m.return_indices:
        raise UnsupportedExportError(
            f"cnnfast.onnx.export: {_module_label(path, m)} has return_indices=True; only "
            f"the pooled values can be exported"
        )
    k, s, pads = _pool_args(m)
    return g.node(
        "MaxPool",
        [xn],
        name=path,
        kernel_shape=list(k),
        strides=list(s),
        pads=pads,
        dilations=list(_pair(m.dilation)),
        ceil_mode=int(m.ceil_mode),
    )


def _avgpool_layer(g, m, path, xn, x, out):
    if m.divisor_override is not None:
        raise UnsupportedExportError(
            f"cnnfast.onnx.export: {_module_label(path, m)} has divisor_override, which "
            f"ONNX AveragePool cannot express"
        )
    k, s, pads = _pool_args(m)
    if m.ceil_mode and m.count_include_pad and any(pads):
        # ceil_mode with padding: ONNX's shape rule (before opset 19) and runtimes disagree with
        # PyTorch on whether a last window starting in the right padding exists and on the divisor
        # of windows overhanging the padded input. Unambiguous: zero-pad explicitly, average
        # without padding, rescale by cnnfast's own divisors.
        return _avgpool_exact(g, path, xn, x, out, k, s, pads, True)
    return g.node(
        "AveragePool",
        [xn],
        name=path,
        kernel_shape=list(k),
        strides=list(s),
        pads=pads,
        ceil_mode=int(m.ceil_mode),
        count_include_pad=int(m.count_include_pad),
    )


def _avgpool_exact(g, path, xn, x, out, k, s, pads, count_include_pad):
    """avg pool = (zero-pad, average without padding, ceil_mode) * (k*k / cnnfast's divisor)."""
    from .functional.misc import _divisors

    t, l, b, r = pads
    h, w = x.shape[-2:]
    oh, ow = out.shape[-2:]
    hp, wp = max(h + t + b, (oh - 1) * s[0] + k[0]), max(w + l + r, (ow - 1) * s[1] + k[1])
    padded = g.node("Pad", [xn, g.ints([0, 0, t, l, 0, 0, hp - h - t, wp - w - l], "pads")], name=path)
    avg = g.node("AveragePool", [padded], name=path, kernel_shape=list(k), strides=list(s))
    if count_include_pad and (t, l) == (b, r):
        dh = _divisors(h, k[0], s[0], t, oh, True)
        dw = _divisors(w, k[1], s[1], l, ow, True)
    else:  # window cells inside the padded input
        mh = np.zeros(hp)
        mh[: h + t + b] = 1
        mw = np.zeros(wp)
        mw[: w + l + r] = 1
        if not count_include_pad:
            mh[:] = 0
            mh[t : t + h] = 1
            mw[:] = 0
            mw[l : l + w] = 1
        dh = np.array([mh[i * s[0] : i * s[0] + k[0]].sum() for i in range(oh)])
        dw = np.array([mw[j * s[1] : j * s[1] + k[1]].sum() for j in range(ow)])
    factor = (k[0] * k[1]) / np.outer(dh, dw)
    return g.node("Mul", [avg, g.const(factor, "avgpool_divisor")], name=path)


def _adaptive(g, path, label, xn, x, out):
    h, w = x.shape[-2:]
    oh, ow = out.shape[-2:]
    if (oh, ow) == (1, 1):
        return g.node("GlobalAveragePool", [xn], name=path)
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return g.node("AveragePool", [xn], name=path, kernel_shape=k, strides=k)
    raise UnsupportedExportError(
        f"cnnfast.onnx.export: {label}: adaptive average pooling from {h}x{w} to "
        f"{oh}x{ow} has windows of unequal sizes, which ONNX AveragePool cannot express "
        f"(only output sizes that divide the input size are exported)"
    )


def _adaptive_layer(g, m, path, xn, x, out):
    return _adaptive(g, path, _module_label(path, m), xn, x, out)


def _reshape_to(g, path, xn, x, shape):
    """Reshape x to ``shape``. With a free batch size, a reshape that keeps the batch in dim 0 uses
    0 there (ONNX: copy the input's dim); one that moves it cannot be exported."""
    spec = [int(v) for v in shape]
    if g.dynamic_batch and id(x) in g.batched:
        if spec and x.ndim and spec[0] == x.shape[0]:
            spec[0] = 0
        else:
            raise UnsupportedExportError(
                f"a reshape from {tuple(x.shape)} to {tuple(shape)} moves the batch dimension, so the graph "
                f"cannot have a free batch size; pass dynamic_batch=False"
            )
    return g.node("Reshape", [xn, g.ints(spec, "shape")], name=path)


def _flatten_layer(g, m, path, xn, x, out):
    nd = x.ndim
    s, e = m.start_dim % nd, m.end_dim % nd
    if s == 1 and e == nd - 1:
        return g.node("Flatten", [xn], name=path, axis=1)
    try:
        return _reshape_to(g, path, xn, x, out.shape)
    except UnsupportedExportError as e:
        raise UnsupportedExportError(f"cnnfast.onnx.export: {_module_label(path, m)}: {e}") from None


def _lrn(g, path, xn, x, size, alpha, beta, k):
    if size % 2 == 1:  # ONNX's window [c - (size-1)//2, c + ceil((size-1)/2)] is torch's for odd sizes
        return g.node("LRN", [xn], name=path, size=int(size), alpha=float(alpha), beta=float(beta), bias=float(k))
    # even size: torch's window is [c - size//2, c + (size-1)//2]; average x^2 over it with a 3-D pool
    sq = g.node("Mul", [xn, xn], name=path)
    sq5 = g.node("Unsqueeze", [sq, g.ints([1], "axes")], name=path)
    avg = g.node(
        "AveragePool",
        [sq5],
        name=path,
        kernel_shape=[size, 1, 1],
        pads=[size // 2, 0, 0, (size - 1) // 2, 0, 0],
        count_include_pad=1,
    )
    s = g.node("Squeeze", [avg, g.ints([1], "axes")], name=path)
    s = g.node("Add", [g.node("Mul", [s, g.const(alpha)], name=path), g.const(k)], name=path)
    return g.node("Div", [xn, g.node("Pow", [s, g.const(beta)], name=path)], name=path)


def _simple(op, **attrs):
    return lambda g, m, path, xn, x, out: g.node(op, [xn], name=path, **attrs)


def _build_layers():
    from . import nn

    return {
        nn.Conv2d: _conv_layer,
        nn.Linear: _linear_layer,
        nn.BatchNorm2d: _bn_layer,
        nn.ReLU: _simple("Relu"),
        nn.ReLU6: lambda g, m, path, xn, x, out: _relu6(g, path, xn),
        nn.LeakyReLU: lambda g, m, path, xn, x, out: g.node(
            "LeakyRelu", [xn], name=path, alpha=float(m.negative_slope)
        ),
        nn.Sigmoid: _simple("Sigmoid"),
        nn.Tanh: _simple("Tanh"),
        nn.SiLU: lambda g, m, path, xn, x, out: _silu(g, path, xn),
        nn.Hardswish: _simple("HardSwish"),
        nn.Hardsigmoid: lambda g, m, path, xn, x, out: _hardsigmoid(g, path, xn),
        nn.GELU: lambda g, m, path, xn, x, out: _gelu(g, path, xn, m.approximate),
        nn.PReLU: lambda g, m, path, xn, x, out: _prelu(
            g, path, xn, x, g.array(m.weight.data, f"{path}.weight"), m.weight.size
        ),
        nn.Softmax: lambda g, m, path, xn, x, out: g.node("Softmax", [xn], name=path, axis=int(m.dim)),
        nn.LogSoftmax: lambda g, m, path, xn, x, out: g.node("LogSoftmax", [xn], name=path, axis=int(m.dim)),
        nn.MaxPool2d: _maxpool_layer,
        nn.AvgPool2d: _avgpool_layer,
        nn.AdaptiveAvgPool2d: _adaptive_layer,
        nn.Flatten: _flatten_layer,
        nn.LocalResponseNorm: lambda g, m, path, xn, x, out: _lrn(g, path, xn, x, m.size, m.alpha, m.beta, m.k),
        nn.Identity: _PASS,
        nn.Dropout: _PASS,
    }


_LAYERS: dict[type, object] = {}


# ------------------------------------------------------------- translations of autograd operations
def _binary(op):
    def fn(g, ctx, path, args, out):
        return g.node(op, args[:2], name=path)

    return fn


def _unary(op, **attrs):
    def fn(g, ctx, path, args, out):
        return g.node(op, args[:1], name=path, **attrs)

    return fn


def _reduce(op, ctx, g, path, xn, axes, keepdims):
    if op == "ReduceSum" or g.opset >= 18:
        return g.node(op, [xn, g.ints(list(axes), "axes")], name=path, keepdims=int(keepdims))
    return g.node(op, [xn], name=path, axes=list(axes), keepdims=int(keepdims))


def _op_conv(g, ctx, path, args, out):
    from .functional.conv import _prepare

    w = ctx.parents[1]
    stride, padding, dilation, groups, relu = ctx.parents[3:8]
    wshape = np.shape(w.data if isinstance(w, Tensor) else w)
    stride, pads, dilation, groups = _prepare("conv2d", stride, padding, dilation, groups, wshape)
    t, b, l, r = pads
    inputs = args[:2] + ([args[2]] if ctx.parents[2] is not None else [])
    y = g.node(
        "Conv",
        inputs,
        name=path,
        kernel_shape=list(wshape[2:]),
        strides=list(stride),
        dilations=list(dilation),
        pads=[t, l, b, r],
        group=int(groups),
    )
    return g.node("Relu", [y], name=path) if relu else y


def _op_maxpool(g, ctx, path, args, out):
    k, s, p, d, ceil = ctx.args
    return g.node(
        "MaxPool",
        args[:1],
        name=path,
        kernel_shape=list(k),
        strides=list(s),
        pads=[p[0], p[1]] * 2,
        dilations=list(d),
        ceil_mode=int(ceil),
    )


def _op_avgpool(g, ctx, path, args, out):
    (_, _, h, w), (hp, wp), k, s, p, (oh, ow), div, unbatched = ctx.plan
    if unbatched:
        raise UnsupportedExportError("avg_pool2d on an unbatched (3-D) input")
    padded = g.node("Pad", [args[0], g.ints([0, 0, p[0], p[1], 0, 0, hp - h - p[0], wp - w - p[1]], "pads")], name=path)
    avg = g.node("AveragePool", [padded], name=path, kernel_shape=list(k), strides=list(s))
    factor = (k[0] * k[1]) / np.broadcast_to(np.asarray(div, np.float64), (oh, ow))
    return g.node("Mul", [avg, g.const(factor, "avgpool_divisor")], name=path)


def _op_batchnorm(g, ctx, path, args, out):
    saved = ctx.saved
    if saved[0] != "eval":
        raise UnsupportedExportError("batch_norm in training mode (batch statistics)")
    _, _, _, scale, rm = saved
    shift = -rm.astype(np.float64) * scale
    if ctx.parents[2] is not None:
        b = ctx.parents[2]
        shift = shift + np.asarray(b.data if isinstance(b, Tensor) else b, np.float64)
    shp = [-1] + [1] * (out.ndim - 2)
    y = g.node("Mul", [args[0], g.const(np.asarray(scale).reshape(shp), "bn_scale")], name=path)
    return g.node("Add", [y, g.const(shift.reshape(shp), "bn_shift")], name=path)


def _op_reshape(g, ctx, path, args, out):
    x = ctx.parents[0]
    return _reshape_to(g, path, args[0], x, out.shape)


def _op_permute(g, ctx, path, args, out):
    perm = [int(v) for v in np.argsort(ctx.inv)]
    if g.dynamic_batch and perm and perm[0] != 0:
        raise UnsupportedExportError(f"a permute {perm} moves the batch dimension; pass dynamic_batch=False")
    return g.node("Transpose", args[:1], name=path, perm=perm)


def _op_sum(g, ctx, path, args, out):
    return _reduce("ReduceSum", ctx, g, path, args[0], ctx.axes, ctx.keepdims)


def _op_mean(g, ctx, path, args, out):
    return _reduce("ReduceMean", ctx, g, path, args[0], ctx.axes, ctx.keepdims)


def _op_max(g, ctx, path, args, out):
    a, red = ctx.saved_tensors
    is_max = np.array_equal(red, np.max(a, axis=ctx.axes, keepdims=True), equal_nan=True)
    return _reduce("ReduceMax" if is_max else "ReduceMin", ctx, g, path, args[0], ctx.axes, ctx.keepdims)


def _op_cat(g, ctx, path, args, out):
    return g.node("Concat", args, name=path, axis=int(ctx.dim) % out.ndim)


def _op_linear(g, ctx, path, args, out):
    x = ctx.parents[0]
    w = ctx.parents[1]
    return _linear(g, path, args[0], x, args[1], args[2] if ctx.parents[2] is not None else None, np.shape(w))


def _op_adaptive(g, ctx, path, args, out):
    x = ctx.parents[0]
    return _adaptive(g, path, f"adaptive_avg_pool2d in {path or 'the model'}", args[0], x, out)


def _op_pad(g, ctx, path, args, out):
    pairs = ctx.pairs
    if any(b < 0 or a < 0 for b, a in pairs):
        raise UnsupportedExportError("pad with negative amounts (cropping)")
    value = 0.0
    for ax, (b, a) in enumerate(pairs):  # the fill value, read back from the padded output
        if b or a:
            idx = [0] * out.ndim
            idx[ax] = 0 if b else out.shape[ax] - 1
            value = float(out.data[tuple(idx)])
            break
    pads = [b for b, _ in pairs] + [a for _, a in pairs]
    return g.node("Pad", [args[0], g.ints(pads, "pads"), g.const(value, "pad_value")], name=path)


def _op_clip(g, ctx, path, args, out):
    lo = g.const(ctx.lo, "clip_min") if ctx.lo is not None else ""
    hi = g.const(ctx.hi, "clip_max") if ctx.hi is not None else ""
    return g.node("Clip", [args[0], lo, hi], name=path)


def _op_cast(g, ctx, path, args, out):
    from onnx import helper

    return g.node("Cast", args[:1], name=path, to=helper.np_dtype_to_tensor_dtype(out.data.dtype))


def _op_unary_kw(kind):
    def fn(g, ctx, path, args, out):
        xn = args[0]
        if kind == "relu6":
            return _relu6(g, path, xn)
        if kind == "hardsigmoid":
            return _hardsigmoid(g, path, xn)
        if kind == "hardswish":
            return g.node("HardSwish", [xn], name=path)
        if kind == "silu":
            return _silu(g, path, xn)
        return _gelu(g, path, xn, ctx.kw.get("approximate", "none"))

    return fn


def _op_prelu(g, ctx, path, args, out):
    x, w = ctx.parents
    return _prelu(g, path, args[0], x, args[1], int(np.size(w.data if isinstance(w, Tensor) else w)))


def _op_lrn(g, ctx, path, args, out):
    from .functional.normalization import _channel_window_sum

    x, s, _ = ctx.saved
    size, alpha, beta = ctx.args
    # k is not recorded: s = alpha/size * window_sum(x^2) + k elementwise, so read it back
    sums = _channel_window_sum(x.astype(np.float64) ** 2, size // 2, (size - 1) // 2)
    k = float(np.median(s - alpha / size * sums))
    return _lrn(g, path, args[0], x, size, alpha, beta, k)


_OPS = {
    _ops.Add: _binary("Add"),
    _ops.Sub: _binary("Sub"),
    _ops.Mul: _binary("Mul"),
    _ops.Div: _binary("Div"),
    _ops.Pow: _binary("Pow"),
    _ops.MatMul: _binary("MatMul"),
    _ops.Neg: _unary("Neg"),
    _ops.Exp: _unary("Exp"),
    _ops.Log: _unary("Log"),
    _ops.Sqrt: _unary("Sqrt"),
    _ops.Tanh: _unary("Tanh"),
    _ops.Sigmoid: _unary("Sigmoid"),
    _ops.Abs: _unary("Abs"),
    _ops.ReLU: _unary("Relu"),
    _ops.Clone: _unary("Identity"),
    _ops.LeakyReLU: lambda g, ctx, path, args, out: g.node("LeakyRelu", args[:1], name=path, alpha=float(ctx.slope)),
    _ops.Softmax: lambda g, ctx, path, args, out: g.node("Softmax", args[:1], name=path, axis=int(ctx.dim)),
    _ops.LogSoftmax: lambda g, ctx, path, args, out: g.node("LogSoftmax", args[:1], name=path, axis=int(ctx.dim)),
    _ops.Clip: _op_clip,
    _ops.Cast: _op_cast,
    _ops.Sum: _op_sum,
    _ops.Mean: _op_mean,
    _ops.Max: _op_max,
    _ops.Reshape: _op_reshape,
    _ops.Permute: _op_permute,
    _ops.Cat: _op_cat,
    _ops.Linear: _op_linear,
    _ops.Conv2d: _op_conv,
    _ops.MaxPool2d: _op_maxpool,
    _ops.AvgPool2d: _op_avgpool,
    _ops.BatchNorm: _op_batchnorm,
    _ops.AdaptiveAvgPool2d: _op_adaptive,
    _ops.Pad: _op_pad,
    _ops.ReLU6: _op_unary_kw("relu6"),
    _ops.Hardsigmoid: _op_unary_kw("hardsigmoid"),
    _ops.Hardswish: _op_unary_kw("hardswish"),
    _ops.SiLU: _op_unary_kw("silu"),
    _ops.GELU: _op_unary_kw("gelu"),
    _ops.PReLU: _op_prelu,
    _ops.LocalResponseNorm: _op_lrn,
}
# How many leading entries of ctx.parents are data inputs (the rest are attributes).
_N_INPUTS = {
    _ops.Conv2d: 3,
    _ops.Linear: 3,
    _ops.BatchNorm: 1,
    _ops.MaxPool2d: 1,
    _ops.AvgPool2d: 1,
    _ops.Cast: 1,
    _ops.Pad: 1,
    _ops.LocalResponseNorm: 1,
    _ops.AdaptiveAvgPool2d: 1,
}


def _convert(g, model, outputs, out_names, param_names, buffer_names):
    """Emit the nodes computing ``outputs`` (traced Tensors), in topological order."""
    preset = {}
    for t, nm in zip(outputs, out_names):
        preset.setdefault(id(t), nm)

    def leaf_name(t):
        if id(t) in param_names:
            return g.array(t.data, param_names[id(t)])
        return g.array(t.data, "const")  # a constant Tensor made in forward (not from the input)

    def value_name(a, like_dtype):
        """Name of a parent that is not a traced Tensor: a buffer, an array or a number -> constant."""
        if a is None:
            return ""
        if id(a) in buffer_names:
            return g.array(a, buffer_names[id(a)])
        arr = np.asarray(a)
        if arr.dtype.kind in "biuf":
            arr = arr.astype(like_dtype if arr.dtype.kind == "f" or like_dtype is not None else arr.dtype)
        return g.const(arr, "const", arr.dtype)

    order, seen = [], set()
    stack = [(t, False) for t in reversed(outputs)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for p in reversed(_data_parents(t._ctx)):
                if isinstance(p, Tensor) and id(p) not in seen:
                    stack.append((p, False))
    for t in order:
        if id(t) in g.names:
            continue
        ctx = t._ctx
        if ctx is None:
            g.names[id(t)] = leaf_name(t)
            g.keep.append(t)
            continue
        path = getattr(ctx, "_onnx_path", None) or ""
        target = preset.get(id(t))
        if any(isinstance(p, Tensor) and id(p) in g.batched for p in _data_parents(ctx)):
            g.batched.add(id(t))
        if isinstance(ctx, _ModuleCall):
            x = ctx.parents[0]
            before = len(g.nodes)
            name = _layer_handler(ctx.module)(g, ctx.module, ctx.path, g.names[id(x)], x, t)
        else:
            fn = _OPS.get(type(ctx))
            if fn is None:
                owner = dict(model.named_modules()).get(path, model)
                raise UnsupportedExportError(
                    f"cnnfast.onnx.export: {_module_label(path, owner)} uses an operation with no ONNX translation "
                    f"({type(ctx).__name__}); supported: {', '.join(sorted(c.__name__ for c in _OPS))} and the "
                    f"cnnfast.nn layers {', '.join(sorted(c.__name__ for c in _LAYERS))}"
                )
            parents = _data_parents(ctx)
            like = t.data.dtype if t.data.dtype.kind == "f" else None
            args = [g.names[id(p)] if isinstance(p, Tensor) else value_name(p, like) for p in parents]
            before = len(g.nodes)
            try:
                name = fn(g, ctx, path, args, t)
            except UnsupportedExportError as e:
                if str(e).startswith("cnnfast.onnx.export"):
                    raise
                owner = dict(model.named_modules()).get(path, model)
                raise UnsupportedExportError(f"cnnfast.onnx.export: {_module_label(path, owner)}: {e}") from None
        if (
            target is not None
            and len(g.nodes) > before
            and name == g.nodes[-1].output[0]
            and name not in preset.values()
        ):
            # give the graph output its public name
            g.used.discard(name)
            g.nodes[-1].output[0] = target
            g.used.add(target)
            name = target
        g.names[id(t)] = name
        g.keep.append(t)
    return [g.names[id(t)] for t in outputs]


def _data_parents(ctx):
    n = _N_INPUTS.get(type(ctx))
    parents = ctx.parents
    return list(parents[:n]) if n is not None else list(parents)


# ------------------------------------------------------------------------------------------ export
def export(
    model: Module,
    path: _Dest,
    example_input: Any,
    *,
    opset: int = 17,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
) -> None:
    """Write ``model`` (a ``cnnfast.nn.Module``) to the ONNX file ``path``, traced on ``example_input``.

    ``example_input`` is an NCHW ndarray (or Tensor), or a tuple of them for several inputs; the
    model runs once on it, in eval mode (its training flags are restored afterwards). ``opset``:
    the ONNX opset (14 or newer). ``input_names`` / ``output_names``: the graph's tensor names
    (default ``input``/``output``, numbered when there are several). ``dynamic_batch``: dim 0 of
    the inputs and outputs is the symbolic ``batch``, so the file runs at any batch size.
    ``path`` may also be a binary file object. Raises :class:`UnsupportedExportError` (a
    ValueError) naming the module when part of the model has no ONNX translation.
    """
    onnx, helper, numpy_helper = _import_onnx()
    from .nn.module import Module

    if not isinstance(model, Module):
        raise TypeError(f"cnnfast.onnx.export: model must be a cnnfast.nn.Module, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise TypeError(f"cnnfast.onnx.export: opset must be an int, got {opset!r}")
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= max_opset:
        raise ValueError(
            f"cnnfast.onnx.export: opset must be between {MIN_OPSET} and {max_opset} (the installed "
            f"onnx {onnx.__version__}'s newest), got {opset}"
        )
    if not _LAYERS:
        _LAYERS.update(_build_layers())
    examples = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    arrays = []
    for i, a in enumerate(examples):
        a = np.asarray(a.data if isinstance(a, Tensor) else a)
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"cnnfast.onnx.export: example input {i} must be float32 or float64, got {a.dtype}")
        if a.ndim == 0:
            raise ValueError(f"cnnfast.onnx.export: example input {i} must have a batch dimension, got a scalar")
        arrays.append(np.ascontiguousarray(a))
    dtype = arrays[0].dtype
    in_names = (
        list(input_names)
        if input_names is not None
        else (["input"] if len(arrays) == 1 else [f"input_{i}" for i in range(len(arrays))])
    )
    if len(in_names) != len(arrays):
        raise ValueError(f"cnnfast.onnx.export: {len(in_names)} input_names for {len(arrays)} example inputs")

    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        inputs = [Tensor(a, requires_grad=True) for a in arrays]
        with enable_grad(), _Tracer(model):
            result = model(*inputs)
    finally:
        for m, t in flags:
            m.training = t
    multi = isinstance(result, (tuple, list))
    outs = list(result) if multi else [result]
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise UnsupportedExportError(
            f"cnnfast.onnx.export: the model returned {type(result).__name__}; a Tensor or "
            f"a tuple of Tensors is expected"
        )
    out_names = (
        list(output_names)
        if output_names is not None
        else (["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))])
    )
    if len(out_names) != len(outs):
        raise ValueError(f"cnnfast.onnx.export: {len(out_names)} output_names for {len(outs)} outputs")
    if len(set(in_names + out_names)) != len(in_names) + len(out_names):
        raise ValueError(
            f"cnnfast.onnx.export: input and output names must be distinct, got {in_names} and {out_names}"
        )

    g = _Graph(helper, numpy_helper, int(opset), dtype, bool(dynamic_batch), arrays[0].shape[0])
    for t, nm in zip(inputs, in_names):
        g.names[id(t)] = nm
        g.used.add(nm)
        g.batched.add(id(t))
    g.used.update(out_names)
    param_names = {id(p): n for n, p in model.named_parameters()}
    buffer_names = {id(b): n for n, b in model.named_buffers() if b is not None}
    names = _convert(g, model, outs, out_names, param_names, buffer_names)
    for nm, target in zip(names, out_names):
        if nm != target:  # an input, a constant or a shared tensor returned: copy under the public name
            g.nodes.append(helper.make_node("Identity", [nm], [target], name=g.unique(f"{target}:Identity")))

    elem = helper.np_dtype_to_tensor_dtype(dtype)

    def dims(shape: Sequence[int]) -> list[int | str]:
        d: list[int | str] = list(shape)
        if dynamic_batch and d and d[0] == g.batch:
            d[0] = "batch"
        return d

    graph = helper.make_graph(
        g.nodes,
        type(model).__name__,
        [helper.make_tensor_value_info(n, elem, dims(a.shape)) for n, a in zip(in_names, arrays)],
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(o.data.dtype), dims(o.shape))
            for n, o in zip(out_names, outs)
        ],
        g.inits,
    )
    opsets = [helper.make_opsetid("", int(opset))]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="cnnfast", producer_version=_version())
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    _write_atomic(path, data)


def _version() -> str:
    from . import __version__

    return __version__


def _write_atomic(path: _Dest, data: bytes) -> None:
    """Write bytes to ``path`` via a temporary file in the same folder and a rename, so that ``path``
    is either untouched or complete; or to a binary file object."""
    if hasattr(path, "write"):
        path.write(data)
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:  # mode 0o666 less the umask, as open() would give the file itself
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
