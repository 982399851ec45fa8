"""The activations of modern CNNs: hardswish, hardsigmoid, silu, relu6, gelu, prelu (torch names).

ndarray in -> ndarray out; given a cnnfast Tensor the result is a Tensor recorded for backward.
Each op is a forward/backward pair of ``_``-prefixed NumPy helpers shared with the autograd
Functions in ``cnnfast.autograd.ops``. They are elementwise, so NumPy runs them at a few passes
over memory; a fused conv epilogue (C++) would save those passes (see README, "Transfer learning").

Gradients at the kinks follow PyTorch: relu6 and hardsigmoid pass no gradient at their
breakpoints (-3/3, 0/6), hardswish's gradient is ``x/3 + 1/2`` on ``(-3, 3)``, 0 at -3 and 1 at 3.
"""
from __future__ import annotations

import math

import numpy as np

from .._utils import _any_tensor, _as_float

__all__ = ["hardswish", "hardsigmoid", "silu", "relu6", "gelu", "prelu"]


def _ag():
    from ..autograd import ops

    return ops


def _grad_enabled():
    from ..autograd.grad_mode import is_grad_enabled

    return is_grad_enabled()


def _inplace_ok(op, input):
    if not isinstance(input, np.ndarray) or input.dtype.kind != "f" or not input.flags.writeable:
        raise ValueError(f"{op}: inplace=True needs a writeable floating point ndarray, got {type(input).__name__}")


def _unary(op, fwd, fn_name, input, inplace, **kw):
    """Shared entry: Tensor -> recorded Function (in place only when nothing is recorded), array -> array."""
    if _any_tensor(input):
        if inplace and not (input.requires_grad and _grad_enabled()) and input.data.dtype.kind == "f":
            input.data[...] = fwd(input.data, **kw)
            return input
        return getattr(_ag(), fn_name).apply(input, **kw)
    if inplace:
        _inplace_ok(op, input)
        input[...] = fwd(input, **kw)
        return input
    (x,) = _as_float(op, input=input)
    return fwd(x, **kw)


# ---------------------------------------------------------------------------- relu6 / hard*


def _relu6(x):
    return np.clip(x, x.dtype.type(0), x.dtype.type(6))


def _relu6_backward(g, x):
    return g * ((x > 0) & (x < 6))


def relu6(input, inplace=False):
    """``min(max(x, 0), 6)`` (MobileNetV2's activation)."""
    return _unary("relu6", _relu6, "ReLU6", input, inplace)


def _hardsigmoid(x):
    t = x + x.dtype.type(3)  # one temporary, then in place: three passes over memory
    np.clip(t, 0, 6, out=t)
    np.divide(t, 6, out=t)
    return t


def _hardsigmoid_backward(g, x):
    return g * (((x > -3) & (x < 3)) / np.asarray(6, dtype=g.dtype))


def hardsigmoid(input, inplace=False):
    """``relu6(x + 3) / 6``, a piecewise-linear sigmoid (MobileNetV3's squeeze-and-excitation gate)."""
    return _unary("hardsigmoid", _hardsigmoid, "Hardsigmoid", input, inplace)


def _hardswish(x):
    t = x + x.dtype.type(3)  # x * min(max(x + 3, 0), 6) / 6 as torch, in place on one temporary
    np.clip(t, 0, 6, out=t)
    np.multiply(t, x, out=t)
    np.divide(t, 6, out=t)
    return t


def _hardswish_backward(g, x):
    mid = g * (x / 3 + np.asarray(0.5, dtype=x.dtype))
    return np.where(x <= -3, np.zeros((), g.dtype), np.where(x < 3, mid, g)).astype(g.dtype, copy=False)


def hardswish(input, inplace=False):
    """``x * relu6(x + 3) / 6`` (MobileNetV3)."""
    return _unary("hardswish", _hardswish, "Hardswish", input, inplace)


# ---------------------------------------------------------------------------- silu


def _sigmoid(x):
    """1 / (1 + exp(-x)) in place on one temporary; exp overflows to inf for x < -88 (float32),
    which gives the right limit 0."""
    t = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1
    np.reciprocal(t, out=t)
    return t


