"""LeNet-5 end to end: one SGD training step at batch 64 and inference at batch 256, cnnfast vs torch.

conv5x5(6) - ReLU - maxpool2 - conv5x5(16) - ReLU - maxpool2 - flatten - 120 - ReLU - 84 - ReLU - 10,
on 28x28 inputs (MNIST), cross-entropy loss, SGD with momentum. Written against cnnfast.nn /
cnnfast.optim, which follow torch.nn / torch.optim; skips until they exist. Both frameworks start
from the same weights; every answer is checked against a float64 NumPy forward
(tests/reference.py), and cnnfast's updated weights against torch's when torch is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from _suite import CONV_TOL, assert_close, reference, rng_for, run_benchmark

nn = pytest.importorskip("cnnfast.nn", reason="cnnfast.nn (layers + autograd) is not available in this build")
optim = pytest.importorskip("cnnfast.optim", reason="cnnfast.optim is not available in this build")

TRAIN_BATCH, INFER_BATCH = 64, 256
LR, MOMENTUM = 0.01, 0.9
# Weights after one SGD step: both frameworks compute the same float32 gradients up to summation
# order; the update moves weights by lr * grad, so differences stay far below this.
STEP_RTOL, STEP_ATOL = 1e-3, 1e-5


def _lenet(m):
    """LeNet-5 from a torch.nn-like module namespace (cnnfast.nn or torch.nn)."""
    return m.Sequential(
        m.Conv2d(1, 6, 5),
        m.ReLU(),
        m.MaxPool2d(2),
        m.Conv2d(6, 16, 5),
        m.ReLU(),
        m.MaxPool2d(2),
        m.Flatten(),
        m.Linear(16 * 4 * 4, 120),
        m.ReLU(),
        m.Linear(120, 84),
        m.ReLU(),
        m.Linear(84, 10),
    )


def _array(t) -> np.ndarray:
    """ndarray of a cnnfast Tensor/Parameter (its .data), a torch tensor, or an ndarray."""
    if isinstance(t, np.ndarray):
        return t
    if hasattr(t, "detach"):  # torch
        return t.detach().numpy()
    data = getattr(t, "data", t)
    return np.asarray(data)


def _batch(n):
    rng = rng_for(f"lenet{n}")
    return rng.standard_normal((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def _weights():
    """The initial weights, from a freshly built cnnfast model (its own init, like torch's)."""
    return [_array(p).copy() for p in _lenet(nn).parameters()]


def _numpy_logits(ws, x):
    """float64 NumPy forward of LeNet-5 with weights ws (conv1 w, b, conv2 w, b, fc1..fc3 w, b)."""
    h = x.astype(np.float64)
    for i in (0, 2):
        h = reference.relu(reference.conv2d(h, ws[i].astype(np.float64), ws[i + 1].astype(np.float64)))
        h = reference.max_pool2d(h, 2)[0]
    h = h.reshape(len(h), -1)
    for j, i in enumerate((4, 6, 8)):
        h = h @ ws[i].astype(np.float64).T + ws[i + 1]
        if j < 2:
            h = np.maximum(h, 0)
    return h


def _numpy_loss(ws, x, y):
    z = _numpy_logits(ws, x)
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def _cnnfast_model(ws):
    model = _lenet(nn)
    for p, w in zip(model.parameters(), ws):
        np.copyto(_array(p), w)
    return model


def _torch_model(torch, ws):
    model = _lenet(torch.nn)
    with torch.no_grad():
        for p, w in zip(model.parameters(), ws):
            assert tuple(p.shape) == w.shape, f"parameter order differs: torch {tuple(p.shape)} vs cnnfast {w.shape}"
            p.copy_(torch.from_numpy(w))
    return model


def _cnnfast_step_fn(model, x, y):
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    xin = cnnfast.Tensor(x)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xin), y)
        loss.backward()
        opt.step()
        return float(_array(loss))

    return step


def _torch_step_fn(torch, model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _no_grad():
    ng = getattr(cnnfast, "no_grad", None)
    if ng is None:
        from cnnfast.autograd import no_grad as ng
    return ng()


@pytest.mark.parametrize("impl", ["cnnfast", "torch"])
def test_train_step(benchmark, request, threads, impl):
    x, y = _batch(TRAIN_BATCH)
    ws = _weights()
    first_loss = _numpy_loss(ws, x, y)
    if impl == "torch":
        torch = request.getfixturevalue("torch_mod")
        step = _torch_step_fn(torch, _torch_model(torch, ws), x, y)
    else:
        model = _cnnfast_model(ws)
        step = _cnnfast_step_fn(model, x, y)
    # The first step's loss is the loss of the initial weights: check it before timing.
    got = step()
    assert abs(got - first_loss) <= 1e-4 * max(1.0, abs(first_loss)), f"{impl}: first loss {got} != NumPy {first_loss}"
    if impl == "cnnfast" and _torch_installed():  # one step from identical weights must update them identically
        torch = request.getfixturevalue("torch_mod")
        tmodel = _torch_model(torch, ws)
        _torch_step_fn(torch, tmodel, x, y)()
        for i, (pc, pt) in enumerate(zip(model.parameters(), tmodel.parameters())):
            np.testing.assert_allclose(
                _array(pc),
                _array(pt),
                rtol=STEP_RTOL,
                atol=STEP_ATOL,
                err_msg=f"parameter {i} after one SGD step: cnnfast vs torch",
            )
    loss = run_benchmark(
        benchmark,
        step,
        op="lenet",
        pass_="train_step",
        case=f"n{TRAIN_BATCH}",
        impl=impl,
        threads=threads,
        label=f"LeNet-5 SGD step, batch {TRAIN_BATCH}",
    )
    assert np.isfinite(loss), f"{impl}: loss {loss} after training steps"


@pytest.mark.parametrize("impl", ["cnnfast", "torch"])
def test_inference(benchmark, request, threads, impl):
    x, _ = _batch(INFER_BATCH)
    ws = _weights()
    if impl == "torch":
        torch = request.getfixturevalue("torch_mod")
        model = _torch_model(torch, ws).eval()
        xt = torch.from_numpy(x)

        def fn():
            with torch.no_grad():
                return model(xt).numpy()
    else:
        model = _cnnfast_model(ws)
        model.eval()

        def fn():
            with _no_grad():
                return _array(model(x))

    out = run_benchmark(
        benchmark,
        fn,
        op="lenet",
        pass_="inference",
        case=f"n{INFER_BATCH}",
        impl=impl,
        threads=threads,
        label=f"LeNet-5 forward, batch {INFER_BATCH}",
    )
    assert_close(f"{impl} LeNet-5 inference", out, _numpy_logits(ws, x), tol=CONV_TOL)


def _torch_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
