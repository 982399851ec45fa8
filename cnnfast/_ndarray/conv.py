"""The array math of cnnfast.functional.conv: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core
from .._utils import _as_float, _pair

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, IntPair, Padding, Shape


def _conv_pads(
    op: str, padding: Padding, weight_shape: Sequence[int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Normalise ``padding`` to (top, bottom, left, right).

    ``'valid'`` is no padding. ``'same'`` (stride 1 only, as in PyTorch) keeps H and W; when the
    total padding ``dilation*(k-1)`` is odd, the extra row/column goes at the bottom/right.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided convolutions (got stride={stride})"
                )
            if len(weight_shape) != 4:
                raise ValueError(f"{op}: weight should have 4 dimensions, got weight of size {tuple(weight_shape)}")
            th = dilation[0] * (weight_shape[2] - 1)
            tw = dilation[1] * (weight_shape[3] - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return _four_pads(op, padding)
    ph, pw = _pair(padding, "padding", op)
    return (ph, ph, pw, pw)


def _four_pads(op: str, padding: Any) -> Any:  # (top, bottom, left, right) ints; Any: callers index it freely
    """A 4-tuple ``(top, bottom, left, right)`` of non-negative ints (asymmetric, 'SAME_UPPER'-style)."""
    if any(isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)) or p < 0 for p in padding):
        raise ValueError(
            f"{op}: padding as a 4-tuple must be non-negative ints (top, bottom, left, right), "
            f"got {tuple(padding)!r}"
        )
    return tuple(int(p) for p in padding)


def _prepare(
    op: str, stride: IntPair, padding: Padding, dilation: IntPair, groups: int, weight_shape: Sequence[int]
) -> tuple[tuple[int, int], tuple[int, int, int, int], tuple[int, int], int]:
    stride = _pair(stride, "stride", op)
    dilation = _pair(dilation, "dilation", op)
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    pads = _conv_pads(op, padding, weight_shape, stride, dilation)
    return stride, pads, dilation, int(groups)


def _batch(op: str, x: Array, name: str = "input") -> tuple[Array, bool]:
    """Accept a single image (C, H, W): returns (4-D array, unbatched flag)."""
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(
            f"{op}: Expected 3D (unbatched) or 4D (batched) {name} to {op}, but got {name} of size {x.shape}"
        )
    return x, False


def _pad_extra(x: Array, pads: Sequence[int]) -> tuple[Array, tuple[int, int]]:
    """Zero-pad x by the asymmetric part of pads (top, bottom, left, right); returns (x, symmetric
    pads) for the kernels, which pad symmetrically."""
    t, b, l, r = pads
    st, sl = min(t, b), min(l, r)
    if (t, b, l, r) != (st, st, sl, sl):
        x = np.pad(x, ((0, 0), (0, 0), (t - st, b - st), (l - sl, r - sl)))
    return x, (st, sl)


def conv2d_output_shape(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Shape:
    """Output shape of :func:`conv2d` for the given shapes, validated exactly as conv2d validates.

    Output size per dimension is ``floor((H + 2p - d(k-1) - 1)/s) + 1``.
    """
    op = "conv2d"
    stride, pads, dilation, groups = _prepare(op, stride, padding, dilation, groups, tuple(weight_shape))
    shape = tuple(int(s) for s in input_shape)
    unbatched = len(shape) == 3
    if unbatched:
        shape = (1,) + shape
    if len(shape) != 4:
        raise ValueError(
            f"{op}: Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size {shape}"
        )
    n, c, h, w = shape
    t, b, l, r = pads
    st, sl = min(t, b), min(l, r)
    padded = [n, c, h + t + b - 2 * st, w + l + r - 2 * sl]
    out = tuple(
        _core.conv2d_output_size(padded, [int(v) for v in weight_shape], -1, stride, (st, sl), dilation, groups)
    )
    return out[1:] if unbatched else out


def _bwd_input(
    op: str,
    gy: Array,
    input_shape: Sequence[int],
    w: Array,
    stride: tuple[int, int],
    pads: Sequence[int],
    dilation: tuple[int, int],
    groups: int,
) -> Array:
    shape = tuple(int(v) for v in input_shape)
    unbatched = len(shape) == 3
    if unbatched:
        shape = (1,) + shape
        if gy.ndim == 3:
            gy = gy[None]
    if len(shape) != 4:
        raise ValueError(
            f"{op}: Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size {shape}"
        )
    t, b, l, r = pads
    st, sl = min(t, b), min(l, r)
    padded = [shape[0], shape[1], shape[2] + t + b - 2 * st, shape[3] + l + r - 2 * sl]
    gi = _core.conv2d_backward_input(padded, gy, w, stride, (st, sl), dilation, groups)
    if tuple(gi.shape) != shape:  # crop the asymmetric padding back off
        gi = np.ascontiguousarray(gi[:, :, t - st : t - st + shape[2], l - sl : l - sl + shape[3]])
    return gi[0] if unbatched else gi


def _bwd_weight(
    op: str,
    x: Array,
    weight_shape: Sequence[int],
    gy: Array,
    stride: tuple[int, int],
    pads: Sequence[int],
    dilation: tuple[int, int],
    groups: int,
    bias: bool,
) -> tuple[Array, Array | None]:
    x, unbatched = _batch(op, x)
    if unbatched and gy.ndim == 3:
        gy = gy[None]
    x, pad = _pad_extra(x, pads)
    return _core.conv2d_backward_weight(x, [int(v) for v in weight_shape], gy, stride, pad, dilation, groups, bias)


def conv2d_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    weight: ArrayLike,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[Array | None, Array | None, Array | None]:
    """Gradients of :func:`conv2d`: returns ``(grad_input, grad_weight, grad_bias)``.

    ``output_mask`` selects which of the three are computed (the others are None), as in
    ``torch.ops.aten.convolution_backward``. Works on a batch or a single CHW image.
    """
    op = "conv2d_backward"
    gy, x, w = _as_float(op, grad_output=grad_output, input=input, weight=weight)
    stride, pads, dilation, groups = _prepare(op, stride, padding, dilation, groups, w.shape)
    gi = gw = gb = None
    if output_mask[0]:
        gi = _bwd_input(op, gy, x.shape, w, stride, pads, dilation, groups)
    if output_mask[1] or output_mask[2]:
        gw, gb = _bwd_weight(op, x, w.shape, gy, stride, pads, dilation, groups, bool(output_mask[2]))
        if not output_mask[1]:
            gw = None
    return gi, gw, gb


def conv2d_input(
    input_size: Sequence[int],
    weight: ArrayLike,
    grad_output: ArrayLike,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Array:
    """Gradient of conv2d with respect to its input (``torch.nn.grad.conv2d_input``)."""
    op = "conv2d_input"
    gy, w = _as_float(op, grad_output=grad_output, weight=weight)
    stride, pads, dilation, groups = _prepare(op, stride, padding, dilation, groups, w.shape)
    return _bwd_input(op, gy, input_size, w, stride, pads, dilation, groups)


def conv2d_weight(
    input: ArrayLike,
    weight_size: Sequence[int],
    grad_output: ArrayLike,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Array:
    """Gradient of conv2d with respect to its weight (``torch.nn.grad.conv2d_weight``)."""
    op = "conv2d_weight"
    gy, x = _as_float(op, grad_output=grad_output, input=input)
    weight_size = tuple(int(v) for v in weight_size)
    stride, pads, dilation, groups = _prepare(op, stride, padding, dilation, groups, weight_size)
    return _bwd_weight(op, x, weight_size, gy, stride, pads, dilation, groups, False)[0]


def _conv2d_array(
    op: str,
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    groups: int,
    relu: bool,
) -> Array:
    """conv2d (+ fused relu) on arrays (see cnnfast.functional.conv2d)."""
    x, w, b = _as_float(op, input=input, weight=weight, bias=bias)
    stride, pads, dilation, groups = _prepare(op, stride, padding, dilation, groups, w.shape)
    x, unbatched = _batch(op, x)
    x, pad = _pad_extra(x, pads)
    y = _core.conv2d_forward(x, w, b, stride, pad, dilation, groups, relu)
    return y[0] if unbatched else y
