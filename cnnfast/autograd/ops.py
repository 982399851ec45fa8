"""The differentiable operations: one ``Function`` (forward + backward on ndarrays) per op.

The public entry points are the Tensor methods and ``cnnfast.functional``; the functional ops
call the ``conv2d`` / ``max_pool2d`` / ``relu`` / ... wrappers at the bottom of this file when
given a Tensor. The array math, shared with the ndarray path, lives one layer down in
``cnnfast._ndarray`` (this module never imports ``cnnfast.functional``, which imports it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _ndarray as _nd
from .._gemm import mm as _mm
from .._gemm import mm_tn as _mm_tn
from .._ndarray import loss as _loss
from .._ndarray import misc as _misc
from .function import Function
from . import tensor as _tensor
from .tensor import Tensor

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, IntPair, Shape

# ---------------------------------------------------------------------------- helpers


def _unbroadcast(g: Any, shape: Shape) -> Array:
    """Sum ``g`` over the axes that broadcasting added or stretched, to get back ``shape``."""
    if g.shape == shape:
        return g if type(g) is np.ndarray else np.asarray(g)
    nd = g.ndim - len(shape)
    if nd:
        g = g.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return np.asarray(g)


def _shape(x: Any) -> Shape:
    return x.shape if isinstance(x, np.ndarray) else np.shape(x)


def _as_input(x: Any) -> Tensor | Array | None:
    """Tensor or array-like -> something Function.apply accepts (array-likes become arrays)."""
    if isinstance(x, (Tensor, np.ndarray)) or x is None:
        return x
    return np.asarray(x)


# ---------------------------------------------------------------------------- arithmetic


class Add(Function):
    @staticmethod
    def forward(ctx: Any, a: ArrayLike, b: ArrayLike) -> Array:
        ctx.shapes = (_shape(a), _shape(b))
        return np.add(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (_unbroadcast(g, sa) if na else None), (_unbroadcast(g, sb) if nb else None)


class Sub(Function):
    @staticmethod
    def forward(ctx: Any, a: ArrayLike, b: ArrayLike) -> Array:
        ctx.shapes = (_shape(a), _shape(b))
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (_unbroadcast(g, sa) if na else None), (_unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    @staticmethod
    def forward(ctx: Any, a: ArrayLike, b: ArrayLike) -> Array:
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (_unbroadcast(g * b, _shape(a)) if na else None), (_unbroadcast(g * a, _shape(b)) if nb else None)


class Div(Function):
    @staticmethod
    def forward(ctx: Any, a: ArrayLike, b: ArrayLike) -> Array:
        ctx.save_for_backward(a, b)
        return np.true_divide(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = _unbroadcast(g / b, _shape(a)) if na else None
        gb = _unbroadcast(-g * a / (b * b), _shape(b)) if nb else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx: Any, a: ArrayLike, b: ArrayLike) -> Array:
        out = np.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            ga = _unbroadcast(g * b * np.power(a, b - 1), _shape(a))
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                # d(a^b)/db = a^b log(a); where a == 0 PyTorch uses 0 (the limit for b > 0)
                la = np.where(np.asarray(a) == 0, 0, np.log(np.where(np.asarray(a) == 0, 1, a)))
            gb = _unbroadcast(g * out * la, _shape(b))
        return ga, gb


class MatMul(Function):
    @staticmethod
    def forward(ctx: Any, a: ArrayLike, b: ArrayLike) -> Array:
        a = np.asarray(a)
        b = np.asarray(b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})"
            )
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        a2 = a[None] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if na:
            ga = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if nb:
            gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        return np.negative(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return -g


class Clone(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        return np.array(a, copy=True)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g


class Cast(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, dtype: Any) -> Array:
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g.astype(ctx.dtype)


# ---------------------------------------------------------------------------- elementwise


class Exp(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g * ctx.saved_tensors[0]


class Log(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g / ctx.saved_tensors[0]


class Sqrt(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g / (2 * ctx.saved_tensors[0])


class Tanh(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        out = ctx.saved_tensors[0]
        return g * (1 - out * out)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        out = _misc._sigmoid(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        out = ctx.saved_tensors[0]
        return g * out * (1 - out)


class Abs(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g * np.sign(ctx.saved_tensors[0])


class Clip(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, lo: Any = None, hi: Any = None) -> Array:
        ctx.save_for_backward(a)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(a, lo, hi)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        a = ctx.saved_tensors[0]
        mask = np.ones(a.shape, dtype=bool)
        if ctx.lo is not None:
            mask &= a >= ctx.lo
        if ctx.hi is not None:
            mask &= a <= ctx.hi
        return g * mask


class ReLU(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        out = _nd.relu_array(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return _nd.relu_backward(g, ctx.saved_tensors[0])


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, negative_slope: float = 0.01) -> Array:
        ctx.save_for_backward(a)
        ctx.slope = negative_slope
        return _misc._leaky_relu(a, negative_slope)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        a = ctx.saved_tensors[0]
        return np.where(a > 0, g, g * np.asarray(ctx.slope, dtype=g.dtype))


class Softmax(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, dim: Any) -> Array:
        out = _misc._softmax(a, dim)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        out = ctx.saved_tensors[0]
        return out * (g - (g * out).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, dim: Any) -> Array:
        out = _misc._log_softmax(a, dim)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        out = ctx.saved_tensors[0]
        return g - np.exp(out) * g.sum(axis=ctx.dim, keepdims=True)


class Dropout(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, mask: Any) -> Array:
        ctx.mask = mask
        return a * mask

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g * ctx.mask, None


# ---------------------------------------------------------------------------- reductions


def _norm_axes(axis: int | tuple[int, ...] | None, ndim: int, op: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise IndexError(f"{op}: dim {a} out of range for a tensor of {ndim} dimensions")
        out.append(a % max(ndim, 1))
    return tuple(out)


def _expand_back(g: Array, in_shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Array:
    """Broadcast a reduced gradient back to the input shape (a read-only view)."""
    if not keepdims:
        g = np.expand_dims(g, axes) if axes else g
    return np.broadcast_to(g, in_shape)


class Sum(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, axis: Any = None, keepdims: bool = False) -> Array:
        a = np.asarray(a)
        ctx.shape = a.shape
        ctx.axes = _norm_axes(axis, a.ndim, "sum") if a.ndim else ()
        ctx.keepdims = keepdims
        return np.asarray(np.sum(a, axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return _expand_back(g, ctx.shape, ctx.axes, ctx.keepdims)


class Mean(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, axis: Any = None, keepdims: bool = False) -> Array:
        a = np.asarray(a)
        ctx.shape = a.shape
        ctx.axes = _norm_axes(axis, a.ndim, "mean") if a.ndim else ()
        ctx.keepdims = keepdims
        out = np.mean(a, axis=ctx.axes, keepdims=keepdims)
        ctx.count = max(a.size // max(out.size, 1), 1) if a.size else 1
        return np.asarray(out)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return _expand_back(g / g.dtype.type(ctx.count), ctx.shape, ctx.axes, ctx.keepdims)


class Max(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, axis: Any = None, keepdims: bool = False, sign: int = 1) -> Array:
        a = np.asarray(a)
        if a.size == 0:
            raise ValueError(f"{'max' if sign > 0 else 'min'}: cannot reduce an empty tensor of shape {a.shape}")
        axes = _norm_axes(axis, a.ndim, "max") if a.ndim else ()
        red = np.max if sign > 0 else np.min
        out = red(a, axis=axes, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return np.asarray(out if keepdims else np.squeeze(out, axis=axes))

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        a, out = ctx.saved_tensors
        mask = a == out
        count = mask.sum(axis=ctx.axes, keepdims=True)
        if not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes) if ctx.axes else g
        return mask * (g / count).astype(g.dtype, copy=False)


# ---------------------------------------------------------------------------- shape


class Reshape(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, shape: Any) -> Array:
        ctx.shape = np.shape(a)
        try:
            return np.reshape(a, shape)
        except ValueError:
            raise ValueError(
                f"reshape: shape {tuple(shape)} is invalid for a tensor of shape {ctx.shape} "
                f"({int(np.prod(ctx.shape))} elements)"
            ) from None

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return g.reshape(ctx.shape)


class Permute(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, perm: Any) -> Array:
        a = np.asarray(a)
        if len(perm) != a.ndim or sorted(p % max(a.ndim, 1) for p in perm) != list(range(a.ndim)):
            raise ValueError(f"permute: {perm} is not a permutation of the {a.ndim} dimensions of shape {a.shape}")
        ctx.inv = tuple(np.argsort([p % a.ndim for p in perm])) if a.ndim else ()
        return np.transpose(a, perm)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return np.transpose(g, ctx.inv)


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    for i in items:
        if not (i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))) or isinstance(i, bool):
            return False
    return True


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


class GetItem(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, index: Any) -> Array:
        index = _unwrap_index(index)
        ctx.index = index
        ctx.shape = a.shape
        ctx.dtype = a.dtype
        return np.asarray(a[index])

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        gx = np.zeros(ctx.shape, dtype=g.dtype)
        if _is_basic_index(ctx.index):
            gx[ctx.index] = g
        else:  # repeated integer indices must accumulate
            np.add.at(gx, ctx.index, g)
        return gx


# ---------------------------------------------------------------------------- layers


class Linear(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, w: Array, b: Array | None = None) -> Array:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _misc._linear(x, w, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        x, w = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1]) if g.ndim != 2 else g
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        same = g2.dtype == w.dtype == x2.dtype  # then cnnfast's GEMM (see _gemm.py), else NumPy
        gx = gw = gb = None
        if nx:
            gx = (_mm(g2, w) if same else g2 @ w).reshape(x.shape).astype(x.dtype, copy=False)
        if nw:
            if not same:
                gw = (g2.T @ x2).astype(w.dtype, copy=False)
            elif g2.shape[1] < 32 or g2.shape[0] < 32:  # few outputs or rows: no transposed copy (_gemm.py)
                gw = _mm_tn(g2, x2)
            else:
                gw = _mm(np.ascontiguousarray(g2.T), x2)
        if nb:
            gb = g2.sum(axis=0)
        return gx, gw, gb


def _conv2d_grads(
    ctx: Any, g: Array, x: Array, w: Array, nx: bool, nw: bool, nb: bool
) -> tuple[Array | None, Array | None, Array | None]:
    """conv2d's input, weight and bias gradients for ``g`` (ctx.args = stride, padding, dilation,
    groups), each in its input's own dtype (the kernels compute in the promoted one)."""
    stride, padding, dilation, groups = ctx.args
    gx, gw, gb = _nd.conv2d_backward(
        g, x, w, stride, padding, dilation, groups, output_mask=(nx, nw, nb and ctx.has_bias)
    )
    if gx is not None and gx.dtype != x.dtype:
        gx = gx.astype(x.dtype)
    if gw is not None and gw.dtype != w.dtype:
        gw = gw.astype(w.dtype)
    return gx, gw, gb


