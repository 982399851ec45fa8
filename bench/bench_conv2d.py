"""conv2d forward / backward-input / backward-weight+bias: cnnfast vs torch vs NumPy (im2col+einsum).

One pytest-benchmark group per (pass, case): "conv2d-<pass>-<case>". Every variant checks its
answer against the float64 oracle (tests/reference.py), computed once per case.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from _suite import (
    CONV_CASES,
    CONV_PASSES,
    NUMPY_MAX_FLOPS,
    NUMPY_MAX_FLOPS_SMOKE,
    assert_close,
    conv_data,
    conv_oracle,
    numpy_conv2d_input,
    numpy_conv2d_weight,
    reference,
    run_benchmark,
)

IMPLS = ("cnnfast", "torch", "numpy")

# Case-major order, so each case's inputs and oracle are built once and then freed (_suite cache).
PARAMS = [
    pytest.param(case, pass_, impl, id=f"{pass_}-{case.name}-{impl}")
    for case in CONV_CASES
    for pass_ in CONV_PASSES
    for impl in IMPLS
]


def _cnnfast_fn(case, pass_, d):
    x, w, b, gy, s, p = d["x"], d["w"], d["b"], d["gy"], case.stride, case.pad
    if pass_ == "forward":
        return lambda: cnnfast.conv2d(x, w, b, s, p)
    if pass_ == "backward_input":
        return lambda: cnnfast.conv2d_input(x.shape, w, gy, s, p)
    return lambda: cnnfast.conv2d_backward(gy, x, w, s, p, output_mask=(False, True, True))[1:]


def _torch_fn(torch, case, pass_, d):
    x, w, b, gy = (torch.from_numpy(d[k]) for k in ("x", "w", "b", "gy"))
    s, p = [case.stride] * 2, [case.pad] * 2
    if pass_ == "forward":

        def fwd():
            with torch.no_grad():
                return torch.nn.functional.conv2d(x, w, b, s, p).numpy()

        return fwd
    # aten.convolution_backward is what autograd (and torch.nn.grad.conv2d_input/_weight) call;
    # output_mask makes it compute only the requested gradients, as cnnfast does.
    cb = torch.ops.aten.convolution_backward
    if pass_ == "backward_input":
        return lambda: cb(gy, x, w, None, s, p, [1, 1], False, [0, 0], 1, [True, False, False])[0].numpy()
    return lambda: tuple(
        t.numpy() for t in cb(gy, x, w, [case.K], s, p, [1, 1], False, [0, 0], 1, [False, True, True])[1:]
    )


def _numpy_fn(case, pass_, d):
    x, w, b, gy, s, p = d["x"], d["w"], d["b"], d["gy"], case.stride, case.pad
    if pass_ == "forward":
        return lambda: reference.conv2d(x, w, b, s, p)
    if pass_ == "backward_input":
        return lambda: numpy_conv2d_input(gy, w, x.shape, s, p)
    return lambda: numpy_conv2d_weight(x, gy, w.shape, s, p)


def _check(case, pass_, impl, out):
    name = f"{impl} conv2d {pass_} {case.name}"
    if pass_ == "forward":
        assert_close(name, out, conv_oracle(case, "y"))
    elif pass_ == "backward_input":
        assert_close(name, out, conv_oracle(case, "gx"))
    else:
        gw, gb = out
        assert_close(name + " grad_weight", gw, conv_oracle(case, "gw"))
        assert_close(name + " grad_bias", gb, conv_oracle(case, "gb"))


@pytest.mark.parametrize("case, pass_, impl", PARAMS)
def test_conv2d(benchmark, request, threads, smoke, case, pass_, impl):
    if impl == "torch":
        torch = request.getfixturevalue("torch_mod")
    elif impl == "numpy":
        request.getfixturevalue("numpy_allowed")
        cap = NUMPY_MAX_FLOPS_SMOKE if smoke else NUMPY_MAX_FLOPS
        if case.flops > cap:
            pytest.skip(
                f"NumPy reference not timed above {cap / 1e9:g} GFLOP per pass "
                f"({case.flops / 1e9:.2f} here): seconds per call; its N=1 twin shows the ratio"
            )
    d = conv_data(case)
    fn = {
        "cnnfast": lambda: _cnnfast_fn(case, pass_, d),
        "torch": lambda: _torch_fn(torch, case, pass_, d),
        "numpy": lambda: _numpy_fn(case, pass_, d),
    }[impl]()
    out = run_benchmark(
        benchmark,
        fn,
        op="conv2d",
        pass_=pass_,
        case=case.name,
        impl=impl,
        threads=threads,
        flops=case.flops,
        label=case.label,
    )
    _check(case, pass_, impl, out)


def test_conv_cases_are_consistent():
    """The suite's flop counts and output shapes agree with cnnfast's own shape arithmetic."""
    for case in CONV_CASES:
        assert cnnfast.conv2d_output_shape(case.x_shape, case.w_shape, case.stride, case.pad) == case.y_shape
        assert case.flops == 2 * np.prod(case.y_shape) * np.prod(case.w_shape[1:])
