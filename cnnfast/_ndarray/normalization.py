"""The array math of cnnfast.functional.normalization: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

import numpy as np


def _bn_check(op, x, running_mean, running_var, weight, bias, training):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of 2 or more dimensions (N, C, ...), got input of size {x.shape}")
    c = x.shape[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if a is not None and np.shape(a) != (c,):
            raise ValueError(
                f"{op}: {name} should contain {c} elements (one per channel of input of size {x.shape}), "
                f"got {name} of size {np.shape(a)}"
            )
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be arrays or both be None")
    if not training and running_mean is None:
        raise ValueError(f"{op}: running_mean and running_var must be given when training=False")
    if training and x.size // max(c, 1) <= 1:
        raise ValueError(f"{op}: Expected more than 1 value per channel when training, got input of size {x.shape}")


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bn_bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _update_running(running, value, momentum):
    """running = (1 - momentum) * running + momentum * value, in place (keeping running's dtype)."""
    running *= 1 - momentum
    running += (momentum * value).astype(running.dtype, copy=False)


def _batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum, eps):
    """Returns (output, saved) where saved feeds :func:`_batch_norm_backward`.

    Training uses the batch's mean and biased variance and, when running stats are given,
    updates them in place with the unbiased variance (n / (n - 1)), as PyTorch does.
    """
    axes, shp = _bn_axes(x), _bn_bshape(x)
    dt = x.dtype.type
    if training:
        n = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        xhat = x - mean.reshape(shp)
        var = np.square(xhat).mean(axis=axes)
        invstd = 1 / np.sqrt(var + dt(eps))
        xhat *= invstd.reshape(shp)
        out = xhat * weight.reshape(shp) if weight is not None else xhat.copy()
        if bias is not None:
            out += bias.reshape(shp)
        if running_mean is not None:
            _update_running(running_mean, mean, momentum)
            _update_running(running_var, var * dt(n / (n - 1)), momentum)
        return out, ("train", xhat, invstd, weight)
    rm = running_mean.astype(x.dtype, copy=False)
    invstd = 1 / np.sqrt(running_var.astype(x.dtype, copy=False) + dt(eps))
    scale = invstd * weight if weight is not None else invstd
    shift = -rm * scale
    if bias is not None:
        shift = shift + bias
    out = x * scale.reshape(shp)
    out += shift.reshape(shp)
    return out, ("eval", x, invstd, scale, rm)


def _channel_dot(a, b):
    """sum over every axis but 1 of a * b, without a full-size temporary."""
    n, c = a.shape[:2]
    return np.einsum("ijk,ijk->j", a.reshape(n, c, -1), b.reshape(n, c, -1))


def _batch_norm_backward(g, saved, needs=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of batch_norm; entries not in ``needs`` are None."""
    axes = _bn_axes(g)
    shp = _bn_bshape(g)
    gb = g.sum(axis=axes) if (needs[1] or needs[2] or saved[0] == "train") else None
    if saved[0] == "train":
        _, xhat, invstd, weight = saved
        n = g.size // g.shape[1]
        gxhat_sum = _channel_dot(g, xhat)
        gx = None
        if needs[0]:
            k = invstd if weight is None else invstd * weight
            k = (k / g.dtype.type(n)).reshape(shp)
            gx = g * g.dtype.type(n)
            gx -= gb.reshape(shp)
            gx -= xhat * gxhat_sum.reshape(shp)
            gx *= k
        return gx, (gxhat_sum if needs[1] else None), (gb if needs[2] else None)
    _, x, invstd, scale, rm = saved
    gx = g * scale.reshape(shp) if needs[0] else None
    gw = None
    if needs[1]:
        xhat = (x - rm.reshape(shp)) * invstd.reshape(shp)
        gw = _channel_dot(g, xhat)
    return gx, gw, (gb if needs[2] else None)


def _channel_window_sum(a, before, after):
    """out[:, c] = sum of a[:, c - before : c + after + 1] (zero outside), along dim 1."""
    c = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before + 1, after)
    cs = np.cumsum(np.pad(a, pad), axis=1)
    return cs[:, before + 1 + after : before + 1 + after + c] - cs[:, :c]


def _lrn_forward(x, size, alpha, beta, k):
    dt = x.dtype.type
    s = _channel_window_sum(x * x, size // 2, (size - 1) // 2) * dt(alpha / size) + dt(k)
    p = s ** dt(-beta)
    return x * p, (x, s, p)


def _lrn_backward(g, saved, size, alpha, beta):
    x, s, p = saved
    dt = g.dtype.type
    t = g * x * p / s
    # d s_i / d x_j = 2 alpha/size x_j for j in window(i); the transpose window swaps before/after.
    back = _channel_window_sum(t, (size - 1) // 2, size // 2)
    return g * p - dt(2 * alpha * beta / size) * x * back
