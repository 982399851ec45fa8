"""batch_norm and local_response_norm (torch.nn.functional names).

ndarray in -> ndarray out; given a cnnfast Tensor the result is a Tensor recorded for backward.
batch_norm is NumPy in two passes over the input (statistics, then normalise) in training and
one pass (a per-channel scale and shift) in eval; for inference, fold it into the preceding
convolution instead (:func:`cnnfast.nn.fuse_conv_bn_eval`), which costs nothing at run time.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._utils import _any_tensor, _as_float

__all__ = ["batch_norm", "local_response_norm"]


def _ag():
    from ..autograd import ops

    return ops


# ---------------------------------------------------------------------------- batch_norm


def _bn_check(op, x, running_mean, running_var, weight, bias, training):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of 2 or more dimensions (N, C, ...), got input of size {x.shape}")
    c = x.shape[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if a is not None and np.shape(a) != (c,):
            raise ValueError(f"{op}: {name} should contain {c} elements (one per channel of input of size {x.shape}), "
                             f"got {name} of size {np.shape(a)}")
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


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation over dim 1 of an (N, C, ...) input (``torch.nn.functional.batch_norm``).

    ``training=True``: normalise with the batch's mean and (biased) variance per channel, and, if
    ``running_mean``/``running_var`` are arrays, update them **in place**:
    ``running = (1 - momentum) * running + momentum * batch_stat`` (the variance unbiased).
    ``training=False``: normalise with the running statistics. ``weight``/``bias`` (gamma/beta,
    shape (C,)) are optional. Gradients flow to input, weight and bias, not to the running stats.
    """
    op = "batch_norm"
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}: momentum must be a number, got {momentum!r}")
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if a is not None and not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
            raise TypeError(f"{op}: {name} must be a floating point ndarray (updated in place) or None, "
                            f"got {type(a).__name__}")
    if _any_tensor(input, weight, bias):
        from .misc import _tensor_arg

        return _ag().BatchNorm.apply(_tensor_arg(input), _tensor_arg(weight), _tensor_arg(bias),
                                     running_mean=running_mean, running_var=running_var, training=bool(training),
                                     momentum=float(momentum), eps=float(eps))
    named = {k: v for k, v in (("input", input), ("weight", weight), ("bias", bias)) if v is not None}
    arrs = dict(zip(named, _as_float(op, **named)))
    x, w, b = arrs["input"], arrs.get("weight"), arrs.get("bias")
    _bn_check(op, x, running_mean, running_var, w, b, training)
    return _batch_norm_forward(x, running_mean, running_var, w, b, bool(training), float(momentum), float(eps))[0]


# ---------------------------------------------------------------------------- local_response_norm


def _channel_window_sum(a, before, after):
    """out[:, c] = sum of a[:, c - before : c + after + 1] (zero outside), along dim 1."""
    c = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before + 1, after)
    cs = np.cumsum(np.pad(a, pad), axis=1)
    return cs[:, before + 1 + after:before + 1 + after + c] - cs[:, :c]


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


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels (AlexNet, GoogLeNet v1 in ONNX), as torch:
    ``x_c / (k + alpha/size * sum_{c' in window(c)} x_c'^2) ** beta`` with a window of ``size``
    channels from ``c - size//2`` to ``c + (size-1)//2``."""
    op = "local_response_norm"
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"{op}: size must be a positive int, got {size!r}")
    if _any_tensor(input):
        if input.ndim < 3:
            raise ValueError(f"{op}: Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
        return _ag().LocalResponseNorm.apply(input, size=int(size), alpha=float(alpha), beta=float(beta),
                                             k=float(k))
    (x,) = _as_float(op, input=input)
    if x.ndim < 3:
        raise ValueError(f"{op}: Expected 3D or higher dimensionality input (got {x.ndim} dimensions)")
    return _lrn_forward(x, int(size), float(alpha), float(beta), float(k))[0]
