"""The array math of cnnfast.functional.shape: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .._typing import Array


def _cat_check(op: str, shapes: Sequence[Sequence[int]], dim: int) -> int:
    if not shapes:
        raise ValueError(f"{op}: expected a non-empty sequence of arrays")
    nd = len(shapes[0])
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if nd == 0:
        raise ValueError(f"{op}: zero-dimensional arrays cannot be concatenated")
    if not -nd <= dim < nd:
        raise IndexError(f"{op}: dim {dim} out of range for arrays of {nd} dimensions")
    d = dim % nd
    for i, s in enumerate(shapes):
        if len(s) != nd or any(a != b for j, (a, b) in enumerate(zip(s, shapes[0])) if j != d):
            raise ValueError(
                f"{op}: Sizes of tensors must match except in dimension {d}: tensor 0 has size "
                f"{tuple(shapes[0])} but tensor {i} has size {tuple(s)}"
            )
    return d


def _pad_pairs(op: str, shape: Sequence[int], pad: Sequence[int]) -> list[tuple[int, int]]:
    """torch's pad tuple (last dim first: left, right, top, bottom, ...) -> per-axis (before, after)."""
    if (
        not isinstance(pad, (tuple, list))
        or len(pad) % 2
        or any(isinstance(p, bool) or not isinstance(p, numbers.Integral) for p in pad)
    ):
        raise ValueError(f"{op}: pad must be a tuple of an even number of ints, got {pad!r}")
    if len(pad) // 2 > len(shape):
        raise ValueError(
            f"{op}: padding of length {len(pad)} is too long for an input of {len(shape)} dimensions "
            f"(size {tuple(shape)})"
        )
    pairs = [(0, 0)] * len(shape)
    for i in range(len(pad) // 2):
        ax = len(shape) - 1 - i
        pairs[ax] = (int(pad[2 * i]), int(pad[2 * i + 1]))
        if shape[ax] + pairs[ax][0] + pairs[ax][1] < 0:
            raise ValueError(f"{op}: padding {pad} makes dimension {ax} of input of size {tuple(shape)} negative")
    return pairs


def _crop(a: Array, pairs: Sequence[tuple[int, int]]) -> Array:
    """Apply the negative parts of pairs (cropping); returns a view."""
    idx = tuple(slice(-b if b < 0 else 0, a.shape[i] + a_ if a_ < 0 else None) for i, (b, a_) in enumerate(pairs))
    return a[idx]


def _pad_forward(x: Array, pairs: Sequence[tuple[int, int]], value: float) -> Array:
    x = _crop(x, pairs)
    pos = [(max(b, 0), max(a, 0)) for b, a in pairs]
    if any(b or a for b, a in pos):
        x = np.pad(x, pos, mode="constant", constant_values=value)
    return np.ascontiguousarray(x)


def _pad_backward(g: Array, pairs: Sequence[tuple[int, int]]) -> Array:
    """The transpose of _pad_forward: crop the padding off, zero-fill what was cropped."""
    return _pad_forward(g, [(-b, -a) for b, a in pairs], 0)
