"""conv2d kernels on every compiled ISA vs the scalar `ref` kernels and the NumPy reference.

The kernels are called through the raw `_core` bindings (no Python-level argument handling), so a
failure here points at a kernel. Each configuration runs all three passes (forward with and
without bias / fused ReLU, backward-input, backward-weight + bias) in float32 and float64.

Tolerances: each element against the float64 oracle within the rounding bound of the sum it
computes, c * eps * sqrt(L) * sum|terms| (tests/reference.py, assert_conv_close).
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnfast
from cnnfast import _core

_spec = importlib.util.spec_from_file_location(
    "cnnfast_test_reference", pathlib.Path(__file__).with_name("reference.py")
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

DTYPES = [np.float32, np.float64]


def _passes(x, w, b, gy, stride, padding, dilation, groups, relu):
    """All kernel outputs for one configuration on the currently selected ISA."""
    args = (stride, padding, dilation, groups)
    y = _core.conv2d_forward(x, w, b, *args, relu)
    gx = _core.conv2d_backward_input(list(x.shape), gy, w, *args)
    gw, gb = _core.conv2d_backward_weight(x, list(w.shape), gy, *args, b is not None)
    return {"y": y, "gx": gx, "gw": gw, "gb": gb}


def _on_isa(isa, fn, *args):
    prev = cnnfast.get_isa()
    cnnfast.set_isa(isa)
    try:
        return fn(*args)
    finally:
        cnnfast.set_isa(prev)


def _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups, bias=True):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    OH = reference.conv_out_size(H, R, stride[0], padding[0], dilation[0])
    OW = reference.conv_out_size(W, S, stride[1], padding[1], dilation[1])
    gy = rng.standard_normal((N, K, OH, OW)).astype(dtype)
    return x, w, b, gy


def _check(
    isa,
    rng,
    dtype,
    N,
    C,
    H,
    W,
    K,
    R,
    S,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups=1,
    bias=True,
    relu=False,
    numpy_oracle=True,
):  # numpy_oracle: kept for callers; always on
    x, w, b, gy = _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
    got = _passes(x, w, b, gy, stride, padding, dilation, groups, relu)
    want = _on_isa("ref", _passes, x, w, b, gy, stride, padding, dilation, groups, relu)
    for key in ("y", "gx", "gw", "gb"):
        if want[key] is None:
            assert got[key] is None
            continue
        assert got[key].dtype == dtype and got[key].shape == want[key].shape, key
    # Both the ISA's and ref's results against the float64 oracle, within the rounding bound of
    # their sums (reference.assert_conv_close); the oracle is cheap at these sizes, so always.
    del numpy_oracle
    terms = reference.conv2d_terms(x, w, b, gy, stride, padding, dilation, groups, relu)
    if b is None:
        del terms["gb"]
    reference.assert_conv_close(got, terms, dtype, err_msg=f"isa={isa} vs tests/reference.py")
    reference.assert_conv_close(want, terms, dtype, err_msg="ref vs tests/reference.py")


# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
EDGE_CASES = {
    "c7": (2, 7, 9, 9, 7, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "c8": (2, 8, 8, 8, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "c9": (2, 9, 7, 7, 9, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "c15-k17": (1, 15, 6, 10, 17, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "c16-k15": (3, 16, 5, 5, 15, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "c17-k16": (1, 17, 11, 5, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "odd-hw": (3, 4, 13, 11, 6, 3, 3, (1, 1), (0, 0), (1, 1), 1),
    "pad-half-5x5": (2, 3, 9, 9, 5, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "stride-gt-kernel": (2, 5, 13, 13, 6, 2, 2, (3, 3), (0, 0), (1, 1), 1),
    "stride2-pad1": (2, 6, 10, 9, 10, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "pointwise": (2, 19, 7, 6, 21, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    "pointwise-s2": (3, 10, 9, 9, 12, 1, 1, (2, 2), (0, 0), (1, 1), 1),
    "pointwise-padded": (1, 4, 5, 5, 5, 1, 1, (1, 1), (1, 1), (1, 1), 1),
    "kernel-eq-padded-input": (2, 3, 5, 4, 7, 7, 6, (1, 1), (1, 1), (1, 1), 1),
    "even-4x4": (2, 5, 10, 10, 6, 4, 4, (2, 2), (1, 1), (1, 1), 1),
    "rect-2x5": (1, 6, 8, 12, 5, 2, 5, (1, 2), (0, 2), (1, 1), 1),
    "dilation": (2, 4, 12, 12, 5, 3, 3, (1, 1), (2, 2), (2, 2), 1),
    "dilation-rect": (1, 3, 10, 13, 4, 2, 3, (2, 1), (1, 3), (3, 2), 1),
    "groups2": (2, 8, 7, 7, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2),
    "groups3-strided": (3, 9, 9, 8, 12, 3, 2, (2, 1), (1, 0), (1, 1), 3),
    "depthwise": (2, 6, 8, 8, 6, 3, 3, (1, 1), (1, 1), (1, 1), 6),
    "depthwise-mult2": (1, 4, 7, 7, 8, 3, 3, (2, 2), (1, 1), (1, 1), 4),
    "lenet-c1": (3, 1, 28, 28, 6, 5, 5, (1, 1), (0, 0), (1, 1), 1),
    "stem-like": (1, 3, 23, 23, 8, 7, 7, (2, 2), (3, 3), (1, 1), 1),
    "single-pixel": (3, 5, 1, 1, 4, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    "output-1x1": (5, 3, 4, 4, 7, 4, 4, (1, 1), (0, 0), (1, 1), 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(EDGE_CASES), ids=list(EDGE_CASES))
def test_edge_cases(isa, rng, case, dtype):
    _check(isa, rng, dtype, *EDGE_CASES[case])


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bias_and_fused_relu(isa, rng, dtype, bias, relu):
    _check(isa, rng, dtype, 3, 6, 9, 8, 11, 3, 3, (1, 1), (1, 1), bias=bias, relu=relu)


# Shapes that cross the blocking thresholds of the GEMM kernels: C*R*S above one reduction block
# (640), K/groups above one backward-input block (256), output planes split into several tiles
# with tiles straddling images (P = 49 is not a multiple of the 16-wide panels), many images.
BLOCKING_CASES = {
    "crs-over-one-block": (2, 80, 6, 6, 7, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "k-over-one-block": (1, 3, 6, 6, 300, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "tiles-straddle-images": (5, 16, 7, 7, 20, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "many-columns": (2, 4, 40, 40, 13, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "grouped-large": (2, 64, 8, 8, 64, 3, 3, (2, 2), (1, 1), (1, 1), 2),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(BLOCKING_CASES), ids=list(BLOCKING_CASES))
def test_blocking_boundaries(isa, rng, case, dtype):
    _check(isa, rng, dtype, *BLOCKING_CASES[case], numpy_oracle=False)


# The GEMM path's register tiles per ISA (conv2d_avx2.cpp, conv2d_avx512.cpp): AVX-512 packs the
# weights for the forward pass once N*OH*OW >= 256 and cuts the output channels into balanced blocks
# of at most 14 rows (13 -> 13; 15 -> 8 + 7; 29 -> 10 + 10 + 9; 64 -> 5 x 13 or 12), and runs
# bwd_weight in 14-row tiles over C*R*S (27 -> 14 + 13, 360 -> 25 x 14 + 10). These shapes reach
# the GEMM kernels (not the direct or Winograd ones: groups, dilation, K > 32 or C*R*S > 512) with
# output channels 1, 13, 14, 15, 29, 64 per group, column counts with a ragged last panel (361:
# 9 columns, one vector on AVX-512; 324: 4), reduction blocks (C*R*S = 720 > 640) and several
# bwd_weight column blocks (392 > 256).
GEMM_TILE_CASES = {
    "k13-cols361": (1, 60, 19, 19, 13, 3, 3, (1, 1), (2, 2), (2, 2), 1),
    "k15-groups2": (2, 10, 12, 12, 30, 3, 3, (1, 1), (1, 1), (1, 1), 2),
    "k29-groups2-5x5": (1, 6, 20, 16, 58, 5, 5, (1, 1), (2, 2), (1, 1), 2),
    "k64-crs720": (1, 80, 16, 16, 64, 3, 3, (1, 1), (2, 2), (2, 2), 1),
    "k1-5x5": (2, 24, 16, 16, 1, 5, 5, (1, 1), (0, 0), (1, 1), 1),
    "k14-stride2-groups2": (4, 16, 17, 17, 28, 3, 3, (2, 2), (1, 1), (1, 1), 2),
    "crs360-cols392": (2, 40, 14, 14, 40, 3, 3, (1, 1), (2, 2), (2, 2), 1),
    # 9248 columns, 37 bwd_weight reduction blocks: 4 parts of 10, 10, 10 and 7 blocks
    "bww-parts-cols9248": (2, 20, 68, 68, 40, 3, 5, (1, 1), (1, 2), (1, 1), 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(GEMM_TILE_CASES), ids=list(GEMM_TILE_CASES))
def test_gemm_register_tiles(isa, rng, case, dtype):
    dt = "f32" if dtype == np.float32 else "f64"
    # K <= 16 weight gradients take the direct kernel by default (dispatch): pin the GEMM one here.
    if isa != "ref":
        cnnfast._core._pin_conv2d_kernel(f"conv2d_bwd_weight_{dt}_{isa}")
    try:
        _check(isa, rng, dtype, *GEMM_TILE_CASES[case], numpy_oracle=False)
        if isa != "ref":  # the shapes must reach the GEMM kernels, or the test checks nothing new
            N, C, H, W, K, R, S, stride, padding, dilation, groups = GEMM_TILE_CASES[case]
            x, w, b, gy = _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups)
            _passes(x, w, b, gy, stride, padding, dilation, groups, False)
            last = cnnfast.runtime_info()["last_kernels"]
            for key in ("fwd", "bwd_weight"):
                assert last[f"conv2d_{key}_{dt}"] == f"conv2d_{key}_{dt}_{isa}", (key, last)
    finally:
        cnnfast._core._pin_conv2d_kernel(None)


# The GEMM path's grouped direct kernel (conv2d_gemm.h, is_grouped_direct): stride 1, groups > 1,
# at most 32 output channels per group, output rows filling at least 3/4 of their vectors; the
# forward, bwd_input as a forward conv with rotated weights (N*OH*OW >= 512, padding within the
# kernel's reach) and bwd_weight (batch cut into parts when groups < 16: 2 and 3 parts here). Output channels per group 8, 13 (two row blocks: 7 + 6), 32 (several row
# blocks), rows 28, 13 and 38 wide (one or two vectors, a masked last one), 5x3 and dilated
# windows, padding on one axis only, a single image cut into row bands.
GROUPED_DIRECT_CASES = {
    "g4-kg8-w28": (2, 32, 10, 28, 32, 3, 3, (1, 1), (1, 1), (1, 1), 4),
    "g2-kg13-w13-dilated": (1, 6, 9, 15, 26, 5, 3, (1, 1), (2, 1), (1, 2), 2),
    "g8-kg32-w38-unpadded": (1, 64, 6, 40, 256, 3, 3, (1, 1), (0, 0), (1, 1), 8),
    "g2-kg6-w26-bwd-input": (3, 10, 16, 26, 12, 3, 3, (1, 1), (1, 1), (1, 1), 2),
}


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(GROUPED_DIRECT_CASES), ids=list(GROUPED_DIRECT_CASES))
def test_grouped_direct(isa, rng, case, dtype, relu):
    _check(isa, rng, dtype, *GROUPED_DIRECT_CASES[case], relu=relu)
    if isa != "ref":  # the passes must reach the GEMM build's kernels (not a direct or depthwise one)
        N, C, H, W, K, R, S, stride, padding, dilation, groups = GROUPED_DIRECT_CASES[case]
        x, w, b, gy = _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups)
        _passes(x, w, b, gy, stride, padding, dilation, groups, relu)
        dt = "f32" if dtype == np.float32 else "f64"
        last = cnnfast.runtime_info()["last_kernels"]
        for key in ("fwd", "bwd_input", "bwd_weight"):
            assert last[f"conv2d_{key}_{dt}"] == f"conv2d_{key}_{dt}_{isa}", (key, last)


# im2col of the GEMM kernels (forward, bwd_weight) row segment by row segment: one output row
# of one image at a time, its ends zero-filled where the window reaches into the padding. AVX-512
# builds short rows (fewer than 2 vectors) and stride-2 rows with lane-masked loads and whole-vector
# stores that spill into the next segment (conv2d_gemm.h, masked_segment). Rows 7, 14, 17 and 33
# wide (less than one vector, between one and two, beyond two for float32 / float64), stride 2
# with odd and even input widths, padding on one side or both, a dilated stride-2 window; C = 5
# and K = 40 keep the direct and Winograd kernels out.
IM2COL_SEGMENT_CASES = {
    "w7-pad1": (3, 5, 7, 7, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "w14-5x5-pad2": (2, 5, 14, 14, 40, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "w17-7x7-pad3": (2, 5, 9, 17, 40, 7, 7, (1, 1), (3, 3), (1, 1), 1),
    "w33-pad1-right": (1, 5, 6, 33, 40, 3, 3, (1, 1), (0, 1), (1, 1), 1),
    "s2-w31-pad1": (2, 5, 15, 31, 40, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "s2-w45-7x7-pad3": (1, 5, 29, 45, 40, 7, 7, (2, 2), (3, 3), (1, 1), 1),
    "s2-w40-4x4-pad0": (2, 5, 12, 40, 40, 4, 4, (2, 2), (0, 0), (1, 1), 1),
    "s2-w20-dilated": (1, 5, 12, 20, 40, 3, 3, (2, 2), (2, 2), (2, 2), 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(IM2COL_SEGMENT_CASES), ids=list(IM2COL_SEGMENT_CASES))
def test_im2col_row_segments(isa, rng, case, dtype):
    _check(isa, rng, dtype, *IM2COL_SEGMENT_CASES[case])
    if isa != "ref":  # the shapes must reach the GEMM kernels
        N, C, H, W, K, R, S, stride, padding, dilation, groups = IM2COL_SEGMENT_CASES[case]
        x, w, b, gy = _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups)
        _passes(x, w, b, gy, stride, padding, dilation, groups, False)
        dt = "f32" if dtype == np.float32 else "f64"
        last = cnnfast.runtime_info()["last_kernels"]
        for key in ("fwd", "bwd_weight"):
            assert last[f"conv2d_{key}_{dt}"] == f"conv2d_{key}_{dt}_{isa}", (key, last)


def test_gemm_register_tiles_independent_of_thread_count(isa, rng):
    """Packed forward with the output channels split across threads (N=1: one column tile)."""
    x, w, b, gy = _make(rng, np.float32, *GEMM_TILE_CASES["k64-crs720"][:-4], (1, 1), (2, 2), (2, 2), 1)
    prev = cnnfast.get_num_threads()
    try:
        cnnfast.set_num_threads(1)
        one = _passes(x, w, b, gy, (1, 1), (2, 2), (2, 2), 1, True)
        cnnfast.set_num_threads(2)
        two = _passes(x, w, b, gy, (1, 1), (2, 2), (2, 2), 1, True)
    finally:
        cnnfast.set_num_threads(prev)
    for key in one:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)


# Results bitwise independent of the thread count: bwd_weight's reduction parts (fixed by the
# shape, summed in order) and the grouped direct kernels (batch parts fixed by the shape).
@pytest.mark.parametrize("case", ["bww-parts-cols9248", "g4-kg8-w28"])
def test_reduction_parts_independent_of_thread_count(isa, rng, case):
    shape = {**GEMM_TILE_CASES, **GROUPED_DIRECT_CASES}[case]
    N, C, H, W, K, R, S, stride, padding, dilation, groups = shape
    x, w, b, gy = _make(rng, np.float32, *shape)
    prev = cnnfast.get_num_threads()
    if isa != "ref":
        cnnfast._core._pin_conv2d_kernel(f"conv2d_bwd_weight_f32_{isa}")
    try:
        runs = []
        for nt in (1, 2, 3):
            cnnfast.set_num_threads(nt)
            runs.append(_passes(x, w, b, gy, stride, padding, dilation, groups, False))
    finally:
        cnnfast.set_num_threads(prev)
        cnnfast._core._pin_conv2d_kernel(None)
    for other in runs[1:]:
        for key in runs[0]:
            np.testing.assert_array_equal(other[key], runs[0][key], err_msg=key)


# Strided pointwise layers (1x1, stride > 1, no padding) on the GEMM kernels: bwd_input solves the
# compact stride-1 problem and scatters it into the zeroed gx (conv2d_gemm.h, is_strided_1x1),
# forward and weight gradient use strided im2col: even and odd sizes, unequal strides, a stride on one axis only, stride beyond
# the plane (one output pixel), groups, enough channels for bwd_input's forward-conv path.
STRIDED_1X1_CASES = {
    "s2-even": (3, 12, 14, 14, 20, 1, 1, (2, 2), (0, 0), (1, 1), 1),
    "s2-odd": (2, 10, 15, 13, 24, 1, 1, (2, 2), (0, 0), (1, 1), 1),
    "s3x2": (2, 8, 17, 11, 16, 1, 1, (3, 2), (0, 0), (1, 1), 1),
    "s2x1": (2, 8, 9, 10, 16, 1, 1, (2, 1), (0, 0), (1, 1), 1),
    "s1x2-dilated": (2, 8, 9, 10, 16, 1, 1, (1, 2), (0, 0), (3, 3), 1),
    "stride-beyond-plane": (3, 8, 3, 4, 16, 1, 1, (5, 5), (0, 0), (1, 1), 1),
    "groups2": (2, 16, 12, 12, 24, 1, 1, (2, 2), (0, 0), (1, 1), 2),
    "c96-bwd-input-as-fwd": (2, 96, 28, 28, 40, 1, 1, (2, 2), (0, 0), (1, 1), 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(STRIDED_1X1_CASES), ids=list(STRIDED_1X1_CASES))
def test_strided_pointwise(isa, rng, case, dtype):
    _check(isa, rng, dtype, *STRIDED_1X1_CASES[case])
    if isa == "ref":
        return
    # Each pass pinned to the GEMM kernel (small shapes pick the direct kernels), against the oracle.
    N, C, H, W, K, R, S, stride, padding, dilation, groups = STRIDED_1X1_CASES[case]
    x, w, b, gy = _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups)
    terms = reference.conv2d_terms(x, w, b, gy, stride, padding, dilation, groups, True)
    dt = "f32" if dtype == np.float32 else "f64"
    for key in ("fwd", "bwd_input", "bwd_weight"):
        cnnfast._core._pin_conv2d_kernel(f"conv2d_{key}_{dt}_{isa}")
        try:
            got = _passes(x, w, b, gy, stride, padding, dilation, groups, True)
            last = cnnfast.runtime_info()["last_kernels"]
        finally:
            cnnfast._core._pin_conv2d_kernel(None)
        assert last[f"conv2d_{key}_{dt}"] == f"conv2d_{key}_{dt}_{isa}", (key, last)
        reference.assert_conv_close(got, terms, dtype, err_msg=f"isa={isa}, {key} pinned")


# Stride-2 layers on the GEMM kernels (conv2d_gemm.h, is_phase_s2): the input split into its four
# phases, im2col rows (forward, weight gradient) and col2im (bwd_input) as contiguous runs. Odd and
# even planes, no / odd / even / unequal padding, 2x2 to 5x5 and 1x3 / 3x1 kernels, output rows
# shorter than a vector and wider than two (70 wide: 35 outputs), tiles holding many images
# (3x3 planes of 2x2 outputs at batch 9), a reduction over more than one block with a channel cut
# between blocks (C = 75: 675 rows), groups. Each pass pinned to the GEMM kernel.
PHASE_S2_CASES = {
    "3x3-p1-even": (2, 5, 14, 14, 40, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "3x3-p1-odd": (3, 5, 15, 13, 40, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "3x3-p0": (2, 5, 12, 11, 40, 3, 3, (2, 2), (0, 0), (1, 1), 1),
    "3x3-p2-p0": (2, 5, 9, 10, 40, 3, 3, (2, 2), (2, 0), (1, 1), 1),
    "2x2-p0": (2, 5, 10, 9, 40, 2, 2, (2, 2), (0, 0), (1, 1), 1),
    "4x4-p1": (2, 5, 16, 17, 40, 4, 4, (2, 2), (1, 1), (1, 1), 1),
    "5x5-p2-wide": (1, 5, 11, 70, 40, 5, 5, (2, 2), (2, 2), (1, 1), 1),
    "1x3-p0x1": (2, 5, 8, 21, 40, 1, 3, (2, 2), (0, 1), (1, 1), 1),
    "3x1-p1x0": (2, 5, 21, 8, 40, 3, 1, (2, 2), (1, 0), (1, 1), 1),
    "tiny-planes-n9": (9, 5, 3, 3, 40, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "c75-two-blocks": (2, 75, 15, 13, 40, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "groups2": (2, 10, 13, 14, 24, 3, 3, (2, 2), (1, 1), (1, 1), 2),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(PHASE_S2_CASES), ids=list(PHASE_S2_CASES))
def test_stride2_phases(isa, rng, case, dtype):
    _check(isa, rng, dtype, *PHASE_S2_CASES[case])  # this ISA's choice of kernels and ref vs the oracle
    if isa == "ref":
        return
    N, C, H, W, K, R, S, stride, padding, dilation, groups = PHASE_S2_CASES[case]
    x, w, b, gy = _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups)
    terms = reference.conv2d_terms(x, w, b, gy, stride, padding, dilation, groups, True)
    dt = "f32" if dtype == np.float32 else "f64"
    for key in ("fwd", "bwd_input", "bwd_weight"):
        cnnfast._core._pin_conv2d_kernel(f"conv2d_{key}_{dt}_{isa}")
        try:
            got = _passes(x, w, b, gy, stride, padding, dilation, groups, True)
            last = cnnfast.runtime_info()["last_kernels"]
        finally:
            cnnfast._core._pin_conv2d_kernel(None)
        assert last[f"conv2d_{key}_{dt}"] == f"conv2d_{key}_{dt}_{isa}", (key, last)
        reference.assert_conv_close(got, terms, dtype, err_msg=f"isa={isa}, {key} pinned")


# Stride-1 layers on the GEMM kernels (conv2d_gemm.h, is_pad_s1): the tile's input rows copied
# once per channel into a zero-padded block, im2col rows as contiguous runs written straight into
# the packed panels (forward) or the im2col block (weight gradient). Odd and even planes, no / even
# / unequal padding and padding beyond the kernel's reach, dilation, 1x3 / 3x1 / padded 1x1
# kernels, output rows shorter than a vector and wider than two (27 wide: runs across panel
# edges), tiles holding many images, a reduction over more than one block with a channel cut
# between blocks (C = 75: 675 rows), groups, and 48 channels (bwd_input as a forward conv on
# AVX-512). Each pass pinned to the GEMM kernel.
PAD_S1_CASES = {
    "5x5-p2": (2, 5, 12, 12, 40, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "3x3-p1-odd": (3, 5, 15, 13, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "3x3-p0": (2, 5, 12, 11, 40, 3, 3, (1, 1), (0, 0), (1, 1), 1),
    "3x3-p2-p0": (2, 5, 9, 10, 40, 3, 3, (1, 1), (2, 0), (1, 1), 1),
    "3x3-beyond-reach": (2, 5, 7, 6, 40, 3, 3, (1, 1), (3, 4), (1, 1), 1),
    "3x3-dilated": (2, 5, 13, 12, 40, 3, 3, (1, 1), (1, 2), (2, 2), 1),
    "5x5-p2-27-wide": (2, 6, 27, 27, 40, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "5x5-p2-wide": (1, 5, 9, 70, 40, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "1x3-p0x1": (2, 5, 8, 21, 40, 1, 3, (1, 1), (0, 1), (1, 1), 1),
    "3x1-p1x0": (2, 5, 21, 8, 40, 3, 1, (1, 1), (1, 0), (1, 1), 1),
    "1x1-p1": (2, 5, 7, 9, 40, 1, 1, (1, 1), (1, 1), (1, 1), 1),
    "tiny-planes-n9": (9, 5, 3, 3, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "c75-two-blocks": (2, 75, 15, 13, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "groups2": (2, 10, 13, 14, 24, 3, 3, (1, 1), (1, 1), (1, 1), 2),
    "groups2-c48-5x5": (2, 96, 13, 11, 40, 5, 5, (1, 1), (2, 2), (1, 1), 2),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(PAD_S1_CASES), ids=list(PAD_S1_CASES))
def test_stride1_padded_tiles(isa, rng, case, dtype):
    _check(isa, rng, dtype, *PAD_S1_CASES[case])
    if isa == "ref":
        return
    N, C, H, W, K, R, S, stride, padding, dilation, groups = PAD_S1_CASES[case]
    x, w, b, gy = _make(rng, dtype, N, C, H, W, K, R, S, stride, padding, dilation, groups)
    terms = reference.conv2d_terms(x, w, b, gy, stride, padding, dilation, groups, True)
    dt = "f32" if dtype == np.float32 else "f64"
    for key in ("fwd", "bwd_input", "bwd_weight"):
        cnnfast._core._pin_conv2d_kernel(f"conv2d_{key}_{dt}_{isa}")
        try:
            got = _passes(x, w, b, gy, stride, padding, dilation, groups, True)
            last = cnnfast.runtime_info()["last_kernels"]
        finally:
            cnnfast._core._pin_conv2d_kernel(None)
        assert last[f"conv2d_{key}_{dt}"] == f"conv2d_{key}_{dt}_{isa}", (key, last)
        reference.assert_conv_close(got, terms, dtype, err_msg=f"isa={isa}, {key} pinned")


def test_stride1_padded_tiles_independent_of_thread_count(isa, rng):
    """The GEMM's stride-1 passes bitwise equal for 1, 2 and 3 threads (5x5 layer, 27-wide rows)."""
    shape = (3, 48, 27, 27, 40, 5, 5, (1, 1), (2, 2), (1, 1), 1)
    x, w, b, gy = _make(rng, np.float32, *shape)
    prev = cnnfast.get_num_threads()
    runs = []
    try:
        for nt in (1, 2, 3):
            cnnfast.set_num_threads(nt)
            runs.append(_passes(x, w, b, gy, *shape[7:], True))
    finally:
        cnnfast.set_num_threads(prev)
    for key in runs[0]:
        np.testing.assert_array_equal(runs[1][key], runs[0][key], err_msg=key)
        np.testing.assert_array_equal(runs[2][key], runs[0][key], err_msg=key)


