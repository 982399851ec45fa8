"""Direct conv2d kernels (csrc/kernels/conv2d/conv2d_direct.h) on every compiled ISA.

They take three domains before the general kernels: depthwise (groups == C, any depth
multiplier), small-C dense (groups == 1, C <= 4) and small-plane dense (groups == 1, a whole padded
image in 64 KiB, K <= 32, C*R*S <= 512; grad_input only for column stride 1, and for K < 8 only
for stride 1 with padding <= dilation*(kernel-1)). Each shape here is computed three ways: on the ISA under
test (where the direct kernels run), on the scalar `ref` path, and by the NumPy oracle
tests/reference.py. Forward (+bias, +fused ReLU), grad_input, grad_weight and grad_bias.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnnfast
import reference as ref

F = cnnfast.functional

# Tolerances: every result is checked against the float64 oracle within the rounding bound of the
# sums it computes (reference.assert_conv_close: c * eps * sqrt(L) * sum|terms| per element).

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _all_passes(x, w, b, stride, padding, dilation, groups, relu, gy_seed=7):
    """(y, grad_input, grad_weight, grad_bias) on the currently selected ISA."""
    fn = F.conv2d_relu if relu else F.conv2d
    y = fn(x, w, b, stride, padding, dilation, groups)
    gy = np.random.default_rng(gy_seed).standard_normal(y.shape).astype(x.dtype)
    gi, gw, gb = F.conv2d_backward(gy, x, w, stride, padding, dilation, groups)
    return (y, gi, gw, gb), gy


def _check(isa, x, w, b, stride, padding, dilation, groups, relu=False):
    dt = x.dtype.type
    got, gy = _all_passes(x, w, b, stride, padding, dilation, groups, relu)
    cnnfast.set_isa("ref")
    try:
        want, _ = _all_passes(x, w, b, stride, padding, dilation, groups, relu)
    finally:
        cnnfast.set_isa(isa)
    for name, g, r in zip(("output", "grad_input", "grad_weight", "grad_bias"), got, want):
        assert g.shape == r.shape and g.dtype == r.dtype, name
    # Both against the float64 oracle, within the bound of their float sums (reference.py).
    terms = ref.conv2d_terms(x, w, b, gy, stride, padding, dilation, groups, relu)
    for label, res in ((f"on {isa}", got), ("on ref", want)):
        ref.assert_conv_close(dict(zip(("y", "gx", "gw", "gb"), res)), terms, dt, err_msg=label)


def _arrays(rng, dtype, x_shape, w_shape, bias):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


@st.composite
def conv_geometry(draw, max_hw=14):
    """Kernel 1..7 per axis (even and rectangular included), stride 1-3, dilation 1-2, padding up
    to kernel-1 (so it may exceed half the kernel), and an input at least the effective kernel."""
    R, S = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, R - 1)), draw(st.integers(0, S - 1)))
    H, W = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw + 6))
    assume(H + 2 * padding[0] >= dilation[0] * (R - 1) + 1)
    assume(W + 2 * padding[1] >= dilation[1] * (S - 1) + 1)
    return (R, S), stride, padding, dilation, (H, W)


@SETTINGS
@given(
    geo=conv_geometry(),
    N=st.integers(1, 2),
    C=st.integers(1, 17),
    mult=st.integers(1, 3),
    bias=st.booleans(),
    relu=st.booleans(),
    f64=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_depthwise_matches_ref_and_reference(isa, geo, N, C, mult, bias, relu, f64, seed):
    (R, S), stride, padding, dilation, (H, W) = geo
    x, w, b = _arrays(
        np.random.default_rng(seed), np.float64 if f64 else np.float32, (N, C, H, W), (C * mult, 1, R, S), bias
    )
    _check(isa, x, w, b, stride, padding, dilation, C, relu)


@SETTINGS
@given(
    geo=conv_geometry(),
    N=st.integers(1, 2),
    C=st.integers(1, 4),
    K=st.integers(1, 13),
    bias=st.booleans(),
    relu=st.booleans(),
    f64=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_small_channels_matches_ref_and_reference(isa, geo, N, C, K, bias, relu, f64, seed):
    (R, S), stride, padding, dilation, (H, W) = geo
    x, w, b = _arrays(np.random.default_rng(seed), np.float64 if f64 else np.float32, (N, C, H, W), (K, C, R, S), bias)
    _check(isa, x, w, b, stride, padding, dilation, 1, relu)


@SETTINGS
@given(
    geo=conv_geometry(max_hw=12),
    N=st.integers(1, 3),
    C=st.integers(5, 12),
    K=st.integers(1, 20),
    bias=st.booleans(),
    relu=st.booleans(),
    f64=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_small_plane_matches_ref_and_reference(isa, geo, N, C, K, bias, relu, f64, seed):
    (R, S), stride, padding, dilation, (H, W) = geo
    assume(C * R * S <= 512)
    x, w, b = _arrays(np.random.default_rng(seed), np.float64 if f64 else np.float32, (N, C, H, W), (K, C, R, S), bias)
    _check(isa, x, w, b, stride, padding, dilation, 1, relu)


# Small-plane shapes at the edges of its domain: LeNet c2, the largest K and C*R*S it takes, a
# plane near 64 KiB, K around the grad_input threshold (8), row strides > 1 with column stride 1.
@pytest.mark.parametrize(
    "x_shape,w_shape,stride,padding,dilation",
    [
        ((3, 6, 12, 12), (16, 6, 5, 5), 1, 0, 1),
        ((2, 8, 9, 10), (32, 8, 3, 3), 1, 1, 1),
        ((1, 20, 7, 9), (12, 20, 5, 5), 1, 2, 1),
        ((1, 5, 40, 60), (8, 5, 3, 3), 1, 1, 1),
        ((2, 6, 11, 13), (7, 6, 3, 3), (2, 1), (0, 2), (1, 2)),
        ((2, 6, 11, 13), (9, 6, 3, 2), (3, 1), 1, 2),
    ],
)
def test_small_plane_domain_edges(isa, rng, x_shape, w_shape, stride, padding, dilation):
    for dtype in (np.float32, np.float64):
        x, w, b = _arrays(rng, dtype, x_shape, w_shape, True)
        _check(isa, x, w, b, stride, padding, dilation, 1, relu=True)


# The channel-vectorised forward (stride 1, K filling whole channel vectors: 4/8/16 outputs on
# 4/8/16 lanes, 14-16 or 32 on two vectors, short rows): LeNet c2 and its neighbours, column blocks
# that do not divide the row, row blocks past the last row, padding, dilation, one image in row
# chunks (both threads busy), float64.
@pytest.mark.parametrize(
    "x_shape,w_shape,padding,dilation",
    [
        ((3, 6, 14, 14), (16, 6, 5, 5), 0, 1),
        ((2, 6, 12, 12), (16, 6, 5, 5), 0, 1),
        ((2, 6, 9, 11), (15, 6, 3, 3), 1, 1),
        ((2, 5, 13, 7), (14, 5, 3, 2), (2, 1), (1, 2)),
        ((1, 7, 20, 5), (8, 7, 3, 3), 1, 1),
        ((2, 3, 10, 19), (4, 3, 5, 5), 2, 1),
        ((1, 6, 24, 9), (32, 6, 3, 3), 1, 1),
    ],
)
def test_channel_vector_forward(isa, rng, x_shape, w_shape, padding, dilation):
    for dtype in (np.float32, np.float64):
        for relu in (False, True):
            x, w, b = _arrays(rng, dtype, x_shape, w_shape, True)
            _check(isa, x, w, b, 1, padding, dilation, 1, relu=relu)


# Row widths around the vector widths (8/16 float32 lanes, 4/8 float64 lanes) and below them.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("W", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33])
@pytest.mark.parametrize("kind", ["depthwise", "smallc", "plane"])
@pytest.mark.parametrize("stride", [1, 2, 3])  # 2: the vector (de)interleave paths
def test_row_width_edges(isa, rng, dtype, W, kind, stride):
    C = 6 if kind == "plane" else 3
    w_shape = {"depthwise": (2 * C, 1, 3, 3), "smallc": (5, C, 3, 3), "plane": (10, C, 3, 3)}[kind]
    x, w, b = _arrays(rng, dtype, (2, C, 5, W), w_shape, True)
    _check(isa, x, w, b, (1, stride), 1, 1, C if kind == "depthwise" else 1)
    # Wider rows too: several vector blocks, then the short-row tail blocks.
    x, w, b = _arrays(rng, dtype, (1, C, 3, 4 * W + 40), w_shape, False)
    _check(isa, x, w, b, stride, 1, 1, C if kind == "depthwise" else 1)


@pytest.mark.parametrize("kind", ["depthwise", "smallc"])
def test_single_image_bias_none_and_relu(isa, rng, kind):
    C = 3
    w_shape = (C, 1, 5, 5) if kind == "depthwise" else (6, C, 5, 5)
    groups = C if kind == "depthwise" else 1
    x, w, _ = _arrays(rng, np.float32, (C, 19, 23), w_shape, False)
    y = F.conv2d_relu(x, w, None, 1, 2, 1, groups)  # unbatched (C, H, W) input
    assert y.shape == (w.shape[0], 19, 23)
    assert (y >= 0).all() and (y == 0).any() and (y > 0).any()
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gi = F.conv2d_input(x.shape, w, gy, 1, 2, 1, groups)
    gw = F.conv2d_weight(x, w.shape, gy, 1, 2, 1, groups)
    terms = ref.conv2d_terms(x[None], w, None, gy[None], 1, 2, 1, groups, relu=True)
    ref.assert_conv_close({"y": y[None], "gx": gi[None], "gw": gw}, terms, np.float32)


@pytest.mark.parametrize("groups", [3, 1])
def test_relu_keeps_nan_like_ref(isa, rng, groups):
    x, w, b = _arrays(rng, np.float32, (1, 3, 6, 21), (3, 3 // groups, 3, 3), True)
    x[0, 1, 2, 10] = np.nan
    got = F.conv2d_relu(x, w, b, 1, 1, 1, groups)
    cnnfast.set_isa("ref")
    try:
        want = F.conv2d_relu(x, w, b, 1, 1, 1, groups)
    finally:
        cnnfast.set_isa(isa)
    assert np.isnan(got).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    terms = ref.conv2d_terms(x, w, b, None, 1, 1, 1, groups, relu=True)  # NaN where x's NaN reaches
    ref.assert_conv_close({"y": got}, terms, np.float32, err_msg=f"on {isa}")
    ref.assert_conv_close({"y": want}, terms, np.float32, err_msg="on ref")


def test_padding_wider_than_the_image(isa, rng):
    # Padding 6 on a 2-pixel image: whole output rows see only zeros (then just the bias).
    x, w, b = _arrays(rng, np.float64, (1, 2, 2, 3), (4, 1, 7, 7), True)
    _check(isa, x, w, b, (1, 2), 6, 1, 2, relu=False)
    x, w, b = _arrays(rng, np.float64, (1, 2, 2, 3), (3, 2, 7, 7), True)
    _check(isa, x, w, b, (2, 1), 6, 1, 1, relu=True)


# Short-row depthwise planes (the plane engine): grad_input of strides > 1 phase-split into
# stride-1 correlations, the plane fills that skip the padding, and planes cut into row chunks
# (a single channel: its zero rows move from chunk to chunk).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, mult, k, stride, padding, dilation",
    [
        ((2, 5, 28, 28), 1, (5, 5), 2, 2, 1),  # EfficientNet-B0 5x5 s2
        ((3, 4, 14, 14), 1, (3, 3), 2, 1, 1),  # MobileNet 3x3 s2 on a 14 x 14 map
        ((1, 3, 15, 13), 2, (3, 5), (2, 3), (1, 2), 1),  # odd sizes, depth multiplier 2, strides 2 and 3
        ((2, 3, 17, 19), 1, (3, 3), 2, (0, 3), 2),  # dilation 2 (all taps in one column phase)
        ((1, 2, 9, 7), 3, (5, 5), (3, 2), 4, 1),  # padding beyond the kernel, M = 3
        ((1, 1, 60, 30), 1, (5, 5), (1, 2), 2, 1),  # one plane: row chunks
        ((1, 1, 40, 24), 2, (3, 3), 2, 1, 1),  # one input plane, row chunks, M = 2
    ],
)
def test_depthwise_short_row_planes(isa, rng, dtype, x_shape, mult, k, stride, padding, dilation):
    C = x_shape[1]
    x, w, b = _arrays(rng, dtype, x_shape, (C * mult, 1, *k), True)
    _check(isa, x, w, b, stride, padding, dilation, C)


# Small output planes (OW, OH <= 16, M == 1, C >= half a vector; <= 32 at stride 2 on AVX2; the forward
# also on a few rows of up to 128 columns at stride 1): channels as lanes (conv2d_dw_lanes.h). Channel counts around 8 and 16 give partial last blocks on both ISAs;
# grad_input at stride 1 with padding <= the kernel reach, and at strides > 1 (dilation 1; outputs up
# to 64 x 64) by its phases (residue classes of taps, some empty when the stride exceeds the
# kernel); else the plane engine.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, k, stride, padding, dilation",
    [
        ((2, 16, 7, 7), (3, 3), 1, 1, 1),  # MobileNetV2 last stage
        ((1, 20, 7, 7), (5, 5), 1, 2, 1),  # EfficientNet 5x5, partial block
        ((3, 37, 14, 14), (5, 5), 2, 2, 1),  # 5x5 s2 onto 7 x 7
        ((1, 9, 9, 9), (7, 7), 1, 3, 1),  # 7x7, runtime tap count
        ((2, 33, 1, 1), (3, 3), 1, 1, 1),  # 1 x 1 plane
        ((1, 8, 2, 3), (3, 3), 1, 1, 1),
        ((2, 24, 5, 8), (3, 3), (2, 1), (1, 0), 1),
        ((1, 17, 12, 16), (3, 3), 2, 1, 1),  # stride 2, even input
        ((1, 12, 9, 9), (3, 3), 1, 2, 2),  # dilation 2
        ((1, 16, 4, 4), (3, 3), 1, 3, 1),  # padding wider than the kernel (grad_input declines)
        ((2, 31, 8, 8), (1, 1), 1, 0, 1),
        ((2, 20, 14, 14), (5, 5), 1, 2, 1),  # 14 x 14 (grad_weight of 5x5 declines)
        ((1, 18, 16, 16), (3, 3), 1, 1, 1),  # the largest plane taken
        # filters other than 3x3 compute rows in blocks of positions (up to 8, balanced)
        ((1, 19, 16, 16), (5, 5), 1, 2, 1),  # two blocks of 8
        ((2, 11, 11, 11), (7, 7), 1, 3, 1),  # blocks of 6 + 5
        ((1, 24, 31, 31), (5, 5), 2, 2, 1),  # stride 2 onto 16 x 16: two strided blocks of 8
        # stride 2 onto planes up to 32 x 32 (lanes on AVX2 float32 only): partial channel blocks
        ((1, 12, 56, 56), (3, 3), 2, 1, 1),  # MobileNet 56 x 56 -> 28 x 28
        ((2, 9, 40, 63), (5, 5), 2, 2, 1),  # onto 20 x 32, rows of 63 (a partial block per row)
        ((1, 18, 13, 11), (5, 5), 1, (4, 2), (2, 1)),  # 5x5 rows dilated (AVX-512: rows held in registers)
        ((2, 17, 9, 9), (7, 7), 2, 3, 1),  # 7x7 stride 2 (AVX-512: rows held in registers)
        # grad_input by phases: one tap per phase, empty phases, mixed strides, padding past the kernel
        ((1, 10, 12, 12), (3, 3), 3, 1, 1),
        ((2, 16, 9, 9), (1, 1), 2, 0, 1),  # three of four phases without taps: zeros
        ((1, 20, 16, 16), (3, 3), 4, 1, 1),  # stride above the kernel
        ((1, 9, 11, 11), (2, 2), 2, 0, 1),  # the last input row and column reached by no output
        ((1, 20, 13, 17), (5, 3), (2, 3), (2, 1), 1),
        ((1, 16, 6, 6), (3, 3), 2, 3, 1),
        ((1, 9, 111, 100), (3, 3), 2, 1, 1),  # grad_input onto 111 x 100 (MobileNet's 112 -> 56)
        # forward at stride 1 onto a few rows of up to 128 columns (dw_lanes_short_rows; text lines)
        ((2, 20, 2, 96), (5, 5), 1, 2, 1),  # the rapidocr text classifier's 2 x 96
        ((1, 17, 3, 97), (5, 5), 1, 2, 1),  # 3 rows, odd width, a partial channel block
        ((2, 9, 4, 128), (3, 3), 1, 1, 1),  # 4 rows of 128 (3x3: AVX2 float32 only)
        ((1, 24, 2, 120), (3, 3), 1, 1, 1),  # 3x3 on 2 rows
        ((1, 16, 5, 100), (5, 5), 1, (0, 2), 1),  # one output row
        ((1, 10, 2, 64), (7, 7), 1, 3, 1),  # 7x7: padding rows above and below
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_channel_lanes(isa, rng, dtype, x_shape, k, stride, padding, dilation, bias):
    C = x_shape[1]
    x, w, b = _arrays(rng, dtype, x_shape, (C, 1, *k), bias)
    _check(isa, x, w, b, stride, padding, dilation, C, relu=bias)


# Row blocks read in place (conv2d_dw_rows.h: stride 1 and 2, square 3/5/7 filters, output rows of
# at least one vector): widths around one and two vectors of either ISA and either dtype (masked
# loads at both image edges, a partial last vector, a lone last column vector), heights that
# leave a short last block of rows, padding from 0 to kernel - 1 per axis, depth multiplier 2.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, mult, k, stride, padding",
    [
        ((2, 3, 13, 17), 1, 3, 1, 1),
        ((1, 2, 9, 33), 2, 3, 1, (0, 2)),
        ((1, 3, 11, 56), 1, 3, 1, 1),  # MobileNetV2 56 x 56 row width
        ((1, 2, 6, 31), 1, 5, 1, 2),
        ((2, 2, 7, 40), 1, 5, 1, (4, 1)),
        ((1, 2, 10, 24), 1, 7, 1, 3),  # ConvNeXt 7x7
        ((1, 2, 17, 64), 1, 3, 2, 1),  # stride 2: phase rows
        ((1, 2, 9, 113), 1, 3, 2, 1),  # stride 2, rows of >= 6 vectors: the unmasked phase split
        ((2, 3, 13, 35), 2, 3, 2, (2, 0)),
        ((1, 2, 11, 67), 1, 5, 2, 2),  # EfficientNet 5x5 s2
        ((1, 2, 15, 45), 1, 7, 2, (6, 3)),
    ],
)
def test_depthwise_row_blocks(isa, rng, dtype, x_shape, mult, k, stride, padding):
    C = x_shape[1]
    x, w, b = _arrays(rng, dtype, x_shape, (C * mult, 1, k, k), True)
    _check(isa, x, w, b, stride, padding, 1, C, relu=True)
    _check(isa, x, w, None, stride, padding, 1, C)


# Big enough to be split over threads (rows of one image for the depthwise filter, a fixed
# number of reduction parts for grad_weight): the results must be bit-identical for 1 and 2.
@pytest.mark.parametrize(
    "case",
    [
        dict(x=(1, 3, 96, 70), w=(3, 1, 5, 5), stride=1, padding=2, groups=3),  # image filter
        dict(x=(2, 8, 33, 30), w=(16, 1, 3, 3), stride=2, padding=1, groups=8),  # MobileNet-like
        dict(x=(4, 16, 28, 28), w=(16, 1, 5, 5), stride=2, padding=2, groups=16),  # EfficientNet-like
        dict(x=(1, 3, 64, 64), w=(16, 3, 7, 7), stride=2, padding=3, groups=1),  # ResNet-stem-like
        dict(x=(8, 1, 28, 28), w=(6, 1, 5, 5), stride=1, padding=0, groups=1),  # LeNet c1
        dict(x=(20, 6, 12, 12), w=(16, 6, 5, 5), stride=1, padding=0, groups=1),  # LeNet c2
        dict(x=(1, 8, 30, 30), w=(16, 8, 3, 3), stride=1, padding=1, groups=1),  # small plane, N=1
        dict(x=(16, 40, 7, 7), w=(40, 1, 3, 3), stride=1, padding=1, groups=40),  # channels as lanes
        dict(x=(9, 24, 14, 14), w=(24, 1, 5, 5), stride=2, padding=2, groups=24),  # lanes, 5x5 s2
        dict(x=(1, 4, 70, 70), w=(4, 1, 3, 3), stride=1, padding=1, groups=4),  # row blocks, row chunks
        dict(x=(1, 3, 90, 90), w=(3, 1, 3, 3), stride=2, padding=1, groups=3),  # row blocks s2, chunks
    ],
)
def test_results_do_not_depend_on_thread_count(isa, rng, case):
    x, w, b = _arrays(rng, np.float32, case["x"], case["w"], True)
    args = (case["stride"], case["padding"], 1, case["groups"])
    prev = cnnfast.get_num_threads()
    try:
        cnnfast.set_num_threads(1)
        one, _ = _all_passes(x, w, b, *args, relu=True)
        cnnfast.set_num_threads(2)
        two, _ = _all_passes(x, w, b, *args, relu=True)
    finally:
        cnnfast.set_num_threads(prev)
    for name, a, c in zip(("output", "grad_input", "grad_weight", "grad_bias"), one, two):
        np.testing.assert_array_equal(a, c, err_msg=name)
    terms = ref.conv2d_terms(x, w, b, None, *args, relu=True)
    ref.assert_conv_close({"y": two[0]}, terms, np.float32)


# The sum tolerance (reference.assert_conv_close) must stay tight enough to see a real bug: one
# element off by a relative 1e-3 (float32) or 1e-9 (float64) in each pass of a LeNet-c2-sized layer
# (L = 151, 400, 192 and 192 terms) fails it, while the kernel's own rounding passes.
@pytest.mark.parametrize("dtype,rel", [(np.float32, 1e-3), (np.float64, 1e-9)], ids=["f32", "f64"])
def test_sum_tolerance_catches_a_small_relative_error(isa, rng, dtype, rel):
    x, w, b = _arrays(rng, dtype, (3, 6, 12, 12), (16, 6, 5, 5), True)
    got, gy = _all_passes(x, w, b, 1, 0, 1, 1, False)
    got = dict(zip(("y", "gx", "gw", "gb"), got))
    terms = ref.conv2d_terms(x, w, b, gy, 1, 0, 1, 1)
    ref.assert_conv_close(got, terms, dtype)
    for key in got:
        bad = got[key].copy()
        i = np.unravel_index(np.argmax(np.abs(terms[key][0])), bad.shape)  # a typical, large element
        bad[i] *= 1 + rel
        with pytest.raises(AssertionError, match="outside the sum tolerance"):
            ref.assert_conv_close({key: bad}, terms, dtype, err_msg=key)


@pytest.fixture
def no_winograd():
    prev = cnnfast.get_winograd()
    cnnfast.set_winograd(False)
    yield
    cnnfast.set_winograd(prev)


# The direct weight gradient beyond the small-plane limits (dispatch: K <= 16, planes up to the
# relaxed bound; 1x1 only with 512-bit vectors of float64: float32 1x1 runs the GEMM's 16-channel
# tiles) and the small-C one's K bound (< 32 on AVX-512, <= 32 on AVX2): each case must reach the
# kernel the dispatch promises (an ISA name: direct on that ISA only; "isa-dtype": and that dtype
# only) and match ref and the float64 oracle. Winograd is off here: its weight gradient,
# listed before _dense, takes the 16 -> 16 case on AVX2 (test_kernels_conv2d_winograd.py).
@pytest.mark.parametrize(
    "x_shape,w_shape,padding,direct",
    [
        ((4, 16, 32, 32), (16, 16, 3, 3), 1, True),  # 3x3, 16 -> 16, a 34 x 34 padded plane
        ((2, 32, 40, 40), (8, 32, 3, 3), 1, True),  # K = 8 over 32 channels
        ((2, 32, 48, 48), (16, 32, 1, 1), 0, "avx512-f64"),  # 1x1: direct on AVX-512, float64 only
        ((1, 3, 64, 64), (64, 3, 7, 7), 3, False),  # stem-like: K = 64 goes to GEMM
        ((1, 3, 96, 96), (32, 3, 3, 3), 1, "avx2"),  # small C, K = 32: direct on AVX2 only
        ((2, 3, 32, 32), (24, 3, 5, 5), 2, True),  # small C, K = 24: direct
        ((3, 2, 75, 21), (5, 2, 3, 4), 1, True),  # small C, tall image: several row groups per image
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_weight_gradient_dispatch_on_wider_planes(isa, rng, x_shape, w_shape, padding, direct, dtype, no_winograd):
    x, w, b = _arrays(rng, dtype, x_shape, w_shape, True)
    _check(isa, x, w, b, 1, padding, 1, 1)
    if isa != "ref":
        dt = "f32" if dtype == np.float32 else "f64"
        if isinstance(direct, str):
            want_isa, _, want_dt = direct.partition("-")
            direct = isa == want_isa and want_dt in ("", dt)
        _all_passes(x, w, b, 1, padding, 1, 1, False)  # _check ran ref last
        got = cnnfast.runtime_info()["last_kernels"][f"conv2d_bwd_weight_{dt}"]
        assert got == f"conv2d_bwd_weight_{dt}_{isa}" + ("_dense" if direct else ""), got


# The small-plane forward leaves float32 3x3 stride-1 layers with >= 16 input channels to Winograd
# (with 512-bit vectors only from C*K >= 512): each case must reach the kernel the dispatch
# promises and match ref and the float64 oracle.
@pytest.mark.parametrize(
    "x_shape,w_shape,want",
    [
        ((2, 32, 16, 16), (32, 32, 3, 3), {"avx2": "winograd", "avx512": "winograd"}),
        ((2, 16, 16, 16), (16, 16, 3, 3), {"avx2": "winograd", "avx512": "dense"}),
        ((2, 8, 16, 16), (16, 8, 3, 3), {"avx2": "dense", "avx512": "dense"}),  # Winograd wants C >= 16
    ],
)
def test_plane_forward_leaves_3x3_layers_to_winograd(isa, rng, x_shape, w_shape, want):
    x, w, b = _arrays(rng, np.float32, x_shape, w_shape, True)
    prev = cnnfast.get_winograd()
    try:
        for on in (True, False):  # with Winograd off the plane kernel keeps the layer
            cnnfast.set_winograd(on)
            _check(isa, x, w, b, 1, 1, 1, 1)
            if isa != "ref":
                F.conv2d(x, w, b, 1, 1)  # _check ran ref last
                got = cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"]
                assert got == f"conv2d_fwd_f32_{isa}_{want[isa] if on else 'dense'}", got
    finally:
        cnnfast.set_winograd(prev)
