"""max_pool2d kernels: every compiled ISA against the scalar `_ref` twin and tests/reference.py.

The fast path must agree with the reference *exactly* (values bit for bit up to the sign of
zero, indices identical): max-pooling does no arithmetic, so there is no rounding to tolerate.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnfast
import reference as ref

DTYPES = [np.float32, np.float64]


def run(isa, x, *args, **kw):
    """max_pool2d with indices on `isa`, restoring the previous ISA."""
    prev = cnnfast.get_isa()
    cnnfast.set_isa(isa)
    try:
        return cnnfast.max_pool2d(x, *args, return_indices=True, **kw)
    finally:
        cnnfast.set_isa(prev)


def check_fwd(isa, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Fast path (with and without indices) == ref path; returns (y, idx)."""
    args = (kernel_size, stride, padding, dilation, ceil_mode)
    y, idx = cnnfast.max_pool2d(x, *args, return_indices=True)
    y_only = cnnfast.max_pool2d(x, *args)
    y_ref, idx_ref = run("ref", x, *args)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(y, y_ref)  # NaN == NaN here
    np.testing.assert_array_equal(y_only, y_ref)
    assert y.dtype == x.dtype and idx.dtype == np.int64
    return y, idx


# Widths around every vector width (4 doubles, 8/16 floats) and odd sizes; the two suite
# configurations (2x2/s2 and 3x3/s2/p1) plus dilation, stride 1 (overlap), stride 3 (generic
# phase split) and ceil_mode.
CONFIGS = [
    dict(kernel_size=2, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 3), padding=(1, 0)),
    dict(kernel_size=3, stride=2, dilation=2, padding=2),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=(1, 4), stride=(2, 4), padding=(0, 2), ceil_mode=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("W", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_fast_matches_ref(isa, rng, dtype, W, cfg):
    x = rng.standard_normal((2, 3, 7, W)).astype(dtype)
    k = cfg["kernel_size"]
    kw = k if np.isscalar(k) else k[1]
    pw = cfg.get("padding", 0)
    pw = pw if np.isscalar(pw) else pw[1]
    d = cfg.get("dilation", 1)
    if W + 2 * pw < d * (kw - 1) + 1:
        pytest.skip("window wider than the padded input")
    check_fwd(isa, x, **cfg)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=["2x2s2", "3x3s2p1", "3x3s1p1"])