def test_stride2_phases_independent_of_thread_count(isa, rng):
    """The GEMM's stride-2 passes bitwise equal for 1, 2 and 3 threads (ResNet-like 3x3/s2 layer)."""
    shape = (3, 24, 20, 20, 40, 3, 3, (2, 2), (1, 1), (1, 1), 1)
    x, w, b, gy = _make(rng, np.float32, *shape)
    prev = cnnfast.get_num_threads()
    runs = []
    try:
        for nt in (1, 2, 3):
            cnnfast.set_num_threads(nt)
            runs.append(_passes(x, w, b, gy, *shape[7:], True))
    finally:
        cnnfast.set_num_threads(prev)
    for key in runs[0]:
        np.testing.assert_array_equal(runs[1][key], runs[0][key], err_msg=key)
        np.testing.assert_array_equal(runs[2][key], runs[0][key], err_msg=key)


def test_strided_pointwise_independent_of_thread_count(isa, rng):
    shape = STRIDED_1X1_CASES["c96-bwd-input-as-fwd"]
    N, C, H, W, K, R, S, stride, padding, dilation, groups = shape
    x, w, b, gy = _make(rng, np.float32, *shape)
    prev = cnnfast.get_num_threads()
    runs = []
    try:
        for nt in (1, 2, 3):
            cnnfast.set_num_threads(nt)
            runs.append(_passes(x, w, b, gy, stride, padding, dilation, groups, True))
    finally:
        cnnfast.set_num_threads(prev)
    for other in runs[1:]:
        for key in runs[0]:
            np.testing.assert_array_equal(other[key], runs[0][key], err_msg=key)


