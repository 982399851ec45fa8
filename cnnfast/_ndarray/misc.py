"""The array math of cnnfast.functional.misc: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._gemm import mm_nt as _mm_nt
from .._utils import _pair


def _linear(x, w, b):
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got weight of size {w.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear: input of size {x.shape} does not match weight of size {w.shape}: expected the "
            f"last dimension of input to be {w.shape[1]}"
        )
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(
            f"linear: bias of size {b.shape} does not match weight of size {w.shape}: expected " f"({w.shape[0]},)"
        )
    if x.ndim == 2 and x.dtype == w.dtype:
        out = _mm_nt(x, w)  # cnnfast's GEMM: see _gemm.py for why not NumPy's BLAS
    else:
        out = np.matmul(x, w.T)
    if b is not None:
        out += b
    return out


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
        raise ValueError(
            f"{op}: Given input size {tuple(shape)} with kernel_size={k}, stride={s}, padding={p}, "
            f"the output size ({oh}, {ow}) is too small"
        )
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
        xp[:, :, p[0] : p[0] + h, p[1] : p[1] + w] = x4
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    he, we = s[0] * (oh - 1) + 1, s[1] * (ow - 1) + 1
    for i in range(k[0]):
        for j in range(k[1]):
            out += xp[:, :, i : i + he : s[0], j : j + we : s[1]]
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
            gxp[:, :, i : i + he : s[0], j : j + we : s[1]] += gd
    gx = np.ascontiguousarray(gxp[:, :, p[0] : p[0] + h, p[1] : p[1] + w])
    return gx[0] if unbatched else gx


def _leaky_relu(x, negative_slope):
    # float32 / float64: the C++ kernel (one pass; kind "leaky"), else NumPy's three
    if type(x) is np.ndarray and (x.dtype == np.float32 or x.dtype == np.float64):
        return _core.pointwise_forward(x, "leaky", float(negative_slope))
    return _leaky_relu_np(x, negative_slope)


def _leaky_relu_np(x, negative_slope):
    return np.where(x > 0, x, x * np.asarray(negative_slope, dtype=x.dtype))


def _sigmoid(x):
    # float32 / float64: the C++ kernel (one pass; float32 a vector exp within 2 ulps, 4e-39 rather
    # than a subnormal or 0 below x = -88.4; float64 <cmath> exp), 4-23x the NumPy formula
    # (bench/activation_kernels.py); other dtypes: NumPy, stable for large |x| (exp is only taken of
    # -|x|, so it never overflows).
    if type(x) is np.ndarray and (x.dtype == np.float32 or x.dtype == np.float64):
        return _core.pointwise_forward(x, "sigmoid")
    return _sigmoid_np(x)


def _sigmoid_np(x):
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


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


def _dropout_mask(shape, p, dtype, generator):
    from .._random import _get_generator

    rng = _get_generator(generator, "dropout")
    if p == 1:
        return np.zeros(shape, dtype=dtype)
    keep = rng.random(shape, dtype=np.float32 if dtype == np.float32 else np.float64) >= p
    return keep.astype(dtype) * dtype.type(1 / (1 - p))


def _flat_shape(shape, start_dim, end_dim):
    nd = len(shape)
    if nd == 0:
        return (1,)
    if not (-nd <= start_dim < nd and -nd <= end_dim < nd):
        raise IndexError(
            f"flatten: start_dim={start_dim}, end_dim={end_dim} out of range for input of size {tuple(shape)}"
        )
    s, e = start_dim % nd, end_dim % nd
    if s > e:
        raise ValueError(f"flatten: start_dim={start_dim} cannot come after end_dim={end_dim}")
    return tuple(shape[:s]) + (int(np.prod(shape[s : e + 1], dtype=np.int64)),) + tuple(shape[e + 1 :])
