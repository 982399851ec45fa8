"""The direct pointwise (1x1) forward kernel (conv2d_pointwise.h, AVX2 and AVX-512).

Plain 1x1 convs (stride 1, no padding, groups 1) reach `_pointwise` unless C, K and N*H*W are all
large (prefers_gemm_*); these check it against the float64 oracle and the `ref` kernel: pixel
counts 1..50 (a masked or over-reading tail vector, tail pixels as dot products, none, one or
several whole vectors), output channels that are not a multiple of the register tile, batches 1..3
(the last image's tail is the one masked), large planes (several strips, prefetch), many input
channels (channel blocks: partial sums in the output), planes whose strips are packed (16x16,
32x32), bias / fused ReLU, float32 / float64, and results independent of the thread count.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import cnnfast
from cnnfast import _core

_spec = importlib.util.spec_from_file_location(
    "cnnfast_test_reference", pathlib.Path(__file__).with_name("reference.py")
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def _fwd(x, w, b, relu):
    return _core.conv2d_forward(x, w, b, (1, 1), (0, 0), (1, 1), 1, relu)


def _check(isa, rng, dtype, N, C, H, W, K, bias=True, relu=False):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, 1, 1)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    y = _fwd(x, w, b, relu)
    dt = "f32" if dtype == np.float32 else "f64"
    lanes = (64 if isa == "avx512" else 32) // np.dtype(dtype).itemsize  # one vector
    got = cnnfast.runtime_info()["last_kernels"][f"conv2d_fwd_{dt}"]
    if isa != "ref" and H * W >= lanes:  # the shape must reach the pointwise kernel
        assert got == f"conv2d_fwd_{dt}_{isa}_pointwise"
    elif isa != "ref":  # planes narrower than a vector are left to the GEMM (no tail over-reads)
        assert not got.endswith("_pointwise"), got
    terms = reference.conv2d_terms(x, w, b, None, 1, 0, 1, 1, relu)
    reference.assert_conv_close({"y": y}, terms, dtype, err_msg=f"isa={isa} pointwise")
    prev = cnnfast.get_isa()
    cnnfast.set_isa("ref")
    try:
        want = _fwd(x, w, b, relu)
    finally:
        cnnfast.set_isa(prev)
    assert y.dtype == dtype and y.shape == want.shape
    return x, w, b, y


def _simd(isa):
    if isa == "ref":
        pytest.skip("the pointwise kernel is a SIMD kernel (ref is its oracle)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_pixel_counts(isa, rng, dtype):
    """Every plane of 1..50 pixels (as 1 x P rows and some 2-D planes), odd channel counts."""
    _simd(isa)
    for P in range(1, 51):
        _check(isa, rng, dtype, 1 + P % 3, 3 + P % 5, 1, P, 5 + P % 11, bias=P % 2 == 0, relu=P % 3 == 0)
    for H, W in [(7, 7), (5, 9), (3, 11)]:
        _check(isa, rng, dtype, 2, 13, H, W, 17)


# (N, C, H, W, K): MobileNet-like layers with channels that are not multiples of the tile, the
# largest plane the kernel takes (32x32) and a single channel in or out.
SHAPES = {
    "k19-c37-14x14": (1, 37, 14, 14, 19),
    "k96-c576-7x7-n3": (3, 57, 7, 7, 96),
    "k1-c5": (2, 5, 6, 6, 1),
    "c1-k9": (3, 1, 9, 5, 9),
    "32x32": (1, 24, 32, 32, 13),
    # MobileNetV2's few-output-channel layers on large planes (several strips, prefetch), PP-LCNet's
    "k24-c144-56x56": (1, 144, 56, 56, 24),
    "k16-c32-60x60-n2": (2, 32, 60, 60, 16),
    "k35-c20-33x41": (1, 20, 33, 41, 35),
    # many input channels: channel blocks leave partial sums in y; 7x7 with a tail pixel
    "k70-c333-7x7": (1, 333, 7, 7, 70),
    "k9-c1000-9x9-n2": (2, 1000, 9, 9, 9),
    "k130-c211-10x10": (1, 211, 10, 10, 130),
    # planes whose channel rows collide in a few L1 sets (1 KB and 4 KB apart): the strip is packed
    # into a contiguous buffer first (enough output channels); with channel blocks; a batch
    "packed-k70-c96-16x16": (1, 96, 16, 16, 70),
    "packed-k64-c300-16x16": (1, 300, 16, 16, 64),
    "packed-k64-c40-32x32-n2": (2, 40, 32, 32, 64),
}


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(SHAPES), ids=list(SHAPES))
def test_shapes(isa, rng, case, dtype, bias, relu):
    _simd(isa)
    _check(isa, rng, dtype, *SHAPES[case], bias=bias, relu=relu)


def test_relu_keeps_nan(isa, rng):
    """Fused ReLU as in ref: max(0, NaN) is NaN, negatives become 0."""
    _simd(isa)
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    x[0, 2, 1, 3] = np.nan
    w = rng.standard_normal((6, 4, 1, 1)).astype(np.float32)
    y = _fwd(x, w, None, True)
    assert np.isnan(y[0, :, 1, 3]).all()
    mask = ~np.isnan(y)
    assert (y[mask] >= 0).all()


def test_large_problems_keep_the_gemm(isa, rng):
    """Stride 2, groups and the largest C x K x N*H*W problems (prefers_gemm_*) are not taken."""
    _simd(isa)
    x = rng.standard_normal((1, 8, 33, 32)).astype(np.float32)
    w = rng.standard_normal((40, 8, 1, 1)).astype(np.float32)
    _fwd(x, w, None, False)
    assert cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"].endswith("_pointwise")
    _core.conv2d_forward(x, w, None, (2, 2), (0, 0), (1, 1), 1, False)
    assert not cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"].endswith("_pointwise")
    _core.conv2d_forward(x, w[:, :4], None, (1, 1), (0, 0), (1, 1), 2, False)
    assert not cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"].endswith("_pointwise")
    _fwd(
        rng.standard_normal((1, 1024, 20, 20)).astype(np.float32),
        rng.standard_normal((256, 1024, 1, 1)).astype(np.float32),
        None,
        False,
    )
    assert not cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"].endswith("_pointwise")
    # ... but not below 392 columns (ResNet-50's 1024 -> 256 on 14x14 at batch 1)
    _fwd(
        rng.standard_normal((1, 1024, 14, 14)).astype(np.float32),
        rng.standard_normal((256, 1024, 1, 1)).astype(np.float32),
        None,
        False,
    )
    assert cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"].endswith("_pointwise")
    # an expanding layer (K >= 4C) with more than 16 MB of output: the GEMM on AVX-512 only
    _fwd(
        rng.standard_normal((1, 8, 128, 128)).astype(np.float32),
        rng.standard_normal((288, 8, 1, 1)).astype(np.float32),
        None,
        False,
    )
    took = cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"].endswith("_pointwise")
    assert took == (isa == "avx2")


@pytest.mark.parametrize(
    "shape",
    [(3, 45, 14, 14, 70), (1, 144, 56, 56, 24), (1, 333, 7, 7, 70), (2, 16, 40, 40, 96), (2, 48, 32, 32, 64)],
    ids=["14x14-n3", "56x56", "7x7-c333", "40x40-n2", "32x32-packed"],
)
def test_independent_of_thread_count(isa, rng, shape):
    """Bitwise the same output for 1, 2 and 3 threads (the units and chunks change with them)."""
    _simd(isa)
    N, C, H, W, K = shape
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, 1, 1)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    prev = cnnfast.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            cnnfast.set_num_threads(t)
            outs.append(_fwd(x, w, b, True))
            assert cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"].endswith("_pointwise")
    finally:
        cnnfast.set_num_threads(prev)
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_array_equal(outs[2], outs[0])


# grad_input of a plain 1x1 conv through the same kernel (the K -> C forward with the transposed
# weights): planes of 28 x 28 and more (smaller ones stay on the GEMM path), tails of the last
# vector, a batch, channel counts off the register tile, many output channels (the swapped
# reduction runs in channel blocks), float32 / float64; against the float64 oracle and `ref`.
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "N, C, H, W, K",
    [(1, 16, 28, 28, 96), (2, 37, 29, 31, 19), (1, 5, 56, 56, 300), (3, 24, 30, 30, 1), (1, 64, 33, 40, 64)],
)
def test_grad_input_through_pointwise(isa, rng, dtype, N, C, H, W, K):
    _simd(isa)
    gy = rng.standard_normal((N, K, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, 1, 1)).astype(dtype)
    x = np.zeros((N, C, H, W), dtype)
    gx = _core.conv2d_backward_input([N, C, H, W], gy, w, (1, 1), (0, 0), (1, 1), 1)
    dt = "f32" if dtype == np.float32 else "f64"
    assert cnnfast.runtime_info()["last_kernels"][f"conv2d_bwd_input_{dt}"] == f"conv2d_bwd_input_{dt}_{isa}_pointwise"
    terms = reference.conv2d_terms(x, w, None, gy, 1, 0, 1, 1)
    reference.assert_conv_close({"gx": gx}, {"gx": terms["gx"]}, dtype, err_msg=f"isa={isa} pointwise grad_input")
    prev = cnnfast.get_isa()
    cnnfast.set_isa("ref")
    try:
        want = _core.conv2d_backward_input([N, C, H, W], gy, w, (1, 1), (0, 0), (1, 1), 1)
    finally:
        cnnfast.set_isa(prev)
    reference.assert_conv_close({"gx": want}, {"gx": terms["gx"]}, dtype, err_msg="ref grad_input")
    # a small plane is left to the GEMM path
    gy7 = rng.standard_normal((N, K, 7, 7)).astype(dtype)
    _core.conv2d_backward_input([N, C, 7, 7], gy7, w, (1, 1), (0, 0), (1, 1), 1)
    assert not cnnfast.runtime_info()["last_kernels"][f"conv2d_bwd_input_{dt}"].endswith("_pointwise")
