"""ReLU forward/backward, out-of-place and into a preallocated buffer / in place: cnnfast vs torch vs NumPy.

Groups "relu-<pass>-<shape>": forward and backward allocate their result (as torch.relu and
autograd do); forward_out / backward_out write into a preallocated buffer and forward_inplace
overwrites the input, which is what the bandwidth target is about (no page faults on a fresh
output). Every answer is checked exactly against tests/reference.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from _suite import RELU_SHAPES, relu_data, run_benchmark

PASSES = ("forward", "backward", "forward_out", "backward_out", "forward_inplace")
# Bytes each pass must move per element: read x (and grad_output) and write the result.
BYTES_PER_ELEMENT = {"forward": 8, "backward": 12, "forward_out": 8, "backward_out": 12, "forward_inplace": 8}
IMPLS = ("cnnfast", "torch", "numpy")
PARAMS = [
    pytest.param(name, pass_, impl, id=f"{pass_}-{name}-{impl}")
    for name in RELU_SHAPES
    for pass_ in PASSES
    for impl in IMPLS
]


def _fn(impl, torch, pass_, d):
    x, gy = d["x"], d["gy"]
    buf = np.empty_like(x)
    if pass_ == "forward_inplace":
        np.copyto(buf, x)  # relu is idempotent: repeated in-place calls keep the right answer
    if impl == "cnnfast":
        return {
            "forward": lambda: cnnfast.relu(x),
            "backward": lambda: cnnfast.relu_backward(gy, x),
            "forward_out": lambda: cnnfast.relu(x, out=buf),
            "backward_out": lambda: cnnfast.relu_backward(gy, x, out=buf),
            "forward_inplace": lambda: cnnfast.relu_(buf),
        }[pass_]
    if impl == "torch":
        xt, gyt, bt = torch.from_numpy(x), torch.from_numpy(gy), torch.from_numpy(buf)
        tb = torch.ops.aten.threshold_backward  # what autograd calls for relu's backward
        return {
            "forward": lambda: torch.relu(xt).numpy(),
            "backward": lambda: tb(gyt, xt, 0.0).numpy(),
            "forward_out": lambda: torch.clamp_min(xt, 0.0, out=bt).numpy(),
            "backward_out": lambda: tb.grad_input(gyt, xt, 0.0, grad_input=bt).numpy(),
            "forward_inplace": lambda: torch.relu_(bt).numpy(),
        }[pass_]
    return {
        "forward": lambda: np.maximum(x, 0),
        "backward": lambda: np.where(x > 0, gy, np.float32(0)),
        "forward_out": lambda: np.maximum(x, 0, out=buf),
        "backward_out": lambda: np.multiply(gy, x > 0, out=buf),
        "forward_inplace": lambda: np.maximum(buf, 0, out=buf),
    }[pass_]


@pytest.mark.parametrize("name, pass_, impl", PARAMS)
def test_relu(benchmark, request, threads, name, pass_, impl):
    torch = request.getfixturevalue("torch_mod") if impl == "torch" else None
    if impl == "numpy":
        request.getfixturevalue("numpy_allowed")
    d = relu_data(name)
    out = run_benchmark(
        benchmark,
        _fn(impl, torch, pass_, d),
        op="relu",
        pass_=pass_,
        case=name,
        impl=impl,
        threads=threads,
        bytes=BYTES_PER_ELEMENT[pass_] * d["x"].size,
        label="x".join(map(str, d["x"].shape)),
    )
    ref = d["gx"] if pass_.startswith("backward") else d["y"]
    assert out.dtype == np.float32, f"{impl} relu {pass_}: dtype {out.dtype}"
    np.testing.assert_array_equal(out, ref, err_msg=f"{impl} relu {pass_} {name}")
