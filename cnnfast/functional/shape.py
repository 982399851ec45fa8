"""cat (concatenation along any axis) and pad (constant padding, torch's pad order).

ndarray in -> ndarray out; given cnnfast Tensors the result is a Tensor recorded for backward.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._utils import _any_tensor, _is_tensor

__all__ = ["cat", "pad"]


def _ag():
    from ..autograd import ops

    return ops


def _cat_check(op, shapes, dim):
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
            raise ValueError(f"{op}: Sizes of tensors must match except in dimension {d}: tensor 0 has size "
                             f"{tuple(shapes[0])} but tensor {i} has size {tuple(s)}")
    return d


def cat(tensors, dim=0, *, axis=None):
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
        from .misc import _tensor_arg

        items = [_tensor_arg(t) for t in tensors]
        d = _cat_check(op, [t.shape for t in items], dim)
        return _ag().Cat.apply(*items, dim=d)
    arrays = [np.asarray(t) for t in tensors]
    d = _cat_check(op, [a.shape for a in arrays], dim)
    return np.concatenate(arrays, axis=d)


def _pad_pairs(op, shape, pad):
    """torch's pad tuple (last dim first: left, right, top, bottom, ...) -> per-axis (before, after)."""
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or \
            any(isinstance(p, bool) or not isinstance(p, numbers.Integral) for p in pad):
        raise ValueError(f"{op}: pad must be a tuple of an even number of ints, got {pad!r}")
    if len(pad) // 2 > len(shape):
        raise ValueError(f"{op}: padding of length {len(pad)} is too long for an input of {len(shape)} dimensions "
                         f"(size {tuple(shape)})")
    pairs = [(0, 0)] * len(shape)
    for i in range(len(pad) // 2):
        ax = len(shape) - 1 - i
        pairs[ax] = (int(pad[2 * i]), int(pad[2 * i + 1]))
        if shape[ax] + pairs[ax][0] + pairs[ax][1] < 0:
            raise ValueError(f"{op}: padding {pad} makes dimension {ax} of input of size {tuple(shape)} negative")
    return pairs


def _crop(a, pairs):
    """Apply the negative parts of pairs (cropping); returns a view."""
    idx = tuple(slice(-b if b < 0 else 0, a.shape[i] + a_ if a_ < 0 else None)
                for i, (b, a_) in enumerate(pairs))
    return a[idx]


def _pad_forward(x, pairs, value):
    x = _crop(x, pairs)
    pos = [(max(b, 0), max(a, 0)) for b, a in pairs]
    if any(b or a for b, a in pos):
        x = np.pad(x, pos, mode="constant", constant_values=value)
    return np.ascontiguousarray(x)


def _pad_backward(g, pairs):
    """The transpose of _pad_forward: crop the padding off, zero-fill what was cropped."""
    return _pad_forward(g, [(-b, -a) for b, a in pairs], 0)


def pad(input, pad, mode="constant", value=None):
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
    if _any_tensor(input):
        pairs = _pad_pairs(op, input.shape, pad)
        return _ag().Pad.apply(input, pairs=pairs, value=value)
    x = np.asarray(input)
    return _pad_forward(x, _pad_pairs(op, x.shape, pad), value)
