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
        xp, (n, c, R, S, OH, OW), (st[0], st[1], st[2] * dh, st[3] * dw, st[2] * sh, st[3] * sw), writeable=False
    )


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
        out[:, g * Kg : (g + 1) * Kg] = np.einsum(
            "ncrsij,kcrs->nkij", win[:, g * Cg : (g + 1) * Cg], w[g * Kg : (g + 1) * Kg], optimize=True
        )
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
                gxp[:, cs, h0 : h0 + stride[0] * OH : stride[0], w0 : w0 + stride[1] * OW : stride[1]] += cols[
                    :, :, r, s
                ]
    gx = gxp[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W]
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


# ----------------------------------------------------------------------------------------------
# Tolerances derived from the sums being computed.
#
# Each conv2d output element is a sum of L products (forward: C/groups*R*S, + the bias; grad_input:
# at most K/groups*R*S; grad_weight and grad_bias: N*OH*OW). Summed in floating point in any order
# (vector lanes, blocks, FMA contraction, threads), the error is bounded by gamma_L * sum|terms|
# (gamma_L = L*u / (1 - L*u), u = eps/2: Higham, "Accuracy and Stability of Numerical Algorithms",
# 2nd ed., section 4.2), and for rounding errors of random sign -- the tests' random inputs -- it
# grows like sqrt(L) * u * sum|terms| (ibid., section 2.8). So an element passes when
#
#     |got - ref| <= SUM_TOL_C * eps(dtype) * sqrt(L) * sum|terms|,
#
# with ref and sum|terms| computed in float64 (the same convolution over |x|, |w|, |b| or |gy|).
# Unlike a fixed rtol/atol this holds for every summation order a CPU's vector width picks, and is
# tight where the terms are small: an element whose terms are all zero must come out exactly 0.
# SUM_TOL_C = 4: with eps = 2u that is 8 * u * sqrt(L) * sum|terms|, at least the worst-case bound
# gamma_L for L <= 64 terms. Measured over every conv test (test_kernels_conv2d*.py,
# test_functional.py) on AVX-512, AVX2 and ref, float32 and float64, on a Sapphire Rapids Xeon, the
# largest |got - ref| / (eps * sqrt(L) * sum|terms|) is 0.83 (Winograd excluded: its transforms round
# values larger than the products, test_kernels_conv2d_winograd.py has its own c), a margin of ~5,
# while one element off by a relative 1e-3 in a LeNet-sized layer fails the bound several times
# over (test_kernels_conv2d_direct.py::test_sum_tolerance_catches_a_small_relative_error).
SUM_TOL_C = 4.0
# Largest |got - ref| / (eps * sqrt(L) * sum|terms|) seen by assert_sum_close in this process (what
# SUM_TOL_C was chosen from: run the conv tests and print it).
worst_ratio = [0.0]


def conv2d_terms(x, w, b=None, gy=None, stride=1, padding=0, dilation=1, groups=1, relu=False):
    """Float64 oracle of every conv2d pass with, per element, the sum of |terms| and the length L.

    Returns {"y": (ref, abs_sum, L), and with gy: "gx": ..., "gw": ..., "gb": ...}. `relu` applies
    max(., 0) to the forward reference (it never increases an error, so the bound is unchanged).
    """
    f = np.float64
    x, w = np.asarray(x, f), np.asarray(w, f)
    b = None if b is None else np.asarray(b, f)
    args = (stride, padding, dilation, groups)
    K, Cg, R, S = w.shape
    y = conv2d(x, w, b, *args)
    if relu:
        y = np.maximum(y, 0)
    ya = conv2d(np.abs(x), np.abs(w), None if b is None else np.abs(b), *args)
    out = {"y": (y, ya, Cg * R * S + (b is not None))}
    if gy is not None:
        gy = np.asarray(gy, f)
        gx, gw, gb = conv2d_backward(gy, x, w, *args)
        gxa, gwa, gba = conv2d_backward(np.abs(gy), np.abs(x), np.abs(w), *args)
        n_out = gy.shape[0] * gy.shape[2] * gy.shape[3]
        out.update(gx=(gx, gxa, (K // groups) * R * S), gw=(gw, gwa, n_out), gb=(gb, gba, n_out))
    return out


def sum_tolerance(abs_sum, length, dtype, c=None):
    """Elementwise bound c * eps(dtype) * sqrt(length) * abs_sum (see SUM_TOL_C)."""
    c = SUM_TOL_C if c is None else c
    return c * np.finfo(dtype).eps * np.sqrt(max(int(length), 1)) * np.asarray(abs_sum, np.float64)


def assert_sum_close(got, ref, abs_sum, length, dtype=None, c=None, err_msg=""):
    """Assert |got - ref| <= sum_tolerance(...) elementwise; NaN must match NaN in ref.

    dtype: the precision the kernel computed in (default got's). On failure names the worst
    element, its value, the reference, the sum of |terms| and the bound.
    """
    got = np.asarray(got)
    ref = np.asarray(ref, np.float64)
    dtype = got.dtype if dtype is None else np.dtype(dtype)
    assert got.shape == ref.shape, f"{err_msg}: shape {got.shape} != {ref.shape}"
    tol = np.broadcast_to(sum_tolerance(abs_sum, length, dtype, c), ref.shape)
    g = got.astype(np.float64)
    both_nan = np.isnan(g) & np.isnan(ref)
    err = np.where(both_nan, 0.0, np.abs(g - ref))
    bad = ~((err <= tol) | both_nan)  # NaN on one side only fails
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(err > 0, err / (tol / (SUM_TOL_C if c is None else c)), 0.0)
    r = r[np.isfinite(r)]
    if r.size:
        worst_ratio[0] = max(worst_ratio[0], float(r.max()))
    if bad.any():
        ratio = np.where(bad, err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0)
        ratio = np.where(np.isnan(ratio), np.inf, ratio)
        i = np.unravel_index(int(np.argmax(ratio)), ref.shape)
        raise AssertionError(
            f"{err_msg}: {int(bad.sum())} of {ref.size} elements outside the sum tolerance; worst at {i}: "
            f"got {g[i]!r}, want {ref[i]!r}, |error| {err[i]:.3g} > bound {tol[i]:.3g} "
            f"(c={SUM_TOL_C if c is None else c} * eps({dtype}) * sqrt(L={length}) * sum|terms|={np.asarray(abs_sum)[i] if np.ndim(abs_sum) else abs_sum:.4g})"
        )


def assert_conv_close(got, terms, dtype=None, c=None, err_msg=""):
    """got: {"y"/"gx"/"gw"/"gb": array or None}; terms: conv2d_terms(...). Checks every key in both."""
    for key, (ref_, abs_sum, length) in terms.items():
        if key in got and got[key] is not None:
            assert_sum_close(got[key], ref_, abs_sum, length, dtype, c, err_msg=f"{err_msg} {key}".strip())
