"""Space-to-depth (kernels/conv2d/conv2d_s2d.cpp): strided large-filter convs on few channels
(AlexNet's 11x11/4 on RGB) run as a stride-1 3x3 Winograd conv on the input's phases. Forward
and weight gradient against the float64 oracle (Winograd's bound, as its own tests), on every
SIMD ISA, with the kernel checked to be the one that ran; shapes outside its domain go elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import _core
import reference as ref

WINOGRAD_C = 8.0
SIMD = [i for i in ("avx2", "avx512") if i in cnnfast.available_isas()]


def _last(key):
    return cnnfast.runtime_info()["last_kernels"].get(key, "")


# (N, C, H, W, K, R, stride, padding)
CASES = [
    (2, 3, 67, 61, 32, 11, 4, 2),  # AlexNet conv1 geometry, odd sizes
    (1, 3, 67, 67, 40, 11, 4, 0),  # no padding (the 2012 AlexNet's 227 -> 55)
    (1, 4, 40, 50, 32, 9, 3, 1),  # 9x9/3: 36 channels of 3x3
    (3, 2, 36, 36, 32, 12, 4, 5),  # 12x12/4: every phase tap used, padding near R / 2
]


@pytest.mark.skipif(not SIMD, reason="no SIMD ISA on this CPU/build")
@pytest.mark.parametrize("isa_name", SIMD)
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_s2d_forward_and_weight_grad(rng, isa_name, case):
    N, C, H, W, K, R, s, p = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((K, C, R, R)) / np.sqrt(C * R * R)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    prev = cnnfast.get_isa()
    cnnfast.set_isa(isa_name)
    try:
        y = _core.conv2d_forward(x, w, b, (s, s), (p, p), (1, 1), 1, True)
        assert _last("conv2d_fwd_f32").endswith("_s2d")
        gy = rng.standard_normal(y.shape).astype(np.float32)
        gw, gb = _core.conv2d_backward_weight(x, w.shape, gy, (s, s), (p, p), (1, 1), 1, True)
        assert _last("conv2d_bwd_weight_f32").endswith("_s2d")
    finally:
        cnnfast.set_isa(prev)
    t = ref.conv2d_terms(x, w, b, gy, stride=s, padding=p, relu=True)
    ref.assert_sum_close(y, *t["y"], np.float32, c=WINOGRAD_C, err_msg="forward")
    ref.assert_sum_close(gw, *t["gw"], np.float32, c=WINOGRAD_C, err_msg="grad_weight")
    ref.assert_sum_close(gb, *t["gb"], np.float32, err_msg="grad_bias")


@pytest.mark.skipif(not SIMD, reason="no SIMD ISA on this CPU/build")
def test_s2d_leaves_other_shapes_and_winograd_off(rng):
    x = rng.standard_normal((1, 3, 40, 40)).astype(np.float32)
    for R, s, C in ((5, 2, 4), (7, 3, 3), (11, 4, 8)):  # few taps; or C * s * s > 64
        xx = rng.standard_normal((1, C, 40, 40)).astype(np.float32)
        w = rng.standard_normal((8, C, R, R)).astype(np.float32)
        _core.conv2d_forward(xx, w, None, (s, s), (1, 1), (1, 1), 1, False)
        assert not _last("conv2d_fwd_f32").endswith("_s2d")
    w = rng.standard_normal((8, 3, 11, 11)).astype(np.float32)
    prev = _core.get_winograd()
    _core.set_winograd(False)
    try:
        y = _core.conv2d_forward(x, w, None, (4, 4), (2, 2), (1, 1), 1, False)
        assert not _last("conv2d_fwd_f32").endswith("_s2d")  # it runs Winograd, so it declines too
    finally:
        _core.set_winograd(prev)
    t = ref.conv2d_terms(x, w, None, stride=4, padding=2)
    ref.assert_sum_close(y, *t["y"], np.float32)
