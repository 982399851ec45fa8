"""cnnfast.functional on ndarrays vs the NumPy reference (tests/reference.py), on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import cnnfast
import reference as ref

TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}

CONV_CASES = [
    # (N, C, H, W, K, (R, S), stride, padding, dilation, groups)
    (2, 3, 9, 8, 4, (3, 3), 1, 1, 1, 1),
    (1, 4, 7, 7, 6, (2, 2), 2, 0, 1, 2),  # even kernel, stride, groups
    (2, 6, 10, 9, 6, (3, 3), 1, 1, 1, 6),  # depthwise
    (3, 6, 11, 5, 12, (3, 2), (2, 1), (1, 0), (2, 1), 3),  # rectangular, dilation, asymmetric args
    (1, 1, 5, 5, 1, (5, 5), 1, 0, 1, 1),  # kernel == input
    (2, 17, 6, 6, 9, (1, 1), 1, 0, 1, 1),  # 1x1, channels = vector width + 1
    (1, 2, 4, 4, 3, (3, 3), 3, 2, 1, 1),  # stride > kernel, padding larger than half
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_backward_matches_reference(isa, rng, case, dtype):
    N, C, H, W, K, (R, S), stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    y = cnnfast.conv2d(x, w, b, stride, padding, dilation, groups)
    assert y.dtype == dtype
    gy = rng.standard_normal(y.shape).astype(dtype)
    got = cnnfast.conv2d_backward(gy, x, w, stride, padding, dilation, groups)
    terms = ref.conv2d_terms(x, w, b, gy, stride, padding, dilation, groups)  # float64, with the |terms| bound
    for g, key in zip(got, ("gx", "gw", "gb")):
        assert g.dtype == dtype and g.shape == terms[key][0].shape
    ref.assert_conv_close(dict(zip(("y", "gx", "gw", "gb"), (y,) + tuple(got))), terms, dtype)
    # fused conv + bias + relu forward
    np.testing.assert_allclose(
        cnnfast.conv2d_relu(x, w, b, stride, padding, dilation, groups), np.maximum(y, 0), **TOL[dtype]
    )


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_conv2d_hypothesis(data):
    groups = data.draw(st.integers(1, 3))
    C = groups * data.draw(st.integers(1, 3))
    K = groups * data.draw(st.integers(1, 3))
    R, S = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    dh, dw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    ph, pw = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    H = data.draw(st.integers(max(1, dh * (R - 1) + 1 - 2 * ph), 10))
    W = data.draw(st.integers(max(1, dw * (S - 1) + 1 - 2 * pw), 10))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    N = data.draw(st.integers(1, 3))
    r = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = r.standard_normal((N, C, H, W))
    w = r.standard_normal((K, C // groups, R, S))
    args = ((sh, sw), (ph, pw), (dh, dw), groups)
    y = cnnfast.conv2d(x, w, None, *args)
    np.testing.assert_allclose(y, ref.conv2d(x, w, None, *args), rtol=1e-10, atol=1e-10)
    gy = r.standard_normal(y.shape)
    for g, want in zip(
        cnnfast.conv2d_backward(gy, x, w, *args, output_mask=(True, True, False))[:2],
        ref.conv2d_backward(gy, x, w, *args)[:2],
    ):
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, w_shape, args",
    [
        # grouped layers whose per-group reduction C/g*R*S is shorter than the GEMM register tile:
        # the tile's weight reads once ran past the end of w (found by the ASan run in CI)
        ((3, 6, 1, 1), (3, 2, 1, 1), ((3, 1), (0, 3), (2, 2), 3)),
        ((2, 4, 5, 5), (4, 1, 1, 1), (1, 0, 1, 4)),
        ((2, 6, 4, 4), (9, 2, 1, 2), (1, 1, 1, 3)),
    ],
)
def test_conv2d_backward_short_grouped_reductions(dtype, x_shape, w_shape, args, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = cnnfast.conv2d(x, w, None, *args)
    gy = rng.standard_normal(y.shape).astype(dtype)
    got = cnnfast.conv2d_backward(gy, x, w, *args, output_mask=(True, True, False))[:2]
    ref.assert_conv_close({"gx": got[0], "gw": got[1]}, ref.conv2d_terms(x, w, None, gy, *args), dtype)


def test_lecture_worked_example():
    """Slides 7-9: the 4x4 image and the 1..9 kernel give 142, 189, 225, 230 (stride 1)."""
    image = np.array([[4, 2, 0, 0], [3, 2, 3, 8], [2, 1, 8, 5], [4, 6, 8, 2]])
    kernel = np.arange(1, 10).reshape(3, 3)
    out = cnnfast.conv2d(image[None], kernel[None, None])  # single (C, H, W) image
    np.testing.assert_array_equal(out, [[[142, 189], [225, 230]]])
    assert out.dtype == np.float32  # integers compute in float32
    # The yellow entry, written out as on slide 8.
    assert 4 * 1 + 2 * 2 + 0 * 3 + 3 * 4 + 2 * 5 + 3 * 6 + 2 * 7 + 1 * 8 + 8 * 9 == out[0, 0, 0]
    # Stride 2 (slide 27) keeps only the top-left window; zero padding (slide 28) keeps the size.
    np.testing.assert_array_equal(cnnfast.conv2d(image[None], kernel[None, None], stride=2), [[[142]]])
    padded = cnnfast.conv2d(image[None], kernel[None, None], padding=1)
    assert padded.shape == (1, 4, 4)
    np.testing.assert_array_equal(padded[0, 1:3, 1:3], [[142, 189], [225, 230]])
    # The corner sees zeros outside the image: 5*4 + 6*2 + 8*3 + 9*2.
    assert padded[0, 0, 0] == 5 * 4 + 6 * 2 + 8 * 3 + 9 * 2


@pytest.mark.parametrize("kernel", [(3, 3), (2, 2), (4, 1), (2, 5)])
@pytest.mark.parametrize("dilation", [1, 2])
def test_padding_same_and_valid(rng, kernel, dilation):
    x = rng.standard_normal((2, 3, 7, 10))
    w = rng.standard_normal((4, 3) + kernel)
    y = cnnfast.conv2d(x, w, padding="same", dilation=dilation)
    assert y.shape == (2, 4, 7, 10)
    # 'same' = explicit padding, the odd extra row/column at the bottom/right (PyTorch's rule).
    th, tw = dilation * (kernel[0] - 1), dilation * (kernel[1] - 1)
    xp = np.pad(x, ((0, 0), (0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2)))
    np.testing.assert_allclose(y, ref.conv2d(xp, w, dilation=dilation), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        cnnfast.conv2d(x, w, padding="valid", dilation=dilation),
        ref.conv2d(x, w, dilation=dilation),
        rtol=1e-10,
        atol=1e-10,
    )
    gy = rng.standard_normal(y.shape)
    gi, gw, gb = cnnfast.conv2d_backward(gy, x, w, padding="same", dilation=dilation)
    rgi, rgw, rgb = ref.conv2d_backward(gy, xp, w, dilation=dilation)
    np.testing.assert_allclose(gi, rgi[:, :, th // 2 : th // 2 + 7, tw // 2 : tw // 2 + 10], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, rgw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, rgb, rtol=1e-10, atol=1e-10)


def test_conv2d_input_and_weight_match_backward(rng):
    x = rng.standard_normal((2, 4, 9, 9))
    w = rng.standard_normal((6, 2, 3, 3))
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    gy = rng.standard_normal(cnnfast.conv2d_output_shape(x.shape, w.shape, **kw))
    gi, gw, _ = cnnfast.conv2d_backward(gy, x, w, **kw)
    np.testing.assert_allclose(cnnfast.conv2d_input(x.shape, w, gy, **kw), gi)
    np.testing.assert_allclose(cnnfast.conv2d_weight(x, w.shape, gy, **kw), gw)


def test_output_shape_helpers_agree_with_ops(rng):
    x = rng.standard_normal((2, 3, 13, 11)).astype(np.float32)
    w = np.ones((5, 3, 4, 3), np.float32)
    for kw in [dict(), dict(stride=2, padding=1), dict(stride=(3, 1), dilation=2, padding=(2, 1))]:
        assert cnnfast.conv2d_output_shape(x.shape, w.shape, **kw) == cnnfast.conv2d(x, w, **kw).shape
    assert cnnfast.conv2d_output_shape(x.shape[1:], w.shape, padding="same") == (5, 13, 11)
    for kw in [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), dilation=2),
    ]:
        assert cnnfast.max_pool2d_output_shape(x.shape, **kw) == cnnfast.max_pool2d(x, **kw).shape


def test_dtype_rules_and_layouts(rng):
    x64 = rng.standard_normal((1, 2, 6, 6))
    w64 = rng.standard_normal((3, 2, 3, 3))
    want = ref.conv2d(x64, w64)
    assert cnnfast.conv2d(x64, w64).dtype == np.float64
    assert cnnfast.conv2d(x64.astype(np.float32), w64).dtype == np.float64  # float64 anywhere wins
    assert cnnfast.conv2d(x64.astype(np.float32), w64.astype(np.float32)).dtype == np.float32
    assert cnnfast.conv2d(x64.astype(np.float16), w64.astype(np.float16)).dtype == np.float32
    xi = (x64 * 10).astype(np.int16)
    np.testing.assert_allclose(
        cnnfast.conv2d(xi, w64.astype(np.float32)), ref.conv2d(xi.astype(np.float64), w64), rtol=1e-4, atol=1e-3
    )
    # Non-contiguous views (a transposed array, a strided slice) give the same answer.
    xt = np.ascontiguousarray(x64.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    assert not xt.flags.c_contiguous
    np.testing.assert_allclose(cnnfast.conv2d(xt, w64), want, rtol=1e-12)
    big = rng.standard_normal((1, 2, 12, 12))
    np.testing.assert_allclose(
        cnnfast.conv2d(big[:, :, ::2, ::2], w64), ref.conv2d(big[:, :, ::2, ::2].copy(), w64), rtol=1e-12
    )
    # Nested lists work like arrays.
    np.testing.assert_allclose(cnnfast.relu([[-1.0, 2.0]]), [[0.0, 2.0]])
    # Zero-size batch.
    assert cnnfast.conv2d(np.zeros((0, 2, 6, 6), np.float32), w64.astype(np.float32)).shape == (0, 3, 4, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "cfg",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
        dict(kernel_size=2, stride=3, ceil_mode=True),
    ],
)
def test_max_pool2d_matches_reference(isa, rng, cfg, dtype):
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    x[0, 0, 1, 1] = np.nan
    x[1, 2, :4, :4] = 1.5  # ties: the first index wins
    y, idx = cnnfast.max_pool2d(x, return_indices=True, **cfg)
    ry, ridx = ref.max_pool2d(x, **cfg)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(cnnfast.max_pool2d(x, **cfg), ry)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(
        cnnfast.max_pool2d_backward(gy, x, idx, **cfg), ref.max_pool2d_backward(gy, idx, x.shape), **TOL[dtype]
    )
    # Only the input shape is needed.
    np.testing.assert_allclose(
        cnnfast.max_pool2d_backward(gy, x.shape, idx, **cfg), ref.max_pool2d_backward(gy, idx, x.shape), **TOL[dtype]
    )


def test_max_pool2d_unbatched_and_semantics():
    x = np.array([[[1.0, 3.0, 3.0, 0.0], [2.0, -np.inf, 7.0, 7.0], [np.nan, 0.0, 1.0, 2.0], [0.0, 5.0, 2.0, 2.0]]])
    y, idx = cnnfast.max_pool2d(x, 2, return_indices=True)
    assert y.shape == (1, 2, 2)
    np.testing.assert_array_equal(y[0], [[3.0, 7.0], [np.nan, 2.0]])
    np.testing.assert_array_equal(idx[0], [[1, 6], [8, 11]])  # first of the tied maxima; NaN wins
    gx = cnnfast.max_pool2d_backward(np.ones((1, 2, 2)), x, idx, 2)
    assert gx.shape == x.shape and gx.sum() == 4 and gx[0, 0, 1] == 1 and gx[0, 2, 0] == 1


def test_relu_forward_backward(isa, rng):
    x = rng.standard_normal(1001).astype(np.float32)
    x[:4] = [0.0, -0.0, np.nan, -np.inf]
    y = cnnfast.relu(x)
    np.testing.assert_array_equal(y, ref.relu(x))
    gy = rng.standard_normal(x.shape).astype(np.float32)
    gx = cnnfast.relu_backward(gy, x)
    assert gx[0] == 0 and gx[1] == 0  # gradient exactly 0 at 0, as torch.relu
    np.testing.assert_array_equal(gx, ref.relu_backward(gy, x))
    out = np.empty_like(x)
    assert cnnfast.relu(x, out=out) is out
    np.testing.assert_array_equal(out, y)
    z = x.copy()
    assert cnnfast.relu_(z) is z
    np.testing.assert_array_equal(z, y)


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def test_backward_kernels_match_finite_differences(rng):
    """float64 central differences of L = sum(gy * op(x)) against the backward kernels."""
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    kw = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    gy = rng.standard_normal(cnnfast.conv2d_output_shape(x.shape, w.shape, **kw))
    loss = lambda: float(np.sum(gy * cnnfast.conv2d(x, w, b, **kw)))  # noqa: E731
    gi, gw, gb = cnnfast.conv2d_backward(gy, x, w, **kw)
    np.testing.assert_allclose(gi, _numeric_grad(loss, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gw, _numeric_grad(loss, w), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gb, _numeric_grad(loss, b), rtol=1e-6, atol=1e-6)

    xp = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) / 10.0  # distinct values: no ties
    y, idx = cnnfast.max_pool2d(xp, 3, 2, 1, return_indices=True)
    gyp = rng.standard_normal(y.shape)
    lossp = lambda: float(np.sum(gyp * cnnfast.max_pool2d(xp, 3, 2, 1)))  # noqa: E731
    np.testing.assert_allclose(
        cnnfast.max_pool2d_backward(gyp, xp, idx, 3, 2, 1), _numeric_grad(lossp, xp, 1e-4), atol=1e-6
    )

    xr = rng.standard_normal((3, 5)) + 0.01
    gyr = rng.standard_normal(xr.shape)
    lossr = lambda: float(np.sum(gyr * cnnfast.relu(xr)))  # noqa: E731
    np.testing.assert_allclose(cnnfast.relu_backward(gyr, xr), _numeric_grad(lossr, xr, 1e-7), atol=1e-6)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 2, 2, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    for kw in [dict(stride=2, padding=1, groups=2), dict(padding="same", dilation=2, groups=2)]:
        ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
        y = cnnfast.conv2d(x, w, b, **kw)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        tgi, tgw, tgb = torch.autograd.grad(ty, (tx, tw, tb), torch.tensor(gy))
        for g, t in zip(cnnfast.conv2d_backward(gy, x, w, **kw), (tgi, tgw, tgb)):
            np.testing.assert_allclose(g, t.numpy(), rtol=1e-4, atol=1e-4)
    xp = rng.standard_normal((2, 3, 11, 10)).astype(np.float32)
    for kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dict(kernel_size=2, dilation=2)]:
        ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(xp), return_indices=True, **kw)
        y, idx = cnnfast.max_pool2d(xp, return_indices=True, **kw)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