class Conv2d(Function):
    @staticmethod
    def forward(
        ctx: Any, x: Array, w: Array, b: Array | None, stride: Any, padding: Any, dilation: Any, groups: Any, relu: bool
    ) -> Array:
        out = _nd.conv2d_array("conv2d", x, w, b, stride, padding, dilation, groups, relu)
        ctx.save_for_backward(x, w, out if relu else None)
        ctx.args = (stride, padding, dilation, groups)
        ctx.has_bias = b is not None
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        x, w, out = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad[:3]
        if out is not None:
            g = _nd.relu_backward(g, out)
        return _conv2d_grads(ctx, g, x, w, nx, nw, nb)


class MaxPool2d(Function):
    @staticmethod
    def forward(
        ctx: Any, x: Array, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
    ) -> Array:
        out, idx = _nd.max_pool2d_array("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode, True)
        ctx.indices = idx
        ctx.shape = x.shape
        ctx.dtype = x.dtype
        ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        gx = _nd.max_pool2d_backward(g, tuple(ctx.shape), ctx.indices, *ctx.args)
        return gx if gx.dtype == ctx.dtype else gx.astype(ctx.dtype)


class Conv2dReLUMaxPool2d(Function):
    """``max_pool2d(relu(conv2d(x)))`` as one node (what ``nn.Sequential`` records for a Conv2d,
    ReLU, MaxPool2d run while training). The gradient is exactly that of the three ops: a max-pool
    output y is the relu'd value at its argmax, so relu's mask there is ``y > 0``, applied to the
    pooled gradient (a quarter of the size for 2x2 pools) rather than to the full conv output,
    which is then not kept for backward."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Array,
        w: Array,
        b: Array | None,
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: Any,
        pool_args: tuple[Any, Any, Any, Any, bool],
    ) -> Array:
        out = _nd.conv2d_array("conv2d", x, w, b, stride, padding, dilation, groups, True)
        y, idx = _nd.max_pool2d_array("max_pool2d", out, *pool_args, True)
        ctx.save_for_backward(x, w, y)
        ctx.indices = idx
        ctx.out_shape = out.shape
        ctx.args = (stride, padding, dilation, groups)
        ctx.pool_args = pool_args
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        x, w, y = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad[:3]
        g = _nd.max_pool2d_backward(_nd.relu_backward(g, y), tuple(ctx.out_shape), ctx.indices, *ctx.pool_args)
        return _conv2d_grads(ctx, g, x, w, nx, nw, nb)


class AvgPool2d(Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: Array,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: Any,
    ) -> Array:
        out, plan = _misc._avg_pool2d_forward(
            x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        )
        ctx.plan = plan
        ctx.dtype = np.asarray(x).dtype
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        gx = _misc._avg_pool2d_backward(g, ctx.plan)
        return gx if gx.dtype == ctx.dtype else gx.astype(ctx.dtype)


# ---------------------------------------------------------------------------- losses


class CrossEntropy(Function):
    """Softmax + cross entropy in one node: grad = (softmax * sum(A) - A) * scale."""

    @staticmethod
    def forward(
        ctx: Any, x: Array, target: Any, weight: Any, ignore_index: Any, reduction: str, label_smoothing: Any
    ) -> Array:
        loss, saved = _loss._cross_entropy_forward(x, target, weight, ignore_index, reduction, label_smoothing)
        ctx.saved = saved
        ctx.reduction = reduction
        return loss

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        gx, gt = _loss._cross_entropy_backward(g, ctx.saved, ctx.reduction, ctx.needs_input_grad[1])
        return gx, gt, None


class NLLLoss(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, target: Any, weight: Any, ignore_index: Any, reduction: str) -> Array:
        loss, saved = _loss._nll_forward(x, target, weight, ignore_index, reduction)
        ctx.saved = saved
        ctx.reduction = reduction
        return loss

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return _loss._nll_backward(g, ctx.saved, ctx.reduction), None, None


class MSELoss(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, target: Any, reduction: str) -> Array:
        diff = np.subtract(x, target)
        ctx.save_for_backward(diff)
        ctx.reduction = reduction
        return _loss._reduce(diff * diff, reduction)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        (diff,) = ctx.saved_tensors
        gd = _loss._reduce_backward(g, diff.shape, ctx.reduction) * (2 * diff)
        nx, nt = ctx.needs_input_grad[:2]
        return (gd if nx else None), (-gd if nt else None)


class BCEWithLogits(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, target: Any, weight: Any, pos_weight: Any, reduction: str) -> Array:
        loss, saved = _loss._bce_logits_forward(x, target, weight, pos_weight, reduction)
        ctx.saved = saved
        ctx.reduction = reduction
        return loss

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        gx, gt = _loss._bce_logits_backward(g, ctx.saved, ctx.reduction, ctx.needs_input_grad[1])
        return gx, gt, None, None


# ---------------------------------------------------------------------------- entry points
# Called by cnnfast.functional when an argument is a Tensor.


def conv2d(
    input: Any,
    weight: Any,
    bias: Any,
    stride: IntPair,
    padding: Any,
    dilation: IntPair,
    groups: int,
    relu: bool = False,
) -> Tensor:
    return Conv2d.apply(_as_input(input), _as_input(weight), _as_input(bias), stride, padding, dilation, groups, relu)


def conv2d_relu_max_pool2d(
    input: Any,
    weight: Any,
    bias: Any,
    stride: IntPair,
    padding: Any,
    dilation: IntPair,
    groups: int,
    pool_args: tuple[Any, ...],
) -> Tensor:
    """``max_pool2d(relu(conv2d(...)), *pool_args)`` recorded as one node; ``pool_args`` is
    ``(kernel_size, stride, padding, dilation, ceil_mode)``, already normalised (symmetric padding)."""
    return Conv2dReLUMaxPool2d.apply(
        _as_input(input), _as_input(weight), _as_input(bias), stride, padding, dilation, groups, pool_args
    )


def max_pool2d(
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair,
    padding: Any,
    dilation: IntPair,
    ceil_mode: bool,
    return_indices: bool,
) -> Any:
    res: tuple[Any, Any] = MaxPool2d._apply_ctx((input, kernel_size, stride, padding, dilation, ceil_mode), {})
    out, ctx = res
    return (out, ctx.indices) if return_indices else out


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """relu on a Tensor. ``inplace`` overwrites the data only when nothing is recorded (no_grad or
    no grad needed); while recording it computes out of place, since saved arrays may alias it."""
    if inplace and not (input.requires_grad and _grad_enabled()):
        _nd.relu_array(
            input.data, inplace=True
        ) if input.data.dtype.kind == "f" and input.data.flags.c_contiguous else np.maximum(
            input.data, 0, out=input.data
        )
        return input
    return ReLU.apply(input)


def _grad_enabled() -> bool:
    from .grad_mode import is_grad_enabled

    return is_grad_enabled()


# ---------------------------------------------------------------------------- transfer-learning layers
# (BatchNorm, the modern activations, adaptive pooling, cat, pad, LRN: issue 10). The array math
# is in cnnfast._ndarray.{normalization,pointwise,adaptive,shape}.

from .._ndarray import adaptive as _adaptive  # noqa: E402
from .._ndarray import normalization as _norm  # noqa: E402
from .._ndarray import pointwise as _pw  # noqa: E402
from .._ndarray import shape as _shape_ops  # noqa: E402


def _like(g: Array, dtype: Any) -> Array:
    return g if g.dtype == dtype else g.astype(dtype)


class BatchNorm(Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: Array,
        w: Array | None,
        b: Array | None,
        running_mean: Array | None = None,
        running_var: Array | None = None,
        training: bool = False,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> Array:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        w = None if w is None else np.asarray(w).astype(x.dtype, copy=False)
        b = None if b is None else np.asarray(b).astype(x.dtype, copy=False)
        _norm._bn_check("batch_norm", x, running_mean, running_var, w, b, training)
        out, ctx.saved = _norm._batch_norm_forward(x, running_mean, running_var, w, b, training, momentum, eps)
        ctx.dtypes = (x.dtype, None if w is None else w.dtype, None if b is None else b.dtype)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        gx, gw, gb = _norm._batch_norm_backward(g, ctx.saved, ctx.needs_input_grad)
        dx, dw, db = ctx.dtypes
        return (
            (None if gx is None else _like(gx, dx)),
            (None if gw is None else _like(gw, dw)),
            (None if gb is None else _like(gb, db)),
        )


def _unary_function(name: str, fwd: Callable[..., Array], bwd: Callable[..., Array]) -> type[Function]:
    """An autograd Function for an elementwise op y = fwd(x, **kw), dx = bwd(g, x, **kw)."""

    def forward(ctx: Any, x: Array, **kw: Any) -> Array:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        ctx.save_for_backward(x)
        ctx.kw = kw
        return fwd(x, **kw)

    def backward(ctx: Any, g: Array) -> Any:
        (x,) = ctx.saved_tensors
        return _like(bwd(g, x, **ctx.kw), x.dtype)

    return type(
        name,
        (Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward), "__module__": __name__},
    )


ReLU6 = _unary_function("ReLU6", _pw._relu6, _pw._relu6_backward)
Hardsigmoid = _unary_function("Hardsigmoid", _pw._hardsigmoid, _pw._hardsigmoid_backward)
Hardswish = _unary_function("Hardswish", _pw._hardswish, _pw._hardswish_backward)
SiLU = _unary_function("SiLU", _pw._silu, _pw._silu_backward)
GELU = _unary_function("GELU", _pw._gelu, _pw._gelu_backward)


class PReLU(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, w: Array) -> Array:
        x = np.asarray(x)
        w = np.asarray(w)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        _pw._prelu_weight("prelu", x, w)
        ctx.save_for_backward(x, w)
        return _pw._prelu(x, w)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        x, w = ctx.saved_tensors
        nx, nw = ctx.needs_input_grad
        gx, gw = _pw._prelu_backward(g, x, w, nx, nw)
        return (None if gx is None else _like(gx, x.dtype)), gw


class LocalResponseNorm(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, size: Any, alpha: Any, beta: Any, k: Any) -> Array:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        out, ctx.saved = _norm._lrn_forward(x, size, alpha, beta, k)
        ctx.args = (size, alpha, beta)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return _norm._lrn_backward(g, ctx.saved, *ctx.args)


class AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, output_size: Any) -> Array:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        ctx.shape = x.shape
        return _adaptive._adaptive_forward(x, *output_size)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return _adaptive._adaptive_backward(g, ctx.shape)


class Cat(Function):
    @staticmethod
    def forward(ctx: Any, *arrays: Any, dim: int = 0) -> Array:
        arrs = [np.asarray(a) for a in arrays]
        ctx.dim = dim
        ctx.bounds = np.cumsum([a.shape[dim] for a in arrs])[:-1]
        ctx.dtypes = [a.dtype for a in arrs]
        return np.concatenate(arrs, axis=dim)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        parts = np.split(g, ctx.bounds, axis=ctx.dim)
        return tuple(
            _like(np.ascontiguousarray(p), dt) if need else None
            for p, dt, need in zip(parts, ctx.dtypes, ctx.needs_input_grad)
        )


class Pad(Function):
    @staticmethod
    def forward(ctx: Any, x: Array, pairs: Any, value: int = 0) -> Array:
        ctx.pairs = pairs
        return _shape_ops._pad_forward(np.asarray(x), pairs, value)

    @staticmethod
    def backward(ctx: Any, g: Array) -> Any:
        return _shape_ops._pad_backward(g, ctx.pairs)


_tensor._bind_ops(sys.modules[__name__])
