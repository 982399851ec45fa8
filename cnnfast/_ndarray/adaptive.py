"""The array math of cnnfast.functional.adaptive: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core

if TYPE_CHECKING:
    from .._typing import Array, Shape


def _output_size(op: str, output_size: int | None | Sequence[int | None], shape: Sequence[int]) -> tuple[int, ...]:
    if len(shape) not in (3, 4):
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {tuple(shape)}")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
        items = tuple(output_size)
    else:
        items = (output_size, output_size)
    out = []
    for v, full in zip(items, shape[-2:]):
        if v is None:
            v = full
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{op}: output_size must be positive ints (or None), got {output_size!r}")
        out.append(int(v))
    if min(shape[-2:]) < 1:
        raise ValueError(f"{op}: input of size {tuple(shape)} has an empty spatial dimension")
    return tuple(out)


def _bins(size: int, out: int, dtype: Any) -> Array:
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    a = np.zeros((out, size), dtype=dtype)
    for r, (s, e) in enumerate(zip(start, end)):
        a[r, s:e] = 1.0 / (e - s)
    return a


def _adaptive_forward(x: Array, oh: int, ow: int) -> Array:
    h, w = x.shape[-2:]
    if (oh, ow) == (1, 1):
        if x.ndim == 4 and x.dtype.char in "fd" and x.size:
            return _core.global_avg_pool_forward(x)  # one pass per plane, threads over planes
        return x.mean(axis=(-2, -1), keepdims=True)
    if h % oh == 0 and w % ow == 0:
        return x.reshape(x.shape[:-2] + (oh, h // oh, ow, w // ow)).mean(axis=(-3, -1))
    ah, aw = _bins(h, oh, x.dtype), _bins(w, ow, x.dtype)
    return np.ascontiguousarray(ah @ (x @ aw.T))


def _adaptive_backward(g: Array, in_shape: Shape) -> Array:
    h, w = in_shape[-2:]
    oh, ow = g.shape[-2:]
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        gd = g / g.dtype.type(kh * kw)
        out = np.broadcast_to(gd[..., :, None, :, None], g.shape[:-2] + (oh, kh, ow, kw))
        return np.ascontiguousarray(out).reshape(in_shape)
    ah, aw = _bins(h, oh, g.dtype), _bins(w, ow, g.dtype)
    return np.ascontiguousarray(ah.T @ g @ aw)
