"""The pointwise activation kernels (kernels/pointwise: clamp, hardswish, silu, gelu, erf) and the
small-batch matrix-vector kernel (kernels/linear) on every compiled ISA, against the NumPy
formulas and the scalar `_ref` twin; the functional activations and the eval paths that use them."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnfast
from cnnfast import _core
from cnnfast._ndarray import pointwise as P
from isa_util import on_ref

DTYPES = [np.float32, np.float64]
# around the vector widths and the 4x unroll (4..64 elements), the 64-element parallel unit, and
# one size large enough to be split across threads
SIZES = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1000, 200_003]


def _tol(dtype):
    return 4 * np.finfo(dtype).eps


def _x(rng, n, dtype):
    x = rng.uniform(-8, 8, n).astype(dtype)
    if n >= 8:  # the clamp's corners exactly
        x[:6] = [-3, 3, 0, -0.0, 6, -6]
    return x


def _close(got, want, dtype, scale):
    """|got - want| within a few ulps of the magnitude of the terms (``scale``, elementwise)."""
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_array_less(np.abs(got.astype(np.float64) - want), _tol(dtype) * (scale + 1e-30) + 1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_clamp_and_hardswish_match_formulas(isa, rng, dtype, n):
    x = _x(rng, n, dtype)
    x64 = x.astype(np.float64)
    for kind, a, b, lo, hi in (
        ("clamp", 1.0, 0.0, 0.0, 6.0),
        ("clamp", 1 / 6, 0.5, 0.0, 1.0),
        ("clamp", 0.2, 0.5, 0.0, 1.0),
        ("hardswish", 1 / 6, 0.5, 0.0, 1.0),
        ("hardswish", 0.5, 1.5, -1.0, 2.0),
    ):
        y = _core.pointwise_forward(x, kind, a, b, lo, hi)
        t = np.clip(x64 * a + b, lo, hi)
        want = t if kind == "clamp" else x64 * t
        _close(y, want, dtype, np.abs(x64 * a) + abs(b) + (0 if kind == "clamp" else np.abs(want)))
        # the scalar twin agrees to rounding (the SIMD body may use an FMA)
        r = on_ref(_core.pointwise_forward, x, kind, a, b, lo, hi)
        _close(y, r.astype(np.float64), dtype, np.abs(x64 * a) + abs(b) + np.abs(want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_matches_formula(isa, rng, dtype):
    x = _x(rng, 1000, dtype) * 12
    want = x.astype(np.float64) / (1 + np.exp(-x.astype(np.float64)))
    y = _core.pointwise_forward(x, "silu")
    # atol: where exp(-x) overflows the result is a signed zero, the float64 formula's a subnormal
    np.testing.assert_allclose(y, want, rtol=8 * np.finfo(dtype).eps, atol=1e-30 if dtype == np.float32 else 1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_inf_and_in_place(isa, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 2.0, -2.0] * 13, dtype)  # 65: vector body and scalar tail
    with np.errstate(invalid="ignore"):
        for kind in ("clamp", "hardswish"):
            y = _core.pointwise_forward(x, kind, 1 / 6, 0.5, 0.0, 1.0)
            t = np.clip(x * dtype(1 / 6) + dtype(0.5), 0, 1)
            want = t if kind == "clamp" else x * t  # -inf * 0 is NaN, as x * relu6(x + 3) / 6
            np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
            np.testing.assert_allclose(y[~np.isnan(y)], want[~np.isnan(want)], rtol=4 * np.finfo(dtype).eps)
    y = _core.pointwise_forward(x, "clamp", 1.0, 0.0, 0.0, 6.0)
    assert np.isnan(y[::5]).all()
    np.testing.assert_array_equal(y[1::5], 6)
    np.testing.assert_array_equal(y[2::5], 0)
    z = x.copy()
    out = _core.pointwise_forward(z, "hardswish", 1 / 6, 0.5, 0.0, 1.0, z)
    assert np.shares_memory(out, z)
    np.testing.assert_allclose(z[3::5], 2 * (2 / 6 + 0.5), rtol=4 * np.finfo(dtype).eps)


_ERF_EXACT = np.frompyfunc(math.erf, 1, 1)
# float32 erf of the SIMD kernels: a rational function within 4e-7 of the exact erf (pointwise.h);
# the ref kernel and float64 use <cmath> erf (a few ulps)
_ERF_ATOL = {np.float32: 4e-7, np.float64: 4 * np.finfo(np.float64).eps}


def _erf64(v):
    return _ERF_EXACT(np.asarray(v, np.float64)).astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_erf_and_gelu_match_exact_erf(isa, rng, dtype, n):
    """kind 'erf' (erf(a x)) and 'gelu' (x (1 + erf(x / sqrt 2)) / 2) against math.erf in float64,
    over the vector body, the 2x unroll and the scalar tail; and against the scalar twin."""
    x = _x(rng, n, dtype)
    if n >= 16:  # beyond the clamp at +-4 and around 0
        x[6:16] = [4.5, -4.5, 10, -10, 1e-3, -1e-3, 1e-30, 0.4, -0.8, 2.5]
    x64 = x.astype(np.float64)
    atol = _ERF_ATOL[dtype]
    for a in (1.0, 1 / math.sqrt(2), -0.3):
        y = _core.pointwise_forward(x, "erf", a)
        assert y.dtype == dtype and y.shape == x.shape
        want = _erf64(x.astype(np.float64) * dtype(a))
        np.testing.assert_allclose(y, want, rtol=0, atol=atol + 4 * np.finfo(dtype).eps * np.abs(want).max(initial=0))
        r = on_ref(_core.pointwise_forward, x, "erf", a)
        np.testing.assert_allclose(y, r, rtol=0, atol=2 * atol)
    y = _core.pointwise_forward(x, "gelu")
    want = x64 * (1 + _erf64(x64 / math.sqrt(2))) / 2
    # the erf's error scaled by |x| / 2, plus rounding of the product
    bound = atol * np.abs(x64) / 2 + 4 * np.finfo(dtype).eps * np.abs(want) + 1e-300
    assert (np.abs(y.astype(np.float64) - want) <= bound).all()
    r = on_ref(_core.pointwise_forward, x, "gelu")
    assert (np.abs(y.astype(np.float64) - r) <= 2 * bound).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_transcendental_kinds_specials_match_ref(isa, dtype):
    """NaN, +-inf and the ends of exp's range give the same results on every ISA as on the scalar
    twin (NaN where it gives NaN); in place works."""
    base = [np.nan, np.inf, -np.inf, 0.0, -0.0, 88.5, -88.5, 87.5, -87.5, 100.0, -100.0, 4.0, -4.0]
    x = np.array(base * 5, dtype)  # 65 elements: vector body and scalar tail
    for kind in ("silu", "gelu", "erf", "sigmoid"):
        with np.errstate(invalid="ignore", over="ignore"):
            y = _core.pointwise_forward(x, kind)
            r = on_ref(_core.pointwise_forward, x, kind)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(r), err_msg=kind)
        inf = np.isinf(r)
        np.testing.assert_array_equal(y[inf], r[inf], err_msg=kind)
        ok = np.isfinite(r)
        # (the float32 SIMD erf's absolute error, times |x| for gelu)
        bound = 1e-6 * np.abs(r[ok]) + 1e-30 + _ERF_ATOL[dtype] * np.abs(x[ok]).clip(1, 10)
        assert (np.abs(y[ok].astype(np.float64) - r[ok]) <= bound).all(), (kind, y, r)
        assert np.isnan(y[0::13]).all()
        z = x.copy()
        assert np.shares_memory(_core.pointwise_forward(z, kind, out=z), z)
        np.testing.assert_array_equal(np.isnan(z), np.isnan(y))
    with np.errstate(invalid="ignore", over="ignore"):
        np.testing.assert_array_equal(_core.pointwise_forward(x, "erf")[1:3], [1, -1])
        np.testing.assert_array_equal(_core.pointwise_forward(x, "gelu")[1], np.inf)
        np.testing.assert_array_equal(_core.pointwise_forward(x, "silu")[1], np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 17, 33, 1000, 200_003])
def test_sigmoid_matches_formula(isa, rng, dtype, n):
    """kind 'sigmoid' against 1 / (1 + exp(-x)) in float64 (a few ulps where the result is above
    1e-30), vector body and scalar tail; F.sigmoid and its gradient on float32 use it."""
    x = _x(rng, n, dtype) * 12
    x64 = x.astype(np.float64)
    want = 1 / (1 + np.exp(-x64))
    y = _core.pointwise_forward(x, "sigmoid")
    assert y.dtype == dtype
    np.testing.assert_allclose(y, want, rtol=8 * np.finfo(dtype).eps, atol=1e-30)
    np.testing.assert_allclose(y, on_ref(_core.pointwise_forward, x, "sigmoid"), rtol=8 * np.finfo(dtype).eps)
    np.testing.assert_allclose(cnnfast.functional.sigmoid(x), want, rtol=8 * np.finfo(dtype).eps, atol=1e-30)
    if n == 1000:
        t = cnnfast.Tensor(x, requires_grad=True)
        cnnfast.functional.sigmoid(t).sum().backward()
        # (float32: 1 - s is 0 where s rounds to 1, as in any float32 sigmoid gradient)
        tol = (1e-5, 1e-7) if dtype == np.float32 else (1e-12, 1e-30)
        np.testing.assert_allclose(t.grad, want * (1 - want), rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 17, 33, 1000, 200_003])
def test_leaky_matches_formula(isa, rng, dtype, n):
    """kind 'leaky' (x if x > 0 else a x) exactly as NumPy's formula, NaN and signed zeros kept, on
    every ISA; F.leaky_relu, nn.LeakyReLU after a conv in eval mode, and its gradient use it."""
    x = _x(rng, n, dtype)
    if n >= 8:
        x[6:8] = [np.nan, -np.inf]
    for a in (0.01, 0.2, -0.5, 1.5):
        want = np.where(x > 0, x, x * dtype(a))
        for got in (_core.pointwise_forward(x, "leaky", a), on_ref(_core.pointwise_forward, x, "leaky", a)):
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(cnnfast.functional.leaky_relu(x, 0.2), np.where(x > 0, x, x * dtype(0.2)))
    if n == 1000:
        t = cnnfast.Tensor(np.nan_to_num(x), requires_grad=True)
        cnnfast.functional.leaky_relu(t, 0.2).sum().backward()
        np.testing.assert_array_equal(t.grad, np.where(t.data > 0, 1, 0.2).astype(dtype))


def test_conv_then_leaky_relu_fuses_in_eval(rng, monkeypatch):
    """nn.Conv2d -> BatchNorm2d -> LeakyReLU(0.2) in eval mode on an ndarray: one conv_bn_act call
    (act 'leaky' with the module's slope), the modules' result."""
    nn = cnnfast.nn
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2)).eval()
    seq[1].running_var[:] = rng.uniform(0.5, 2, 8)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    calls = []
    real = _core.conv_bn_act_forward
    monkeypatch.setattr(_core, "conv_bn_act_forward", lambda *a, **k: calls.append(a[9:11]) or real(*a, **k))
    got = seq(x)
    assert calls == [("leaky", 0.2)]
    np.testing.assert_allclose(got, seq(cnnfast.Tensor(x)).data, rtol=1e-5, atol=1e-6)


def test_gelu_and_erf_functions_use_the_kernels(isa, rng):
    """F.gelu / its gradient / the ONNX Erf on float32 and float64 agree with the exact-erf
    formulas (the NumPy reference, math.erf per element); float16 keeps the NumPy formula."""
    from cnnfast.onnx import _graph

    for dtype in DTYPES:
        x = rng.uniform(-6, 6, (2, 3, 5, 7)).astype(dtype)
        atol = _ERF_ATOL[dtype]
        np.testing.assert_allclose(P._gelu(x), P._gelu_np(x), rtol=4 * np.finfo(dtype).eps, atol=4 * atol)
        np.testing.assert_allclose(
            cnnfast.functional.gelu(x), P._gelu_np(x), rtol=4 * np.finfo(dtype).eps, atol=4 * atol
        )
        np.testing.assert_allclose(_graph._erf(x), P._erf_np(x), rtol=0, atol=2 * atol)
        np.testing.assert_allclose(P._erf(x, 0.5), P._erf_np(x * dtype(0.5)), rtol=0, atol=2 * atol)
        g = rng.standard_normal(x.shape).astype(dtype)
        t = x.astype(np.float64)
        want = g * ((1 + _erf64(t / math.sqrt(2))) / 2 + t * np.exp(-t * t / 2) / math.sqrt(2 * math.pi))
        got = P._gelu_backward(g, x)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=4 * atol)
        y = np.empty_like(x)
        assert P._gelu(x, out=y) is y
        np.testing.assert_array_equal(y, P._gelu(x))
        # the tanh approximation stays the NumPy formula
        np.testing.assert_array_equal(P._gelu(x, "tanh"), P._gelu_np(x, "tanh"))
    x16 = rng.uniform(-4, 4, 40).astype(np.float16)
    assert P._gelu(x16).dtype == np.float16 and P._erf(x16).dtype == np.float16
    np.testing.assert_array_equal(P._gelu(x16), P._gelu_np(x16))


def test_functional_activations_match_numpy_formulas(isa, rng):
    for dtype in DTYPES:
        x = rng.uniform(-8, 8, (2, 5, 7, 9)).astype(dtype)
        for fast, slow in (
            (P._relu6, P._relu6_np),
            (P._hardswish, P._hardswish_np),
            (P._hardsigmoid, P._hardsigmoid_np),
            (P._silu, P._silu_np),
        ):
            want = slow(x)
            np.testing.assert_allclose(fast(x), want, rtol=4 * np.finfo(dtype).eps, atol=8 * np.finfo(dtype).eps)
            y = np.empty_like(x)
            assert fast(x, out=y) is y
            np.testing.assert_allclose(y, want, rtol=4 * np.finfo(dtype).eps, atol=8 * np.finfo(dtype).eps)
        # non-contiguous input: the kernel gets a contiguous copy, the input is untouched
        xt = x.transpose(0, 1, 3, 2)
        np.testing.assert_allclose(
            P._hardswish(xt), P._hardswish_np(xt), rtol=4 * np.finfo(dtype).eps, atol=8 * np.finfo(dtype).eps
        )
    x16 = rng.uniform(-8, 8, 50).astype(np.float16)  # other dtypes: the NumPy formula
    assert P._hardswish(x16).dtype == np.float16


def test_pointwise_errors():
    x = np.zeros(5, np.float32)
    with pytest.raises(
        ValueError, match="kind must be 'clamp', 'hardswish', 'silu', 'gelu', 'erf', 'sigmoid' or 'leaky', got 'tanh'"
    ):
        _core.pointwise_forward(x, "tanh")
    with pytest.raises(ValueError, match="float32 or float64"):
        _core.pointwise_forward(np.zeros(5, np.int32), "clamp")
    with pytest.raises(ValueError, match="out has size"):
        _core.pointwise_forward(x, "clamp", out=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="out has dtype"):
        _core.pointwise_forward(x, "clamp", out=np.zeros(5, np.float64))


# (m, n, k): around the 4-row blocks, the 2-vector unroll of k and its scalar tail, m up to the
# SIMD kernels' limit of 8 and beyond it (ref runs)
LINEAR = [
    (1, 1, 1),
    (1, 5, 3),
    (2, 7, 17),
    (3, 4, 16),
    (4, 9, 33),
    (1, 130, 64),
    (8, 13, 100),
    (9, 6, 40),
    (1, 1280, 512),
    (3, 1000, 129),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mnk", LINEAR, ids=lambda s: "x".join(map(str, s)))
def test_linear_matches_matmul(isa, rng, dtype, mnk):
    m, n, k = mnk
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64).T
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64).T  # the sum of |terms|
    tol = 2 * k * np.finfo(dtype).eps
    for bb in (None, bias):
        y = _core.linear_forward(a, b, bb)
        w = want if bb is None else want + bias
        assert y.shape == (m, n) and y.dtype == dtype
        assert (np.abs(y - w) <= tol * (scale + (0 if bb is None else np.abs(bias))) + 1e-300).all()


def test_linear_errors():
    a, b = np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"input of size \(2, 5\) and weight of size \(4, 3\)"):
        _core.linear_forward(np.zeros((2, 5), np.float32), b)
    with pytest.raises(ValueError, match="bias of size"):
        _core.linear_forward(a, b, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="weight has dtype"):
        _core.linear_forward(a, b.astype(np.float64))
    with pytest.raises(ValueError, match="bias has dtype"):
        _core.linear_forward(a, b, np.zeros(4, np.float64))


@pytest.mark.parametrize("m", [1, 3, 4, 5, 16])
def test_linear_layer_small_batch(rng, m):
    """nn.Linear at small batches (matrix-vector kernel) and larger ones (GEMM) agree with NumPy."""
    lin = cnnfast.nn.Linear(70, 33)
    x = rng.standard_normal((m, 70)).astype(np.float32)
    want = x.astype(np.float64) @ lin.weight.data.T.astype(np.float64) + lin.bias.data
    np.testing.assert_allclose(lin(x), want, rtol=1e-5, atol=1e-5)


def test_se_block_eval_matches_unfused(rng):
    """A squeeze-and-excitation shaped Sequential (1x1 convs on a 1x1 plane, with BatchNorm and the
    activations the eval path fuses) gives the same result on ndarrays (fused, matrix-vector) as on
    Tensors (module by module), for batches on both sides of the matrix-vector limit."""
    nn = cnnfast.nn
    seq = nn.Sequential(
        nn.Conv2d(24, 8, 1),
        nn.ReLU(),
        nn.Conv2d(8, 24, 1),
        nn.Hardsigmoid(),
        nn.Conv2d(24, 16, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.Hardswish(),
        nn.Conv2d(16, 16, 1),
        nn.ReLU6(),
        nn.Conv2d(16, 12, 1, padding="same"),
        nn.SiLU(),
    )
    bn = seq[5]
    bn.running_mean[...] = rng.normal(0, 0.3, 16)
    bn.running_var[...] = rng.uniform(0.5, 2, 16)
    seq.eval()
    for n in (1, 3, 4, 7):
        x = rng.standard_normal((n, 24, 1, 1)).astype(np.float32)
        got = seq(x)
        want = seq(cnnfast.Tensor(x)).data
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _conv_bn_act_reference(x, w, b, stride, pad, groups, bn, act):
    """conv2d -> BatchNorm (running statistics) -> activation, in float64, module by module."""
    y = cnnfast.functional.conv2d(
        x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64), stride, pad, 1, groups
    )
    if bn is not None:
        mean, var, gamma, beta, eps = bn
        s = (1.0 if gamma is None else gamma.astype(np.float64)) / np.sqrt(var.astype(np.float64) + eps)
        y = (y - mean.astype(np.float64).reshape(1, -1, 1, 1)) * np.reshape(s, (1, -1, 1, 1))
        if beta is not None:
            y = y + beta.astype(np.float64).reshape(1, -1, 1, 1)
    return {
        "none": lambda v: v,
        "relu": lambda v: np.maximum(v, 0),
        "relu6": P._relu6_np,
        "hardswish": P._hardswish_np,
        "hardsigmoid": P._hardsigmoid_np,
        "silu": P._silu_np,
        "gelu": P._gelu_np,
        "leaky": lambda v: np.where(v > 0, v, 0.1 * v),
    }[act](y)


_ACT_ARGS = {
    "none": ("none",),
    "relu": ("relu",),
    "relu6": ("clamp", 1.0, 0.0, 0.0, 6.0),
    "hardswish": ("hardswish", 1 / 6, 0.5, 0.0, 1.0),
    "hardsigmoid": ("clamp", 1 / 6, 0.5, 0.0, 1.0),
    "silu": ("silu",),
    "gelu": ("gelu",),
    "leaky": ("leaky", 0.1),
}


def _conv_bn_operands(rng, case, dtype, bn_dtype):
    """Input, weight, bias and a BatchNorm tuple (statistics in ``bn_dtype``) for a test case."""
    xs, ws = case[0], case[1]
    x = rng.standard_normal(xs).astype(dtype)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    o = ws[0]
    bn = (
        rng.normal(0, 0.3, o).astype(bn_dtype),
        rng.uniform(0.5, 2, o).astype(bn_dtype),
        rng.uniform(0.5, 1.5, o).astype(bn_dtype),
        rng.normal(0, 0.3, o).astype(bn_dtype),
        1e-5,
    )
    return x, w, b, bn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "case",
    [
        # (x shape, w shape, stride, pad, groups): BN folded (small weights) / applied to the output
        # (weights larger than the output) / 1x1 conv on a 1x1 plane (matrix-vector, and the GEMM above 4 images)
        ((2, 4, 9, 8), (6, 4, 3, 3), (1, 1), (1, 1), 1),
        ((1, 32, 3, 3), (48, 32, 3, 3), (2, 2), (1, 1), 1),
        ((3, 6, 7, 7), (6, 1, 3, 3), (1, 1), (1, 1), 6),
        ((1, 40, 1, 1), (24, 40, 1, 1), (1, 1), (0, 0), 1),
        ((4, 40, 1, 1), (24, 40, 1, 1), (1, 1), (0, 0), 1),
        ((6, 40, 1, 1), (24, 40, 1, 1), (1, 1), (0, 0), 1),
    ],
    ids=["fold", "no_fold", "depthwise", "matvec_n1", "matvec_n4", "gemm_n6"],
)
def test_conv_bn_act_matches_modules(rng, dtype, case):
    _xs, _ws, stride, pad, groups = case
    x, w, b, bn = _conv_bn_operands(rng, case, dtype, np.float32)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for bias in (None, b):
        for bnt in (None, bn, bn[:2] + (None, None, 1e-3)):
            for act, args in _ACT_ARGS.items():
                got = _core.conv_bn_act_forward(x, w, bias, stride, pad, (1, 1), groups, False, bnt, *args)
                want = _conv_bn_act_reference(x, w, bias, stride, pad, groups, bnt, act)
                assert got.dtype == dtype and got.shape == want.shape
                np.testing.assert_allclose(
                    got,
                    want,
                    rtol=tol,
                    atol=tol * max(1.0, np.abs(want).max()),
                    err_msg=f"bias={bias is not None} bn={bnt is not None} act={act}",
                )


def test_conv_bn_act_errors():
    x = np.zeros((1, 4, 5, 5), np.float32)
    w = np.zeros((6, 4, 3, 3), np.float32)
    ok = (np.zeros(6, np.float32), np.ones(6, np.float32), None, None, 1e-5)
    with pytest.raises(ValueError, match=r"running_var of size \(5,\) does not match the conv's 6 output channels"):
        _core.conv_bn_act_forward(
            x, w, None, (1, 1), (1, 1), (1, 1), 1, False, (ok[0], np.ones(5, np.float32)) + ok[2:], "none"
        )
    with pytest.raises(ValueError, match="act must be"):
        _core.conv_bn_act_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1, False, ok, "erf")
    with pytest.raises(ValueError, match="input has dtype float64 but weight has dtype float32"):
        _core.conv_bn_act_forward(x.astype(np.float64), w, None, (1, 1), (1, 1), (1, 1), 1, False, None, "none")
    with pytest.raises(ValueError, match="channels"):  # the conv's own shape check
        _core.conv_bn_act_forward(
            np.zeros((1, 3, 5, 5), np.float32), w, None, (1, 1), (1, 1), (1, 1), 1, False, None, "relu"
        )


# Shapes that reach each forward kernel taking the fused activation (Conv2dShape::act: the 1x1
# kernel with and without its dot-product tail pixels, the depthwise channels-as-lanes and row
# kernels at stride 1 and 2) and kernels that leave it to the pass after them (3x3 dense, 1x1 on a
# plane narrower than a vector, grouped): (x shape, w shape, stride, pad, groups, expected kernel
# suffix on AVX2 / AVX-512 or None where the choice is not this test's business).
_EPILOGUE_CASES = {
    "pw_28": ((2, 24, 28, 28), (40, 24, 1, 1), 1, 0, 1, "_pointwise"),
    "pw_7_tail": ((1, 96, 7, 7), (64, 96, 1, 1), 1, 0, 1, "_pointwise"),
    "pw_14_tail": ((1, 256, 14, 14), (24, 256, 1, 1), 1, 0, 1, "_pointwise"),
    "dw_lanes_5x5": ((1, 40, 14, 14), (40, 1, 5, 5), 1, 2, 40, "_depthwise"),
    "dw_lanes_s2": ((2, 24, 13, 13), (24, 1, 3, 3), 2, 1, 24, "_depthwise"),
    "dw_rows_s1": ((1, 8, 40, 40), (8, 1, 3, 3), 1, 1, 8, "_depthwise"),
    "dw_rows_s2": ((1, 8, 70, 70), (8, 1, 3, 3), 2, 1, 8, "_depthwise"),
    "dense_3x3": ((2, 8, 12, 12), (16, 8, 3, 3), 1, 1, 1, None),
    "pw_3x3_plane": ((2, 16, 3, 3), (8, 16, 1, 1), 1, 0, 1, None),
    "grouped": ((1, 16, 10, 10), (16, 4, 3, 3), 1, 1, 4, None),
}


def _act_reference(v, act):
    return {
        "relu6": P._relu6_np,
        "hardswish": P._hardswish_np,
        "hardsigmoid": P._hardsigmoid_np,
        "silu": P._silu_np,
        "gelu": P._gelu_np,
        "leaky": lambda t: np.where(t > 0, t, 0.1 * t),
    }[act](v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(_EPILOGUE_CASES))
def test_conv_fused_activation_epilogues(isa, rng, dtype, case):
    """conv_bn_act_forward's clamp / hardswish (and float32 SiLU) run in the conv kernel's store where the kernel takes
    them: the output must equal the conv followed by the activation -- applied exactly once
    (hardswish and hardsigmoid are not idempotent), after ReLU when the conv has one -- with the
    BatchNorm folded or absent, on every ISA, NaN kept."""
    xs, ws, s, pad, groups, kernel = _EPILOGUE_CASES[case]
    x = rng.standard_normal(xs).astype(dtype) * 3
    x.flat[5] = np.nan
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    o = ws[0]
    bn = (np.zeros(o, dtype), rng.uniform(0.5, 2, o).astype(dtype), None, rng.normal(0, 0.3, o).astype(dtype), 1e-5)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    key = "conv2d_fwd_f32" if dtype == np.float32 else "conv2d_fwd_f64"
    for bnt in (None, bn):
        for conv_relu in (False, True) if bnt is None else (False,):  # (the conv's own ReLU comes before a BN)
            for act in ("relu6", "hardswish", "hardsigmoid", "silu"):
                got = _core.conv_bn_act_forward(
                    x, w, b, (s, s), (pad, pad), (1, 1), groups, conv_relu, bnt, *_ACT_ARGS[act]
                )
                if kernel is not None and isa != "ref":
                    assert cnnfast.runtime_info()["last_kernels"][key].endswith(kernel), case
                want = _conv_bn_act_reference(x, w, b, (s, s), (pad, pad), groups, bnt, "none")
                if conv_relu:
                    want = np.where(want < 0, 0, want)
                want = _act_reference(want, act)
                assert got.dtype == dtype and got.shape == want.shape
                assert np.array_equal(np.isnan(got), np.isnan(want)), f"{case} {act}: NaN positions differ"
                ok = ~np.isnan(want)
                np.testing.assert_allclose(
                    got[ok], want[ok], rtol=tol, atol=tol * max(1.0, np.abs(want[ok]).max()), err_msg=f"{case} {act}"
                )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "case",
    [
        ((2, 4, 9, 8), (6, 4, 3, 3), (1, 1), (1, 1), 1),  # BN folded
        ((1, 32, 3, 3), (48, 32, 3, 3), (2, 2), (1, 1), 1),  # BN applied to the output
        ((3, 6, 7, 7), (6, 1, 3, 3), (1, 1), (1, 1), 6),  # depthwise
        ((1, 40, 1, 1), (24, 40, 1, 1), (1, 1), (0, 0), 1),  # matrix-vector
        ((2, 64, 20, 20), (64, 64, 1, 1), (1, 1), (0, 0), 1),  # several runs of the pass
    ],
    ids=["fold", "no_fold", "depthwise", "matvec", "pointwise"],
)
def test_conv_bn_act_residual(isa, rng, dtype, case):
    """conv_bn_act_forward(..., residual=r): act(bn(conv(x)) + r) -- the activation after the sum,
    never in the conv kernel (a ResNet block's shortcut) -- with the conv's own ReLU before the BN."""
    _xs, _ws, stride, pad, groups = case
    x, w, b, bn = _conv_bn_operands(rng, case, dtype, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    shape = _conv_bn_act_reference(x, w, b, stride, pad, groups, None, "none").shape
    r = rng.standard_normal(shape).astype(dtype) * 2
    r_before = r.copy()
    for bnt in (None, bn):
        for act, args in _ACT_ARGS.items():
            got = _core.conv_bn_act_forward(x, w, b, stride, pad, (1, 1), groups, False, bnt, *args, residual=r)
            y = _conv_bn_act_reference(x, w, b, stride, pad, groups, bnt, "none") + r
            want = y if act == "none" else np.maximum(y, 0) if act == "relu" else _act_reference(y, act)
            np.testing.assert_allclose(
                got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()), err_msg=f"bn={bnt is not None} {act}"
            )
    # the conv's own ReLU (an imported Conv+Relu) comes before the sum
    got = _core.conv_bn_act_forward(x, w, b, stride, pad, (1, 1), groups, True, None, "relu", residual=r)
    y = np.maximum(_conv_bn_act_reference(x, w, b, stride, pad, groups, None, "none"), 0) + r
    np.testing.assert_allclose(got, np.maximum(y, 0), rtol=tol, atol=tol * max(1.0, np.abs(y).max()))
    np.testing.assert_array_equal(r, r_before)  # the residual is only read


def test_conv_bn_act_residual_errors():
    x = np.zeros((1, 4, 5, 5), np.float32)
    w = np.zeros((6, 4, 3, 3), np.float32)
    args = (x, w, None, (1, 1), (1, 1), (1, 1), 1, False, None, "relu")
    with pytest.raises(
        ValueError, match=r"residual of size \(1, 6, 5, 4\) does not match the output's size \(1, 6, 5, 5\)"
    ):
        _core.conv_bn_act_forward(*args, residual=np.zeros((1, 6, 5, 4), np.float32))
    with pytest.raises(ValueError, match="residual has dtype float64 but the output has dtype float32"):
        _core.conv_bn_act_forward(*args, residual=np.zeros((1, 6, 5, 5)))
