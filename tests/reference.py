"""Independent NumPy reference implementations (im2col + einsum), shared by tests and bench.

Written from the definitions, not from the C++ code, so they are a second opinion on the
kernels: conv2d is cross-correlation, NCHW, weight (K, C/groups, R, S); max_pool2d pads with
-inf, propagates NaN and picks the first maximum.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv_out_size(h, k, s, p, d):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


def _windows(xp, R, S, OH, OW, stride, dilation):
    """View of xp (N, C, Hp, Wp) as (N, C, R, S, OH, OW) windows."""
    sh, sw = stride
    dh, dw = dilation
    n, c, _, _ = xp.shape
    st = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, c, R, S, OH, OW), (st[0], st[1], st[2] * dh, st[3] * dw, st[2] * sh, st[3] * sw), writeable=False)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    OH = conv_out_size(H, R, stride[0], padding[0], dilation[0])
    OW = conv_out_size(W, S, stride[1], padding[1], dilation[1])
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    win = _windows(xp, R, S, OH, OW, stride, dilation)
    Kg = K // groups
    out = np.empty((N, K, OH, OW), dtype=np.result_type(x, w))
    for g in range(groups):
        out[:, g * Kg:(g + 1) * Kg] = np.einsum("ncrsij,kcrs->nkij", win[:, g * Cg:(g + 1) * Cg], w[g * Kg:(g + 1) * Kg],
                                                 optimize=True)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def conv2d_backward(gy, x, w, stride=1, padding=0, dilation=1, groups=1):
    """Returns (grad_input, grad_weight, grad_bias) by scattering through the windows."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    OH, OW = gy.shape[2:]
    Kg = K // groups
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    win = _windows(xp, R, S, OH, OW, stride, dilation)
    gxp = np.zeros_like(xp)
    gw = np.empty_like(w)
    for g in range(groups):
        cs, ks = slice(g * Cg, (g + 1) * Cg), slice(g * Kg, (g + 1) * Kg)
        gw[ks] = np.einsum("ncrsij,nkij->kcrs", win[:, cs], gy[:, ks], optimize=True)
        cols = np.einsum("kcrs,nkij->ncrsij", w[ks], gy[:, ks], optimize=True)
        for r in range(R):
            for s in range(S):
                h0, w0 = r * dilation[0], s * dilation[1]
                gxp[:, cs, h0:h0 + stride[0] * OH:stride[0], w0:w0 + stride[1] * OW:stride[1]] += cols[:, :, r, s]
    gx = gxp[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W]
    return np.ascontiguousarray(gx), gw, gy.sum(axis=(0, 2, 3))


def pool_out_size(h, k, s, p, d, ceil_mode):
    num = h + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    o = num // s + 1
    if ceil_mode and (o - 1) * s >= h + p:
        o -= 1
    return o


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Returns (output, indices) with flat per-plane indices, first maximum wins, NaN propagates."""
    k = _pair(kernel_size)
    s = k if stride is None else _pair(stride)
    p, d = _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    OH = pool_out_size(H, k[0], s[0], p[0], d[0], ceil_mode)
    OW = pool_out_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    y = np.empty((N, C, OH, OW), x.dtype)
    idx = np.empty((N, C, OH, OW), np.int64)
    for i in range(OH):
        for j in range(OW):
            hs = [i * s[0] - p[0] + a * d[0] for a in range(k[0])]
            ws = [j * s[1] - p[1] + b * d[1] for b in range(k[1])]
            cand = [(h, w_) for h in hs for w_ in ws if 0 <= h < H and 0 <= w_ < W]
            vals = np.stack([x[:, :, h, w_] for h, w_ in cand], axis=-1)  # (N, C, n) in scan order
            flat = np.array([h * W + w_ for h, w_ in cand])
            nan = np.isnan(vals)
            arg = np.where(nan.any(-1), nan.argmax(-1), np.argmax(np.where(nan, -np.inf, vals), -1))
            # argmax of all -inf returns 0, the first candidate: matches "first index wins"
            y[:, :, i, j] = np.take_along_axis(vals, arg[..., None], -1)[..., 0]
            idx[:, :, i, j] = flat[arg]
    return y, idx


def max_pool2d_backward(gy, idx, input_shape):
    N, C, H, W = input_shape
    gx = np.zeros((N * C, H * W), gy.dtype)
    np.add.at(gx, (np.arange(N * C)[:, None], idx.reshape(N * C, -1)), gy.reshape(N * C, -1))
    return gx.reshape(input_shape)


def relu(x):
    return np.where(x < 0, 0, x).astype(x.dtype)


def relu_backward(gy, x):
    return np.where(x <= 0, 0, gy).astype(gy.dtype)
