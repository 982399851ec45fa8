"""cat (concatenation along any axis) and pad (constant padding, torch's pad order).

ndarray in -> ndarray out; given cnnfast Tensors the result is a Tensor recorded for backward.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..autograd import ops as _ops
from .._typing import _is_tensor
from .._utils import _any_tensor, _tensor_arg
from .._ndarray.shape import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _cat_check,
    _crop,
    _pad_backward,
    _pad_forward,
    _pad_pairs,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayOrTensor, TensorLike
    from ..autograd.tensor import Tensor

__all__ = ["cat", "pad"]


def _ag() -> Any:
    return _ops


@overload
def cat(tensors: Iterable[Tensor], dim: int = 0, *, axis: int | None = None) -> Tensor: ...
@overload
def cat(tensors: Iterable[Array], dim: int = 0, *, axis: int | None = None) -> Array: ...
@overload
def cat(tensors: Iterable[Any], dim: int = 0, *, axis: int | None = None) -> Array | Tensor: ...
def cat(tensors: Iterable[TensorLike], dim: int = 0, *, axis: int | None = None) -> Array | Tensor:
    """Concatenate arrays/Tensors along ``dim`` (``torch.cat``; ``axis=`` is NumPy's name for it).

    All sizes except ``dim`` must match. With any Tensor among the inputs the result is recorded
    and each input gets its slice of the gradient. Mixed float dtypes promote as NumPy does.
    """
    op = "cat"
    if axis is not None:
        dim = axis
    if isinstance(tensors, np.ndarray) or _is_tensor(tensors):
        raise TypeError(f"{op}: expected a sequence of arrays or Tensors, got a single {type(tensors).__name__}")
    tensors = list(tensors)
    if _any_tensor(*tensors):
        items = [_tensor_arg(t) for t in tensors]
        d = _cat_check(op, [t.shape for t in items], dim)
        return _ag().Cat.apply(*items, dim=d)
    arrays = [np.asarray(t) for t in tensors]
    d = _cat_check(op, [a.shape for a in arrays], dim)
    return np.concatenate(arrays, axis=d)


def pad(input: ArrayOrTensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> ArrayOrTensor:
    """Pad (or, with negative amounts, crop) the last ``len(pad)//2`` dims (``torch.nn.functional.pad``).

    ``pad`` lists the last dim first: ``(left, right)``, ``(left, right, top, bottom)``, ...
    Only ``mode='constant'`` is supported; ``value`` defaults to 0 (use ``-inf`` before a max
    pool). Asymmetric ('SAME_UPPER'-style) padding for conv2d/pools is this, or their 4-tuple
    ``padding=(top, bottom, left, right)``.
    """
    op = "pad"
    if mode != "constant":
        raise NotImplementedError(f"{op}: only mode='constant' is supported, got {mode!r}")
    value = 0 if value is None else value
    if _is_tensor(input):
        pairs = _pad_pairs(op, input.shape, pad)
        return _ag().Pad.apply(input, pairs=pairs, value=value)
    x = np.asarray(input)
    return _pad_forward(x, _pad_pairs(op, x.shape, pad), value)
