"""The array math of cnnfast.functional.pointwise: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from .misc import _sigmoid  # (the silu gradient's; the C++ kernel for float32 / float64)


# The forward activations run in cnnfast's C++ kernels (kernels/pointwise: one pass, no temporary,
# threaded, SIMD) for float32/float64; other dtypes use the NumPy formulas (the *_np functions,
# also the reference the kernels are tested against). ``out`` may be ``x`` itself (in place).
_F = (np.float32, np.float64)


def _kernel_ok(x, out):
    return x.dtype.type in _F and (out is None or (out.dtype == x.dtype and out.flags.c_contiguous))


def _relu6(x, out=None):
    if _kernel_ok(x, out):
        return _core.pointwise_forward(x, "clamp", 1.0, 0.0, 0.0, 6.0, out)
    return np.clip(x, x.dtype.type(0), x.dtype.type(6), out=out)


def _relu6_np(x):
    return np.clip(x, x.dtype.type(0), x.dtype.type(6))


def _relu6_backward(g, x):
    return g * ((x > 0) & (x < 6))


def _hardsigmoid(x, out=None):
    """min(max(x + 3, 0), 6) / 6, computed as min(max(x / 6 + 1/2, 0), 1) (equal up to rounding)."""
    if _kernel_ok(x, out):
        return _core.pointwise_forward(x, "clamp", 1 / 6, 0.5, 0.0, 1.0, out)
    t = _hardsigmoid_np(x)
    if out is None:
        return t
    out[...] = t
    return out


def _hardsigmoid_np(x):
    t = x + x.dtype.type(3)  # one temporary, then in place: three passes over memory
    np.clip(t, 0, 6, out=t)
    np.divide(t, 6, out=t)
    return t


def _hardsigmoid_backward(g, x):
    return g * (((x > -3) & (x < 3)) / np.asarray(6, dtype=g.dtype))


def _hardswish(x, out=None):
    """x * min(max(x + 3, 0), 6) / 6, computed as x * min(max(x / 6 + 1/2, 0), 1) (equal up to rounding)."""
    if _kernel_ok(x, out):
        return _core.pointwise_forward(x, "hardswish", 1 / 6, 0.5, 0.0, 1.0, out)
    t = _hardswish_np(x)
    if out is None:
        return t
    out[...] = t
    return out


def _hardswish_np(x):
    t = x + x.dtype.type(3)  # x * min(max(x + 3, 0), 6) / 6 as torch, in place on one temporary
    np.clip(t, 0, 6, out=t)
    np.multiply(t, x, out=t)
    np.divide(t, 6, out=t)
    return t


def _hardswish_backward(g, x):
    mid = g * (x / 3 + np.asarray(0.5, dtype=x.dtype))
    return np.where(x <= -3, np.zeros((), g.dtype), np.where(x < 3, mid, g)).astype(g.dtype, copy=False)


def _silu(x, out=None):
    # float32: the C++ kernel (vector exp: one pass, no temporary); float64: NumPy's formula (the
    # kernel's float64 SiLU is scalar <cmath> exp, slower than NumPy's SIMD exp;
    # bench/activation_kernels.py --dtype float64)
    if x.dtype == np.float32 and _kernel_ok(x, out):
        return _core.pointwise_forward(x, "silu", out=out)
    t = _silu_np(x)
    if out is None:
        return t
    out[...] = t
    return out


def _silu_np(x):
    t = np.negative(x)  # x / (1 + exp(-x)): four passes, one temporary; -> -0.0 where exp overflows
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1
    np.divide(x, t, out=t)
    return t


def _silu_backward(g, x):
    s = _sigmoid(x)
    return g * (s * (1 + x * (1 - s)))


# NumPy has no erf. float32 / float64 run the C++ kernels (kind "erf": float32 a rational
# function within 4e-7 of the exact erf, float64 <cmath> erf); other dtypes, and the reference
# the kernels are tested against, use math.erf (C's erf, exact) once per element through Python
# (~50 ns an element).
_erf_ufunc = np.frompyfunc(math.erf, 1, 1)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


_INV_SQRT_2 = 1 / math.sqrt(2)


_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _erf_np(x):
    return _erf_ufunc(x).astype(x.dtype)


def _erf(x, scale=1.0):
    """erf(scale * x)."""
    if x.dtype.type in _F:
        return _core.pointwise_forward(x, "erf", scale)
    return _erf_np(x * x.dtype.type(scale) if scale != 1.0 else x)


def _check_approximate(op, approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{op}: approximate must be 'none' or 'tanh', got {approximate!r}")


def _gelu(x, approximate="none", out=None):
    if approximate == "none" and _kernel_ok(x, out):
        return _core.pointwise_forward(x, "gelu", out=out)
    t = _gelu_np(x, approximate)
    if out is None:
        return t
    out[...] = t
    return out


def _gelu_np(x, approximate="none"):
    if approximate == "tanh":
        inner = x.dtype.type(_SQRT_2_OVER_PI) * (x + x.dtype.type(0.044715) * x * x * x)
        return x * (np.tanh(inner) + 1) / 2
    return x * (_erf_np(x * x.dtype.type(_INV_SQRT_2)) + 1) / 2


def _gelu_backward(g, x, approximate="none"):
    t = x.dtype.type
    if approximate == "tanh":
        inner = t(_SQRT_2_OVER_PI) * (x + t(0.044715) * x * x * x)
        th = np.tanh(inner)
        d_inner = t(_SQRT_2_OVER_PI) * (1 + t(3 * 0.044715) * x * x)
        return g * ((th + 1) / 2 + x * (1 - th * th) * d_inner / 2)
    cdf = _erf(x, _INV_SQRT_2)
    cdf += 1
    cdf /= 2
    pdf = t(_INV_SQRT_2PI) * np.exp(-x * x / 2)
    return g * (cdf + x * pdf)


def _prelu_weight(op, x, w):
    """weight (1,) or (C,) -> an array broadcasting along dim 1 of x."""
    w = np.asarray(w)
    if w.ndim > 1 or (w.ndim == 1 and w.size not in (1,) and (x.ndim < 2 or w.size != x.shape[1])):
        raise ValueError(
            f"{op}: Mismatch of parameter numbers and input channel size. Found parameter numbers = "
            f"{w.size} and channel size = {x.shape[1] if x.ndim >= 2 else 1} (weight of size {w.shape}, "
            f"input of size {x.shape})"
        )
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
