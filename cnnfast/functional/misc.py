"""linear, avg_pool2d, activations, softmax, dropout, flatten, one_hot (torch.nn.functional names).

ndarray in -> ndarray out; given a cnnfast Tensor the result is a Tensor recorded for backward.
The array math is in the ``_``-prefixed helpers, shared with the autograd Functions.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._gemm import mm_nt as _mm_nt
from .._utils import _any_tensor, _as_float, _is_tensor, _pair

__all__ = ["linear", "avg_pool2d", "avg_pool2d_output_shape", "leaky_relu", "sigmoid", "tanh", "softmax",
           "log_softmax", "dropout", "flatten", "one_hot"]


def _ag():
    from ..autograd import ops

    return ops


def _tensor_arg(x):
    """An ndarray/list mixed with Tensors is passed as a constant array."""
    if x is None or _is_tensor(x) or isinstance(x, np.ndarray):
        return x
    return np.asarray(x)


# ---------------------------------------------------------------------------- linear


def _linear(x, w, b):
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got weight of size {w.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input of size {x.shape} does not match weight of size {w.shape}: expected the "
                         f"last dimension of input to be {w.shape[1]}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias of size {b.shape} does not match weight of size {w.shape}: expected "
                         f"({w.shape[0]},)")
    if x.ndim == 2 and x.dtype == w.dtype:
        out = _mm_nt(x, w)  # cnnfast's GEMM: see _gemm.py for why not NumPy's BLAS
    else:
        out = np.matmul(x, w.T)
    if b is not None:
        out += b
    return out


def linear(input, weight, bias=None):
    """``input @ weight.T + bias``: input ``(*, in_features)``, weight ``(out_features, in_features)``."""
    if _any_tensor(input, weight, bias):
        return _ag().Linear.apply(_tensor_arg(input), _tensor_arg(weight), _tensor_arg(bias))
    x, w, b = _as_float("linear", input=input, weight=weight, bias=bias)
    return _linear(x, w, b)


# ---------------------------------------------------------------------------- avg_pool2d


def _pool_out(size, k, s, p, ceil_mode):
    if ceil_mode:
        out = -(-(size + 2 * p - k) // s) + 1
        if (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
            out -= 1
        return out
    return (size + 2 * p - k) // s + 1


def _avg_pool_args(op, kernel_size, stride, padding):
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    if min(k) <= 0:
        raise ValueError(f"{op}: kernel_size must be positive, got {k}")
    if min(s) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {s}")
    if min(p) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: pad should be at most half of kernel size, but got padding={p} and kernel_size={k}")
    return k, s, p


def _avg_pool_shape(op, shape, k, s, p, ceil_mode):
    if len(shape) not in (3, 4):
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {tuple(shape)}")
    h, w = shape[-2:]
    oh, ow = _pool_out(h, k[0], s[0], p[0], ceil_mode), _pool_out(w, k[1], s[1], p[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: Given input size {tuple(shape)} with kernel_size={k}, stride={s}, padding={p}, "
                         f"the output size ({oh}, {ow}) is too small")
    return oh, ow


def _divisors(size, k, s, p, out, count_include_pad):
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    full = end - start  # window clipped to the padded input (PyTorch's count_include_pad divisor)
    clipped = np.minimum(end, size) - np.maximum(start, 0)
    return full if count_include_pad else clipped


def _avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    op = "avg_pool2d"
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    k, s, p = kernel_size, stride, padding
    oh, ow = _avg_pool_shape(op, x.shape, k, s, p, ceil_mode)
    unbatched = x.ndim == 3
    x4 = x[None] if unbatched else x
    n, c, h, w = x4.shape
    # Zero-padded copy big enough for every window, including ceil_mode's overhanging last one.
    hp, wp = max(h + 2 * p[0], (oh - 1) * s[0] + k[0]), max(w + 2 * p[1], (ow - 1) * s[1] + k[1])
    if (hp, wp) == (h, w):
        xp = x4
    else:
        xp = np.zeros((n, c, hp, wp), dtype=x.dtype)
        xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x4
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    he, we = s[0] * (oh - 1) + 1, s[1] * (ow - 1) + 1
    for i in range(k[0]):
        for j in range(k[1]):
            out += xp[:, :, i:i + he:s[0], j:j + we:s[1]]
    if divisor_override:
        div = np.asarray(float(divisor_override), dtype=x.dtype)
    else:
        dh = _divisors(h, k[0], s[0], p[0], oh, count_include_pad)
        dw = _divisors(w, k[1], s[1], p[1], ow, count_include_pad)
        div = np.outer(dh, dw).astype(x.dtype)
    out /= div
    plan = (x4.shape, (hp, wp), k, s, p, (oh, ow), div, unbatched)
    return (out[0] if unbatched else out), plan


def _avg_pool2d_backward(g, plan):
    (n, c, h, w), (hp, wp), k, s, p, (oh, ow), div, unbatched = plan
    g = g[None] if unbatched else g
    gd = g / div
    gxp = np.zeros((n, c, hp, wp), dtype=gd.dtype)
    he, we = s[0] * (oh - 1) + 1, s[1] * (ow - 1) + 1
    for i in range(k[0]):
        for j in range(k[1]):
            gxp[:, :, i:i + he:s[0], j:j + we:s[1]] += gd
    gx = np.ascontiguousarray(gxp[:, :, p[0]:p[0] + h, p[1]:p[1] + w])
    return gx[0] if unbatched else gx


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling over an NCHW batch or CHW image (``torch.nn.functional.avg_pool2d``).

    ``stride`` defaults to ``kernel_size``; zero padding at most half the kernel. With
    ``count_include_pad=False`` the padded zeros are left out of each window's divisor.
    ``padding`` may also be a 4-tuple ``(top, bottom, left, right)`` (asymmetric).
    """
    op = "avg_pool2d"
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return _avg_pool2d_asym(op, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                divisor_override)
    k, s, p = _avg_pool_args(op, kernel_size, stride, padding)
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0):
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override!r}")
    if _any_tensor(input):
        return _ag().AvgPool2d.apply(input, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override)
    (x,) = _as_float(op, input=input)
    return _avg_pool2d_forward(x, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override)[0]


