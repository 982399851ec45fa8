"""max_pool2d on NumPy arrays (and, given a Tensor, recorded for autograd)."""
from __future__ import annotations

import numpy as np

from .. import _core
from .._utils import _any_tensor, _as_float, _pair

__all__ = ["max_pool2d", "max_pool2d_backward", "max_pool2d_output_shape"]


def _pool_args(op, kernel_size, stride, padding, dilation):
    kernel_size = _pair(kernel_size, "kernel_size", op)
    # stride=None (or an empty list, as torch allows) means stride = kernel_size
    stride = kernel_size if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else _pair(stride, "stride", op)
    return kernel_size, stride, _pair(padding, "padding", op), _pair(dilation, "dilation", op)


def _batch(op, x):
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {x.shape}")
    return x, False


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
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
    if _any_tensor(input):
        from ..autograd import ops as _ag

        return _ag.max_pool2d(input, k, s, p, d, bool(ceil_mode), bool(return_indices))
    (x,) = _as_float(op, input=input)
    x, unbatched = _batch(op, x)
    res = _core.max_pool2d_forward(x, k, s, p, d, bool(ceil_mode), bool(return_indices))
    if unbatched:
        return (res[0][0], res[1][0]) if return_indices else res[0]
    return res


def _max_pool2d_asym(op, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    from .conv import _four_pads
    from .shape import pad as _pad

    t, b, l, r = _four_pads(op, padding)
    k, s, _, d = _pool_args(op, kernel_size, stride, 0, dilation)
    half = [(d[i] * (k[i] - 1) + 1) // 2 for i in range(2)]
    if max(t, b) > half[0] or max(l, r) > half[1]:
        raise ValueError(f"{op}: pad should be at most half of effective kernel size, but got padding={tuple(padding)}, "
                         f"kernel_size={k}, dilation={d}")
    x = input if _any_tensor(input) else _as_float(op, input=input)[0]
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


def max_pool2d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
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


def max_pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
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
