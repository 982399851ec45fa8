"""Optimizers and schedulers: update rules and lr sequences against torch.optim, state handling."""

from __future__ import annotations

import types

import numpy as np
import pytest

from cnnfast import optim
from cnnfast.optim import lr_scheduler


def _param(arr):
    """The optimizer only needs ``.data`` (ndarray, updated in place) and ``.grad``."""
    return types.SimpleNamespace(data=np.array(arr, copy=True), grad=None)


def _run_vs_torch(make_ours, make_torch, dtype=np.float64, steps=6, seed=0):
    """Same initial params and same gradient sequence in both; params must stay allclose."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (5,), (2, 3, 2)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [_param(a) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt, topt = make_ours(ours), make_torch(torch, theirs)
    for _ in range(steps):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.data.shape).astype(dtype)
            p.grad = g
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-6, atol=2e-6)
    for p, t in zip(ours, theirs):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, t.detach().numpy(), **tol)
    return opt


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-3),
    dict(lr=0.05, momentum=0.9, maximize=True),
]


@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_matches_torch(kw, dtype):
    _run_vs_torch(lambda ps: optim.SGD(ps, **kw), lambda torch, ts: torch.optim.SGD(ts, **kw), dtype=dtype)


ADAM_CASES = [
    dict(),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=1e-2, amsgrad=True),
    dict(lr=1e-2, amsgrad=True, weight_decay=0.05, maximize=True),
]


@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_matches_torch(kw, dtype):
    _run_vs_torch(lambda ps: optim.Adam(ps, **kw), lambda torch, ts: torch.optim.Adam(ts, **kw), dtype=dtype)


@pytest.mark.parametrize(
    "kw", [dict(), dict(lr=1e-2, weight_decay=0.3), dict(lr=1e-2, amsgrad=True)], ids=["default", "wd", "amsgrad"]
)
def test_adamw_matches_torch(kw):
    _run_vs_torch(lambda ps: optim.AdamW(ps, **kw), lambda torch, ts: torch.optim.AdamW(ts, **kw))


def test_param_groups_use_their_own_hyperparameters():
    _run_vs_torch(
        lambda ps: optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5, "momentum": 0.5}], lr=0.1),
        lambda torch, ts: torch.optim.SGD([{"params": ts[:1]}, {"params": ts[1:], "lr": 0.5, "momentum": 0.5}], lr=0.1),
    )


def test_param_without_grad_is_skipped_and_zero_grad():
    a, b = _param(np.ones(3)), _param(np.ones(2))
    opt = optim.SGD([a, b], lr=1.0)
    a.grad = np.full(3, 0.5)
    opt.step()
    np.testing.assert_array_equal(a.data, np.full(3, 0.5))
    np.testing.assert_array_equal(b.data, np.ones(2))
    g = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is g and not g.any() and b.grad is None
    opt.zero_grad()
    assert a.grad is None


def test_updates_are_in_place():
    p = _param(np.ones((2, 2), np.float32))
    buf = p.data
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9), optim.Adam([p]), optim.AdamW([p])):
        p.grad = np.ones((2, 2), np.float32)
        opt.step()
        assert p.data is buf and p.data.dtype == np.float32


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    init = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(6)]

    def run(split):
        p = _param(init)
        opt = optim.Adam([p], lr=0.01, amsgrad=True)
        for i, g in enumerate(grads):
            if i == split:
                sd = opt.state_dict()
                opt = optim.Adam([p], lr=0.5)  # fresh optimizer, different lr: load must restore both
                opt.load_state_dict(sd)
            p.grad = g
            opt.step()
        return p.data, opt

    whole, _ = run(split=None)
    resumed, opt = run(split=3)
    np.testing.assert_array_equal(whole, resumed)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["lr"] == 0.01 and sd["param_groups"][0]["params"] == [0]
    assert sd["state"][0]["step"] == 6 and set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}


def test_load_state_dict_rejects_mismatched_layout():
    opt = optim.SGD([_param(np.ones(2)), _param(np.ones(3))], lr=0.1)
    other = optim.SGD([_param(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="size 2 .* optimizer's group \\(1\\)"):
        other.load_state_dict(opt.state_dict())


def test_invalid_arguments():
    p = [_param(np.ones(2))]
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": p}, {"params": p}], lr=0.1)
    q = _param(np.ones(2))
    q.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) does not match its parameter of shape \(2,\)"):
        optim.SGD([q], lr=0.1).step()


def _lrs_vs_torch(make_ours, make_torch, epochs=25):
    torch = pytest.importorskip("torch")
    ours = optim.SGD([{"params": [_param(np.ones(2))]}, {"params": [_param(np.ones(2))], "lr": 0.3}], lr=0.1)
    theirs = torch.optim.SGD(
        [{"params": [torch.ones(2, requires_grad=True)]}, {"params": [torch.ones(2, requires_grad=True)], "lr": 0.3}],
        lr=0.1,
    )
    s, ts = make_ours(ours), make_torch(torch, theirs)
    got, want = [], []
    for _ in range(epochs):
        got.append(s.get_last_lr())
        want.append(ts.get_last_lr())
        ours.step()
        theirs.step()
        s.step()
        ts.step()
    assert got == want  # same recursive formulas -> bit-identical floats
    assert [g["lr"] for g in ours.param_groups] == [g["lr"] for g in theirs.param_groups]


@pytest.mark.parametrize("step_size,gamma", [(1, 0.5), (3, 0.1), (7, 0.9)])
def test_steplr_matches_torch(step_size, gamma):
    _lrs_vs_torch(
        lambda o: lr_scheduler.StepLR(o, step_size, gamma=gamma),
        lambda torch, o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma=gamma),
    )


@pytest.mark.parametrize("T_max,eta_min", [(10, 0.0), (4, 0.01), (1, 0.0)])
def test_cosine_matches_torch(T_max, eta_min):
    _lrs_vs_torch(
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max, eta_min=eta_min),
        lambda torch, o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max, eta_min=eta_min),
        epochs=3 * T_max + 5,
    )


def test_steplr_closed_form_without_torch():
    opt = optim.SGD([_param(np.ones(1))], lr=1.0)
    s = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        s.step()
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_cosine_reaches_eta_min_and_back():
    opt = optim.SGD([_param(np.ones(1))], lr=1.0)
    s = lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = [s.get_last_lr()[0]]
    for _ in range(8):
        s.step()
        lrs.append(s.get_last_lr()[0])
    assert lrs[0] == 1.0 and lrs[4] == pytest.approx(0.1) and lrs[8] == pytest.approx(1.0)
    assert lrs[2] == pytest.approx(0.1 + 0.9 * 0.5)
