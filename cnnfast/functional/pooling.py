"""max_pool2d on NumPy arrays (and, given a Tensor, recorded for autograd)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from ..autograd import ops as _ag
from .._typing import _is_tensor
from .._utils import _as_float
from .._ndarray.pooling import _max_pool2d_array
from .._ndarray.pooling import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _batch,
    _pool_args,
    max_pool2d_backward,
    max_pool2d_output_shape,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayOrTensor, IntPair, Padding
    from ..autograd.tensor import Tensor

__all__ = ["max_pool2d", "max_pool2d_backward", "max_pool2d_output_shape"]


@overload
def max_pool2d(
    input: ArrayOrTensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: Literal[False] = False,
) -> ArrayOrTensor: ...
@overload
def max_pool2d(
    input: ArrayOrTensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    *,
    return_indices: Literal[True],
) -> tuple[ArrayOrTensor, Array]: ...
@overload
def max_pool2d(
    input: ArrayOrTensor,
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: Padding,
    dilation: IntPair,
    ceil_mode: bool,
    return_indices: Literal[True],
) -> tuple[ArrayOrTensor, Array]: ...
@overload
def max_pool2d(
    input: ArrayOrTensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> ArrayOrTensor | tuple[ArrayOrTensor, Array]: ...
def max_pool2d(
    input: Array | Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Array | Tensor | tuple[Array | Tensor, Array]:
    """2-D max pooling over an NCHW batch or a CHW image (``torch.nn.functional.max_pool2d``).

    ``padding`` may also be a 4-tuple ``(top, bottom, left, right)`` (asymmetric, each at most half
    the effective kernel): the input is padded with -inf, then pooled without padding.

    ``stride`` defaults to ``kernel_size``; padding is implicit -inf and at most half the effective
    kernel. NaN propagates; ties go to the first index in scan order. With ``return_indices`` also
    returns int64 indices, flat offsets ``h * W + w`` into each input plane (PyTorch's convention),
    which :func:`max_pool2d_backward` consumes.
    """
    op = "max_pool2d"
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return _max_pool2d_asym(op, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    k, s, p, d = _pool_args(op, kernel_size, stride, padding, dilation)
    if _is_tensor(input):
        return _ag.max_pool2d(input, k, s, p, d, bool(ceil_mode), bool(return_indices))
    return _max_pool2d_array(op, input, k, s, p, d, bool(ceil_mode), bool(return_indices))


def _max_pool2d_asym(
    op: str,
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: Any,
    dilation: IntPair,
    ceil_mode: bool,
    return_indices: bool,
) -> Any:
    from .conv import _four_pads
    from .shape import pad as _pad

    t, b, l, r = _four_pads(op, padding)
    k, s, _, d = _pool_args(op, kernel_size, stride, 0, dilation)
    half = [(d[i] * (k[i] - 1) + 1) // 2 for i in range(2)]
    if max(t, b) > half[0] or max(l, r) > half[1]:
        raise ValueError(
            f"{op}: pad should be at most half of effective kernel size, but got padding={tuple(padding)}, "
            f"kernel_size={k}, dilation={d}"
        )
    x = input if _is_tensor(input) else _as_float(op, input=input)[0]
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {tuple(x.shape)}")
    w_in = x.shape[-1]
    xp = _pad(x, (l, r, t, b), value=-np.inf)
    res = max_pool2d(xp, k, s, 0, d, ceil_mode, return_indices)
    if not return_indices:
        return res
    out, idx = res
    wp = w_in + l + r
    idx = (idx // wp - t) * w_in + (idx % wp - l)  # flat index into the unpadded plane
    return out, idx