# Stride-1 backward-input runs as a forward conv of gy with rotated, channel-swapped weights and
# padding d*(R-1) - p, when C/groups >= 96 (AVX-512: 48) and N*OH*OW >= 512 (conv2d_gemm.h,
# bwd_input_as_fwd). These shapes take that path (first six) or sit just outside it (next two:
# padding beyond the dilated kernel's reach, stride 2), where the col2im path must still run; the
# last has 48 channels: the forward path on AVX-512, col2im on AVX2.
BWD_INPUT_AS_FWD_CASES = {
    "3x3-pad1": (2, 96, 16, 16, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "5x3-pad-below-reach": (1, 96, 26, 24, 5, 5, 3, (1, 1), (0, 1), (1, 1), 1),
    "dilated-rect-pad": (1, 96, 28, 28, 6, 3, 3, (1, 1), (2, 3), (2, 2), 1),
    "groups2": (2, 192, 16, 16, 10, 3, 3, (1, 1), (1, 1), (1, 1), 2),
    "pointwise": (2, 96, 16, 16, 7, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    "k-over-one-block": (1, 96, 24, 24, 80, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "pad-beyond-reach": (2, 96, 16, 16, 4, 3, 3, (1, 1), (3, 3), (1, 1), 1),
    "stride2": (2, 96, 33, 33, 4, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    # 48 input channels: a forward conv on AVX-512 (its threshold), col2im on AVX2
    "c48-5x5": (2, 48, 16, 16, 20, 5, 5, (1, 1), (2, 2), (1, 1), 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(BWD_INPUT_AS_FWD_CASES), ids=list(BWD_INPUT_AS_FWD_CASES))
def test_bwd_input_as_forward(isa, rng, case, dtype):
    _check(isa, rng, dtype, *BWD_INPUT_AS_FWD_CASES[case], numpy_oracle=False)


def test_bwd_input_as_forward_independent_of_thread_count(isa, rng):
    x, w, b, gy = _make(rng, np.float32, 2, 96, 16, 16, 12, 3, 3, (1, 1), (1, 1), (1, 1), 1)
    prev = cnnfast.get_num_threads()
    try:
        cnnfast.set_num_threads(1)
        one = _core.conv2d_backward_input(list(x.shape), gy, w, (1, 1), (1, 1), (1, 1), 1)
        cnnfast.set_num_threads(2)
        two = _core.conv2d_backward_input(list(x.shape), gy, w, (1, 1), (1, 1), (1, 1), 1)
    finally:
        cnnfast.set_num_threads(prev)
    gx64 = reference.conv2d_terms(x, w, None, gy, (1, 1), (1, 1), (1, 1), 1)["gx"]
    for label, g in (("1 thread", one), ("2 threads", two)):
        reference.assert_sum_close(g, *gx64, err_msg=label)


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    Cg, Kg = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, dh * (R - 1) + 1 - 2 * ph), 14))
    W = draw(st.integers(max(1, dw * (S - 1) + 1 - 2 * pw), 14))
    N = draw(st.integers(1, 4))
    return (N, Cg * groups, H, W, Kg * groups, R, S, (sh, sw), (ph, pw), (dh, dw), groups)


# The `isa` fixture only selects the kernel path for the whole test, so sharing it across the
# generated examples is intended.
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cfg=conv_configs(),
    dtype=st.sampled_from(DTYPES),
    bias=st.booleans(),
    relu=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_configs(isa, cfg, dtype, bias, relu, seed):
    _check(isa, np.random.default_rng(seed), dtype, *cfg, bias=bias, relu=relu, numpy_oracle=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("N", [1, 3], ids=["N=1", "N=3"])
def test_independent_of_thread_count(isa, rng, dtype, N):
    x, w, b, gy = _make(rng, dtype, N, 24, 12, 12, 20, 3, 3, (1, 1), (1, 1), (1, 1), 1)
    prev = cnnfast.get_num_threads()
    try:
        cnnfast.set_num_threads(1)
        one = _passes(x, w, b, gy, (1, 1), (1, 1), (1, 1), 1, True)
        cnnfast.set_num_threads(2)
        two = _passes(x, w, b, gy, (1, 1), (1, 1), (1, 1), 1, True)
    finally:
        cnnfast.set_num_threads(prev)
    terms = reference.conv2d_terms(x, w, b, gy, (1, 1), (1, 1), (1, 1), 1, relu=True)
    reference.assert_conv_close(one, terms, dtype, err_msg="1 thread")
    reference.assert_conv_close(two, terms, dtype, err_msg="2 threads")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_empty_batch_weight_gradient_is_zero(isa, dtype):
    x = np.zeros((0, 4, 6, 6), dtype)
    gy = np.zeros((0, 5, 4, 4), dtype)
    gw, gb = _core.conv2d_backward_weight(x, [5, 4, 3, 3], gy, (1, 1), (0, 0), (1, 1), 1, True)
    assert gw.shape == (5, 4, 3, 3) and gb.shape == (5,)
    assert not gw.any() and not gb.any()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_relu_keeps_nan(isa, dtype):
    """Fused ReLU is max(y, 0) with NaN propagated, as torch.relu and the ref kernel do."""
    x = np.ones((1, 2, 4, 4), dtype)
    x[0, 0, 1, 1] = np.nan
    w = -np.ones((3, 2, 1, 1), dtype)
    y = _core.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, True)
    assert np.isnan(y[0, :, 1, 1]).all()
    assert (y[~np.isnan(y)] == 0).all()