def _silu(x):
    t = np.negative(x)  # x / (1 + exp(-x)): four passes, one temporary; -> -0.0 where exp overflows
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1
    np.divide(x, t, out=t)
    return t


def _silu_backward(g, x):
    s = _sigmoid(x)
    return g * (s * (1 + x * (1 - s)))


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (swish; EfficientNet's activation)."""
    return _unary("silu", _silu, "SiLU", input, inplace)


# ---------------------------------------------------------------------------- gelu

# NumPy has no erf; math.erf is exact (it is C's erf) but runs once per element through Python.
# That is ~50 ns an element: fine for the models here (none uses GELU), a C++ kernel would pay
# for transformer-style networks.
_erf_ufunc = np.frompyfunc(math.erf, 1, 1)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _erf(x):
    return _erf_ufunc(x).astype(x.dtype)


def _check_approximate(op, approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{op}: approximate must be 'none' or 'tanh', got {approximate!r}")


def _gelu(x, approximate="none"):
    if approximate == "tanh":
        inner = x.dtype.type(_SQRT_2_OVER_PI) * (x + x.dtype.type(0.044715) * x * x * x)
        return x * (np.tanh(inner) + 1) / 2
    return x * (_erf(x * x.dtype.type(_INV_SQRT_2)) + 1) / 2


def _gelu_backward(g, x, approximate="none"):
    t = x.dtype.type
    if approximate == "tanh":
        inner = t(_SQRT_2_OVER_PI) * (x + t(0.044715) * x * x * x)
        th = np.tanh(inner)
        d_inner = t(_SQRT_2_OVER_PI) * (1 + t(3 * 0.044715) * x * x)
        return g * ((th + 1) / 2 + x * (1 - th * th) * d_inner / 2)
    cdf = (_erf(x * t(_INV_SQRT_2)) + 1) / 2
    pdf = t(_INV_SQRT_2PI) * np.exp(-x * x / 2)
    return g * (cdf + x * pdf)


def gelu(input, approximate="none"):
    """``x * Phi(x)`` with Phi the standard normal CDF (erf); ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` as torch does."""
    _check_approximate("gelu", approximate)
    return _unary("gelu", _gelu, "GELU", input, False, approximate=approximate)


# ---------------------------------------------------------------------------- prelu


def _prelu_weight(op, x, w):
    """weight (1,) or (C,) -> an array broadcasting along dim 1 of x."""
    w = np.asarray(w)
    if w.ndim > 1 or (w.ndim == 1 and w.size not in (1,)
                      and (x.ndim < 2 or w.size != x.shape[1])):
        raise ValueError(f"{op}: Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                         f"{w.size} and channel size = {x.shape[1] if x.ndim >= 2 else 1} (weight of size {w.shape}, "
                         f"input of size {x.shape})")
    if w.size == 1:
        return w.reshape(())
    return w.reshape((1, w.size) + (1,) * (x.ndim - 2))


def _prelu(x, w):
    wb = _prelu_weight("prelu", x, w).astype(x.dtype, copy=False)
    return np.where(x > 0, x, x * wb)


def _prelu_backward(g, x, w, need_x, need_w):
    wb = _prelu_weight("prelu", x, w)
    gx = gw = None
    if need_x:
        gx = np.where(x > 0, g, g * wb.astype(g.dtype, copy=False))
    if need_w:
        contrib = np.where(x > 0, np.zeros((), g.dtype), g * x)
        if w.size == 1:
            gw = np.asarray(contrib.sum(), dtype=w.dtype).reshape(w.shape)
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            gw = contrib.sum(axis=axes).astype(w.dtype, copy=False).reshape(w.shape)
    return gx, gw


def prelu(input, weight):
    """``x if x > 0 else weight * x``, with one learnt slope (``weight`` of shape (1,)) or one per
    channel (shape (C,), broadcast along dim 1)."""
    if _any_tensor(input, weight):
        from .misc import _tensor_arg

        return _ag().PReLU.apply(_tensor_arg(input), _tensor_arg(weight))
    x, w = _as_float("prelu", input=input, weight=weight)
    return _prelu(x, w)

