"""max_pool2d forward (with and without indices) and backward: cnnfast vs torch vs NumPy.

Groups "maxpool2d-<pass>-<shape>_<cfg>", passes forward / forward_indices / backward, configs
2x2/s2 and 3x3/s2/p1. Answers are checked exactly against tests/reference.py (max is exact;
the backward's overlapping-window sums to POOL_BWD_RTOL).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from _suite import (
    POOL_BWD_RTOL,
    POOL_CFGS,
    POOL_PASSES,
    POOL_SHAPES,
    numpy_max_pool2d,
    pool_bytes,
    pool_data,
    reference,
    run_benchmark,
)

IMPLS = ("cnnfast", "torch", "numpy")
PARAMS = [
    pytest.param(shape, cfg, pass_, impl, id=f"{pass_}-{shape.name}_{cfg.name}-{impl}")
    for shape in POOL_SHAPES
    for cfg in POOL_CFGS
    for pass_ in POOL_PASSES
    for impl in IMPLS
]


def _fn(impl, torch, cfg, pass_, d):
    k, s, p = cfg.k, cfg.s, cfg.p
    x, gy, idx = d["x"], d["gy"], d["idx"]
    if impl == "cnnfast":
        if pass_ == "forward":
            return lambda: cnnfast.max_pool2d(x, k, s, p)
        if pass_ == "forward_indices":
            return lambda: cnnfast.max_pool2d(x, k, s, p, return_indices=True)
        return lambda: cnnfast.max_pool2d_backward(gy, x.shape, idx, k, s, p)
    if impl == "torch":
        xt, gyt, it = torch.from_numpy(x), torch.from_numpy(gy), torch.from_numpy(idx)
        F = torch.nn.functional
        if pass_ == "forward":

            def fwd():
                with torch.no_grad():
                    return F.max_pool2d(xt, k, s, p).numpy()

            return fwd
        if pass_ == "forward_indices":

            def fwd_idx():
                with torch.no_grad():
                    y, i = F.max_pool2d(xt, k, s, p, return_indices=True)
                return y.numpy(), i.numpy()

            return fwd_idx
        # What autograd calls for max_pool2d's backward.
        bwd = torch.ops.aten.max_pool2d_with_indices_backward
        return lambda: bwd(gyt, xt, [k, k], [s, s], [p, p], [1, 1], False, it).numpy()
    if pass_ == "forward":
        return lambda: numpy_max_pool2d(x, k, s, p)
    if pass_ == "forward_indices":
        return lambda: numpy_max_pool2d(x, k, s, p, return_indices=True)
    return lambda: reference.max_pool2d_backward(gy, idx, x.shape)


def _check(name, pass_, out, d):
    if pass_ == "forward":
        np.testing.assert_array_equal(out, d["y"], err_msg=name)
    elif pass_ == "forward_indices":
        y, idx = out
        np.testing.assert_array_equal(y, d["y"], err_msg=name)
        np.testing.assert_array_equal(idx, d["idx"], err_msg=name + " indices")
    else:
        np.testing.assert_allclose(out, d["gx"], rtol=POOL_BWD_RTOL, atol=POOL_BWD_RTOL, err_msg=name)
    arr = out[0] if isinstance(out, tuple) else out
    assert arr.dtype == np.float32, f"{name}: dtype {arr.dtype}"


@pytest.mark.parametrize("shape, cfg, pass_, impl", PARAMS)
def test_max_pool2d(benchmark, request, threads, shape, cfg, pass_, impl):
    torch = request.getfixturevalue("torch_mod") if impl == "torch" else None
    if impl == "numpy":
        request.getfixturevalue("numpy_allowed")
    d = pool_data(shape, cfg)
    case = f"{shape.name}_{cfg.name}"
    out = run_benchmark(
        benchmark,
        _fn(impl, torch, cfg, pass_, d),
        op="maxpool2d",
        pass_=pass_,
        case=case,
        impl=impl,
        threads=threads,
        bytes=pool_bytes(shape, cfg, pass_),
        label=f"{shape.N}x{shape.C}x{shape.H}x{shape.W}, {cfg.k}x{cfg.k} s{cfg.s} p{cfg.p}",
    )
    _check(f"{impl} max_pool2d {pass_} {case}", pass_, out, d)