def test_matches_numpy_reference(isa, rng, dtype, cfg):
    x = rng.standard_normal((2, 5, 11, 13)).astype(dtype)
    y, idx = check_fwd(isa, x, **cfg)
    y_np, idx_np = ref.max_pool2d(x, **cfg)
    np.testing.assert_array_equal(y, y_np)
    np.testing.assert_array_equal(idx, idx_np)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cnnfast.max_pool2d_backward(gy, x, idx, **cfg)
    np.testing.assert_allclose(gx, ref.max_pool2d_backward(gy, idx, x.shape), rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    h=st.integers(1, 12),
    w=st.integers(1, 20),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    sh=st.integers(1, 4),
    sw=st.integers(1, 4),
    dh=st.integers(1, 3),
    dw=st.integers(1, 3),
    fh=st.floats(0, 1),
    fw=st.floats(0, 1),
    ceil_mode=st.booleans(),
    f64=st.booleans(),
    special=st.sampled_from(["none", "nan", "-inf", "ties"]),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_fast_matches_ref(n, c, h, w, kh, kw, sh, sw, dh, dw, fh, fw, ceil_mode, f64, special, seed):
    # padding anywhere in [0, half the effective kernel], the largest PyTorch allows
    ph, pw = int(fh * (((kh - 1) * dh + 1) // 2)), int(fw * (((kw - 1) * dw + 1) // 2))
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, c, h, w)).astype(np.float64 if f64 else np.float32)
    if special == "nan":
        x[r.random(x.shape) < 0.15] = np.nan
    elif special == "-inf":
        x[r.random(x.shape) < 0.5] = -np.inf
    elif special == "ties":
        x = r.integers(-2, 2, x.shape).astype(x.dtype)
    args = ((kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode)
    prev = cnnfast.get_isa()
    for isa in cnnfast.available_isas():
        if isa == "ref":
            continue
        cnnfast.set_isa(isa)
        try:
            check_fwd(isa, x, *args)
            y, idx = cnnfast.max_pool2d(x, *args, return_indices=True)
            gy = r.standard_normal(y.shape).astype(x.dtype)
            idx = np.maximum(idx, 0)  # all-padding windows give -1, which backward rejects
            gx = cnnfast.max_pool2d_backward(gy, x, idx, *args)
            cnnfast.set_isa("ref")
            np.testing.assert_array_equal(gx, cnnfast.max_pool2d_backward(gy, x, idx, *args))
        finally:
            cnnfast.set_isa(prev)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates_with_its_index(isa, dtype):
    x = np.arange(2 * 18 * 18, dtype=dtype).reshape(1, 2, 18, 18)
    x[0, 0, 4, 5] = np.nan
    x[0, 0, 5, 4] = np.nan  # same 2x2 window (rows 4-5, cols 4-5): the first NaN in scan order wins
    x[0, 1, 17, 17] = np.nan  # last element: NaN beats the larger numbers before it
    y, idx = check_fwd(isa, x, 2, 2)
    assert np.isnan(y[0, 0, 2, 2]) and idx[0, 0, 2, 2] == 4 * 18 + 5
    assert np.isnan(y[0, 1, 8, 8]) and idx[0, 1, 8, 8] == 17 * 18 + 17
    assert np.isnan(y).sum() == 2
    y3, idx3 = check_fwd(isa, x, 3, 2, 1)  # overlapping windows: every window holding a NaN is NaN
    # (4, 5) lies in windows (2, 2) and (2, 3); (5, 4) in (2, 2) and (3, 2); (2, 2) holds both
    assert np.isnan(y3[0, 0]).sum() == 3
    assert idx3[0, 0, 2, 2] == idx3[0, 0, 2, 3] == 4 * 18 + 5 and idx3[0, 0, 3, 2] == 5 * 18 + 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_first_index_in_scan_order(isa, dtype):
    x = np.zeros((1, 1, 4, 20), dtype)
    y, idx = check_fwd(isa, x, 2, 2)
    expect = np.arange(2)[:, None] * 2 * 20 + np.arange(10)[None, :] * 2
    np.testing.assert_array_equal(idx[0, 0], expect)
    # a tie across columns where the later column holds the earlier row: (0, 1) beats (1, 0)
    x = np.zeros((1, 1, 2, 18), dtype)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 5
    x[0, 0, 1, 16] = x[0, 0, 0, 17] = 7  # and the other way round: (0, 17) beats (1, 16)
    y, idx = check_fwd(isa, x, 2, 2)
    assert idx[0, 0, 0, 0] == 1 and idx[0, 0, 0, 8] == 17
    # +0.0 and -0.0 are equal: the first one wins
    x = np.zeros((1, 1, 2, 2), dtype)
    x[0, 0, 0, 0] = -0.0
    _, idx = check_fwd(isa, x, 2, 2)
    assert idx[0, 0, 0, 0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_minus_inf_input_beats_padding(isa, dtype):
    x = np.full((1, 2, 5, 9), -np.inf, dtype)
    y, idx = check_fwd(isa, x, 3, 2, 1)
    assert np.all(y == -np.inf)
    assert idx.min() >= 0  # a real element, never the padding
    np.testing.assert_array_equal(idx[0, 0, 0], [0, 1, 3, 5, 7])  # top-left valid element of each window


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_padding_windows(isa, dtype):
    # effective kernel 4 (k=2, dilation=3), padding 2: on a 1-row input the window rows are -2
    # and 1, both outside -- PyTorch's output size rules allow it; the result is -inf, index -1
    x = np.arange(10, dtype=dtype).reshape(1, 1, 1, 10)
    y, idx = check_fwd(isa, x, 2, 1, 2, 3)
    assert y.shape == (1, 1, 2, 11)
    assert np.all(y == -np.inf) and np.all(idx == -1)
    # three rows: every window now reaches a real row (rows oh-2 and oh+1)
    x = np.arange(30, dtype=dtype).reshape(1, 1, 3, 10)
    y, idx = check_fwd(isa, x, 2, 1, 2, 3)
    assert np.all(idx >= 0) and np.all(np.isfinite(y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "cfg",
    [dict(kernel_size=2, stride=2), dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=3, stride=2, padding=1)],
    ids=["2x2s2", "3x3s1p1", "3x3s2p1"],
)
def test_backward_matches_ref(isa, rng, dtype, cfg):
    x = rng.integers(-3, 3, (3, 4, 9, 17)).astype(dtype)  # many ties: indices repeat in overlapping windows
    y, idx = check_fwd(isa, x, **cfg)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = cnnfast.max_pool2d_backward(gy, x, idx, **cfg)
    prev = cnnfast.get_isa()
    cnnfast.set_isa("ref")
    try:
        gx_ref = cnnfast.max_pool2d_backward(gy, x, idx, **cfg)
    finally:
        cnnfast.set_isa(prev)
    np.testing.assert_array_equal(gx, gx_ref)
    np.testing.assert_allclose(gx, ref.max_pool2d_backward(gy, idx, x.shape), rtol=1e-12, atol=1e-6)


@pytest.mark.parametrize("shape", [(16, 8, 30, 30), (1, 1, 200, 40)], ids=["many-planes", "one-plane"])
def test_thread_count_independent(isa, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    prev = cnnfast.get_num_threads()
    try:
        res = []
        for nt in (1, 2, 3):
            cnnfast.set_num_threads(nt)
            y, idx = cnnfast.max_pool2d(x, 3, 2, 1, return_indices=True)
            gx = cnnfast.max_pool2d_backward(np.ones_like(y), x, idx, 3, 2, 1)
            res.append((y, idx, gx))
    finally:
        cnnfast.set_num_threads(prev)
    for y, idx, gx in res[1:]:
        np.testing.assert_array_equal(y, res[0][0])
        np.testing.assert_array_equal(idx, res[0][1])
        np.testing.assert_array_equal(gx, res[0][2])


def test_large_outputs_reuse_cached_buffers(isa, rng):
    # outputs above the cache threshold (128 KiB) come from the buffer cache; results must not
    # depend on what the reused memory held before
    x = rng.standard_normal((4, 16, 96, 96)).astype(np.float32)
    y1, i1 = cnnfast.max_pool2d(x, 2, 2, return_indices=True)
    y1c, i1c = y1.copy(), i1.copy()
    del y1, i1
    x2 = -x
    y2, i2 = cnnfast.max_pool2d(x2, 2, 2, return_indices=True)
    ref_y2, ref_i2 = run("ref", x2, 2, 2)
    np.testing.assert_array_equal(y2, ref_y2)
    np.testing.assert_array_equal(i2, ref_i2)
    gx = cnnfast.max_pool2d_backward(np.ones_like(y2), x2, i2, 2, 2)
    assert gx.sum() == y2.size and gx.shape == x.shape
    np.testing.assert_array_equal(cnnfast.max_pool2d(x, 2, 2), y1c)
    assert np.array_equal(run("ref", x, 2, 2)[1], i1c)


@pytest.mark.parametrize("W", [256, 254], ids=["aligned-rows", "odd-rows"])
def test_streaming_outputs(isa, rng, W):
    # outputs (values + indices) above 8 MiB are written with nontemporal stores where aligned
    x = rng.standard_normal((4, 16, 256, W)).astype(np.float32)
    check_fwd(isa, x, 2, 2)


# --- stride 2, kernel width 2 or 3: the horizontal-first kernel (maxpool2d_impl.h fwd_s2_impl),
# used once a row has more than two vectors of outputs (OW > 16 floats / 8 doubles with AVX2).
# Widths 34..49 cross every remainder of its 2N-column blocks for N = 4 and 8; 66..69 reach it
# with 16 lanes. Configs: with / without the left padding column, and ceil_mode (a window past
# the right edge).
S2_CONFIGS = [
    dict(kernel_size=2, stride=2),
    dict(kernel_size=2, stride=2, padding=1),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)),  # overlapping rows: the row ring is reused
]


def _specials(rng, shape, dtype):
    """Plain values, many ties, NaN sprinkled in, mostly -inf (ties with the padding)."""
    x = rng.standard_normal(shape).astype(dtype)
    ties = rng.integers(-2, 2, shape).astype(dtype)
    nan = x.copy()
    nan[rng.random(shape) < 0.02] = np.nan  # rows with a single NaN, and rows with several
    ninf = np.where(rng.random(shape) < 0.7, -np.inf, ties).astype(dtype)
    return [x, ties, nan, ninf]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("W", list(range(34, 50)) + [66, 67, 68, 69])
def test_stride2_wide_rows_match_ref(isa, rng, dtype, W):
    for x in _specials(rng, (2, 2, 7, W), dtype):
        for cfg in S2_CONFIGS:
            check_fwd(isa, x, **cfg)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "cfg, W",
    [(S2_CONFIGS[1], 46), (S2_CONFIGS[2], 49), (S2_CONFIGS[3], 48), (S2_CONFIGS[3], 37)],
    ids=["2x2p1", "3x3p0", "3x3p1", "3x3p1-odd"],
)
def test_stride2_nan_at_every_column(isa, rng, dtype, cfg, W):
    # One NaN at a time, in every column of the first, a middle and the last row of the whole
    # input (the first and last rows of x are loaded without reading outside it): NaN must win
    # its windows with its own index, whether it sits in a loaded vector pair, at a block edge or
    # in the column after the last pair (the last column when OW fills whole vectors: W = 48 and
    # 49), and a NaN in the next row must not leak into this one.
    H = 5
    base = rng.standard_normal((1, 1, H, W)).astype(dtype)
    for r in (0, 2, H - 1):
        for c in range(W):
            x = base.copy()
            x[0, 0, r, c] = np.nan
            y, idx = check_fwd(isa, x, **cfg)
            assert np.isnan(y).any() and (idx[np.isnan(y)] == r * W + c).all()


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(33, 80),
    kh=st.integers(1, 4),
    kw=st.integers(2, 3),
    sh=st.integers(1, 3),
    dh=st.integers(1, 2),
    fh=st.floats(0, 1),
    pw=st.integers(0, 1),
    ceil_mode=st.booleans(),
    f64=st.booleans(),
    special=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_stride2_wide_rows(h, w, kh, kw, sh, dh, fh, pw, ceil_mode, f64, special, seed):
    ph = int(fh * (((kh - 1) * dh + 1) // 2))
    if h + 2 * ph < dh * (kh - 1) + 1:
        return
    r = np.random.default_rng(seed)
    x = _specials(r, (1, 2, h, w), np.float64 if f64 else np.float32)[special]
    args = ((kh, kw), (sh, 2), (ph, pw), (dh, 1), ceil_mode)
    prev = cnnfast.get_isa()
    try:
        for isa in cnnfast.available_isas():
            if isa != "ref":
                cnnfast.set_isa(isa)
                check_fwd(isa, x, *args)
    finally:
        cnnfast.set_isa(prev)


# 2x2/s2 without padding on short rows (the LeNet pools: fwd_k2s2_short in maxpool2d_impl.h takes
# OW <= 2 vectors): every output count from 1 to past two vectors of both widths, odd H and W (the
# last row / column is dropped), with ties, NaN and -inf, values and indices equal to ref's.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("special", ["none", "ties", "nan", "-inf"])
def test_2x2_stride2_short_rows(isa, rng, dtype, special):
    for W in list(range(2, 40)) + [56, 63, 64, 65, 66, 67]:
        x = rng.standard_normal((2, 3, 7, W)).astype(dtype)
        if special == "ties":
            x = rng.integers(-1, 2, x.shape).astype(dtype)
        elif special == "nan":
            x[rng.random(x.shape) < 0.1] = np.nan
        elif special == "-inf":
            x[rng.random(x.shape) < 0.6] = -np.inf
        y, idx = check_fwd(isa, x, 2, 2)
        y_np, idx_np = ref.max_pool2d(x, 2, 2)
        np.testing.assert_array_equal(y, y_np, err_msg=f"W={W}")
        np.testing.assert_array_equal(idx, idx_np, err_msg=f"W={W}")