def _avg_pool2d_asym(op, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Asymmetric padding: zero-pad explicitly, sum-pool without padding, divide by the window
    sizes (counting the padding or not)."""
    from .conv import _four_pads
    from .shape import pad as _pad

    t, b, l, r = _four_pads(op, padding)
    k, s, _ = _avg_pool_args(op, kernel_size, stride, 0)
    if max(t, b) > k[0] // 2 or max(l, r) > k[1] // 2:
        raise ValueError(f"{op}: pad should be at most half of kernel size, but got padding={tuple(padding)} and "
                         f"kernel_size={k}")
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0):
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override!r}")
    x = input if _any_tensor(input) else _as_float(op, input=input)[0]
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {tuple(x.shape)}")
    xp = _pad(x, (l, r, t, b))
    sums = avg_pool2d(xp, k, s, 0, ceil_mode, True, 1)
    if divisor_override is not None:
        return sums / np.asarray(divisor_override, dtype=x.dtype)
    mask = np.zeros((1, 1) + tuple(xp.shape[-2:]), dtype=x.dtype)
    if count_include_pad:
        mask[...] = 1
    else:
        mask[..., t:t + x.shape[-2], l:l + x.shape[-1]] = 1
    count = avg_pool2d(mask, k, s, 0, ceil_mode, True, 1)
    if x.ndim == 3:
        count = count[0]
    return sums / count


def avg_pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Output shape of :func:`avg_pool2d`, validated as avg_pool2d validates."""
    op = "avg_pool2d"
    k, s, p = _avg_pool_args(op, kernel_size, stride, padding)
    shape = tuple(int(v) for v in input_shape)
    oh, ow = _avg_pool_shape(op, shape, k, s, p, ceil_mode)
    return shape[:-2] + (oh, ow)


# ---------------------------------------------------------------------------- activations


def _leaky_relu(x, negative_slope):
    return np.where(x > 0, x, x * np.asarray(negative_slope, dtype=x.dtype))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x if x > 0 else negative_slope * x``."""
    if _any_tensor(input):
        if inplace and not (input.requires_grad and _grad_enabled()):
            d = input.data
            np.multiply(d, negative_slope, out=d, where=d < 0)
            return input
        return _ag().LeakyReLU.apply(input, negative_slope)
    if inplace:
        if not isinstance(input, np.ndarray) or input.dtype.kind != "f" or not input.flags.writeable:
            raise ValueError("leaky_relu: inplace=True needs a writeable floating point ndarray")
        np.multiply(input, negative_slope, out=input, where=input < 0)
        return input
    (x,) = _as_float("leaky_relu", input=input)
    return _leaky_relu(x, negative_slope)


def _grad_enabled():
    from ..autograd.grad_mode import is_grad_enabled

    return is_grad_enabled()


def _sigmoid(x):
    # Stable for large |x|: exp is only taken of -|x|, so it never overflows.
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


def sigmoid(input):
    """``1 / (1 + exp(-x))``, computed without overflow."""
    if _any_tensor(input):
        return _ag().Sigmoid.apply(input)
    (x,) = _as_float("sigmoid", input=input)
    return _sigmoid(x)


def tanh(input):
    if _any_tensor(input):
        return _ag().Tanh.apply(input)
    (x,) = _as_float("tanh", input=input)
    return np.tanh(x)


def _check_dim(op, x, dim):
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    nd = max(x.ndim, 1)
    if not -nd <= dim < nd:
        raise IndexError(f"{op}: dim {dim} out of range for input of size {x.shape}")
    return int(dim)


def _softmax(x, dim):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    dim = _check_dim("softmax", x, dim)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    e /= e.sum(axis=dim, keepdims=True)
    return e


def _log_softmax(x, dim):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    dim = _check_dim("log_softmax", x, dim)
    z = x - x.max(axis=dim, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=dim, keepdims=True))
    return z


def softmax(input, dim):
    """``exp(x) / sum(exp(x))`` along ``dim`` (max-subtracted, so large logits do not overflow)."""
    if _any_tensor(input):
        return _ag().Softmax.apply(input, dim=dim)
    (x,) = _as_float("softmax", input=input)
    return _softmax(x, dim)


def log_softmax(input, dim):
    """``log(softmax(x))`` along ``dim``, computed stably as ``x - max - log(sum(exp(x - max)))``."""
    if _any_tensor(input):
        return _ag().LogSoftmax.apply(input, dim=dim)
    (x,) = _as_float("log_softmax", input=input)
    return _log_softmax(x, dim)


# ---------------------------------------------------------------------------- dropout / shape


def _dropout_mask(shape, p, dtype, generator):
    from .._random import _get_generator

    rng = _get_generator(generator, "dropout")
    if p == 1:
        return np.zeros(shape, dtype=dtype)
    keep = rng.random(shape, dtype=np.float32 if dtype == np.float32 else np.float64) >= p
    return keep.astype(dtype) * dtype.type(1 / (1 - p))


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (when ``training``).

    ``generator`` (a numpy Generator or int seed) makes the mask reproducible; by default the
    generator seeded by :func:`cnnfast.manual_seed` is used.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p!r}")
    if _any_tensor(input):
        if not training or p == 0:
            return input
        mask = _dropout_mask(input.shape, p, input.data.dtype if input.data.dtype.kind == "f" else np.dtype(np.float32),
                             generator)
        if inplace and not (input.requires_grad and _grad_enabled()):
            input.data *= mask
            return input
        return _ag().Dropout.apply(input, mask)
    if inplace:
        if not isinstance(input, np.ndarray) or input.dtype.kind != "f" or not input.flags.writeable:
            raise ValueError("dropout: inplace=True needs a writeable floating point ndarray")
        if training and p > 0:
            input *= _dropout_mask(input.shape, p, input.dtype, generator)
        return input
    (x,) = _as_float("dropout", input=input)
    if not training or p == 0:
        return x
    return x * _dropout_mask(x.shape, p, x.dtype, generator)


def _flat_shape(shape, start_dim, end_dim):
    nd = len(shape)
    if nd == 0:
        return (1,)
    if not (-nd <= start_dim < nd and -nd <= end_dim < nd):
        raise IndexError(f"flatten: start_dim={start_dim}, end_dim={end_dim} out of range for input of size {tuple(shape)}")
    s, e = start_dim % nd, end_dim % nd
    if s > e:
        raise ValueError(f"flatten: start_dim={start_dim} cannot come after end_dim={end_dim}")
    return tuple(shape[:s]) + (int(np.prod(shape[s:e + 1], dtype=np.int64)),) + tuple(shape[e + 1:])


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one (``torch.flatten``; nn.Flatten starts at dim 1)."""
    if _any_tensor(input):
        return input.reshape(_flat_shape(input.shape, start_dim, end_dim))
    x = np.asarray(input)
    return x.reshape(_flat_shape(x.shape, start_dim, end_dim))


def one_hot(labels, num_classes=-1):
    """Integer class labels of any shape -> int64 array of shape ``labels.shape + (num_classes,)``.

    ``num_classes=-1`` uses ``labels.max() + 1``. Labels must be integers in ``[0, num_classes)``.
    """
    is_t = _is_tensor(labels)
    y = np.asarray(labels.data if is_t else labels)
    if y.dtype.kind not in "iu":
        if y.size:
            raise TypeError(f"one_hot: labels must be an integer array, got dtype {y.dtype}")
        y = y.astype(np.int64)  # an empty list arrives as float64
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"one_hot: num_classes must be an int, got {num_classes!r}")
    if num_classes == -1:
        if y.size == 0:
            raise ValueError("one_hot: can not infer num_classes from empty labels; pass num_classes")
        num_classes = int(y.max()) + 1
    if num_classes < 1 and not (num_classes == 0 and y.size == 0):
        raise ValueError(f"one_hot: num_classes must be positive (or -1), got {num_classes}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = y.min() if y.min() < 0 else y.max()
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got {bad}")
    out = (y[..., None] == np.arange(num_classes)).astype(np.int64)
    if is_t:
        from ..autograd.tensor import Tensor

        return Tensor(out)
    return out
