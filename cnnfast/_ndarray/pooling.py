"""The array math of cnnfast.functional.pooling: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core
from .._utils import _as_float, _pair

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, IntPair, Padding, Shape


def _pool_args(
    op: str, kernel_size: IntPair, stride: IntPair | None, padding: Padding, dilation: IntPair
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel_size = _pair(kernel_size, "kernel_size", op)
    # stride=None (or an empty list, as torch allows) means stride = kernel_size
    stride = (
        kernel_size
        if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
        else _pair(stride, "stride", op)
    )
    return kernel_size, stride, _pair(padding, "padding", op), _pair(dilation, "dilation", op)


def _batch(op: str, x: Array) -> tuple[Array, bool]:
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {x.shape}")
    return x, False


def max_pool2d_backward(
    grad_output: ArrayLike,
    input: ArrayLike | Shape,
    indices: ArrayLike,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
) -> Array:
    """Gradient of :func:`max_pool2d`: scatters ``grad_output`` to ``indices`` (from the forward).

    ``input`` is the forward input or just its shape (a tuple). Returns an array of that shape.
    """
    op = "max_pool2d_backward"
    k, s, p, d = _pool_args(op, kernel_size, stride, padding, dilation)
    if isinstance(input, tuple):
        shape = tuple(int(v) for v in input)
        (gy,) = _as_float(op, grad_output=grad_output)
    else:
        gy, x = _as_float(op, grad_output=grad_output, input=input)
        shape = x.shape
    idx = np.asarray(indices)
    unbatched = len(shape) == 3
    if unbatched:
        shape = (1,) + shape
        gy = gy[None] if gy.ndim == 3 else gy
        idx = idx[None] if idx.ndim == 3 else idx
    if len(shape) != 4:
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {shape}")
    gx = _core.max_pool2d_backward(gy, list(shape), idx, k, s, p, d, bool(ceil_mode))
    return gx[0] if unbatched else gx


def max_pool2d_output_shape(
    input_shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
) -> Shape:
    """Output shape of :func:`max_pool2d`, validated exactly as max_pool2d validates."""
    op = "max_pool2d"
    k, s, p, d = _pool_args(op, kernel_size, stride, padding, dilation)
    shape = tuple(int(v) for v in input_shape)
    unbatched = len(shape) == 3
    full = (1,) + shape if unbatched else shape
    if len(full) != 4:
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {shape}")
    out = tuple(_core.max_pool2d_output_size(list(full), k, s, p, d, bool(ceil_mode)))
    return out[1:] if unbatched else out


def _max_pool2d_array(
    op: str,
    input: ArrayLike,
    k: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int],
    d: tuple[int, int],
    ceil_mode: bool,
    return_indices: bool,
) -> Any:
    """max_pool2d on an array, arguments already normalised (see cnnfast.functional.max_pool2d)."""
    (x,) = _as_float(op, input=input)
    x, unbatched = _batch(op, x)
    res = _core.max_pool2d_forward(x, k, s, p, d, ceil_mode, return_indices)
    if unbatched:
        return (res[0][0], res[1][0]) if return_indices else res[0]
    return res
