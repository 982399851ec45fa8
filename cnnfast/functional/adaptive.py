"""adaptive_avg_pool2d (any output size, PyTorch's bins) and global_avg_pool2d.

Output cell ``i`` of a dimension of size ``L`` pooled to ``O`` averages input ``floor(i L / O)``
to ``ceil((i + 1) L / O) - 1``, as torch does. The bins are rectangles, so the average is
separable: ``out = A_h @ x @ A_w.T`` with ``A`` an (O, L) matrix of 1/bin-size weights, and the
gradient is ``A_h.T @ g @ A_w``. The common cases take a faster path: output 1x1 (global
average pooling, a mean) and sizes that divide evenly (a reshape and a mean).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._utils import _any_tensor, _as_float

__all__ = ["adaptive_avg_pool2d", "global_avg_pool2d"]


def _ag():
    from ..autograd import ops

    return ops


def _output_size(op, output_size, shape):
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


def _bins(size, out, dtype):
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    a = np.zeros((out, size), dtype=dtype)
    for r, (s, e) in enumerate(zip(start, end)):
        a[r, s:e] = 1.0 / (e - s)
    return a


def _adaptive_forward(x, oh, ow):
    h, w = x.shape[-2:]
    if (oh, ow) == (1, 1):
        return x.mean(axis=(-2, -1), keepdims=True)
    if h % oh == 0 and w % ow == 0:
        return x.reshape(x.shape[:-2] + (oh, h // oh, ow, w // ow)).mean(axis=(-3, -1))
    ah, aw = _bins(h, oh, x.dtype), _bins(w, ow, x.dtype)
    return np.ascontiguousarray(ah @ (x @ aw.T))


def _adaptive_backward(g, in_shape):
    h, w = in_shape[-2:]
    oh, ow = g.shape[-2:]
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        gd = g / g.dtype.type(kh * kw)
        out = np.broadcast_to(gd[..., :, None, :, None], g.shape[:-2] + (oh, kh, ow, kw))
        return np.ascontiguousarray(out).reshape(in_shape)
    ah, aw = _bins(h, oh, g.dtype), _bins(w, ow, g.dtype)
    return np.ascontiguousarray(ah.T @ g @ aw)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (int, pair, or a pair with None = keep that
    dimension) for any input size (``torch.nn.functional.adaptive_avg_pool2d``). NCHW or CHW."""
    op = "adaptive_avg_pool2d"
    oh, ow = _output_size(op, output_size, input.shape if _any_tensor(input) else np.shape(input))
    if _any_tensor(input):
        return _ag().AdaptiveAvgPool2d.apply(input, output_size=(oh, ow))
    (x,) = _as_float(op, input=input)
    return _adaptive_forward(x, oh, ow)


def global_avg_pool2d(input, keepdim=True):
    """The mean over H and W: ``(N, C, H, W) -> (N, C, 1, 1)`` (``(N, C)`` with ``keepdim=False``);
    what ``adaptive_avg_pool2d(input, 1)`` computes, the transfer-learning feature vector."""
    out = adaptive_avg_pool2d(input, 1)
    if keepdim:
        return out
    return out.reshape(out.shape[:-2])
