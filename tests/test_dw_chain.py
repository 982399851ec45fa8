"""The depthwise-separable chain (``_core.dw_chain_forward``, kernels tested in
test_kernels_dwchain.py) in eval inference: Sequential and the MobileNet blocks run it, with the
outputs of the layers one by one; hooks and training-mode BatchNorms keep the layers."""

from __future__ import annotations

import numpy as np

import cnnfast
from cnnfast import _core, models, nn


def _randomize_bn(m, rng):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean[:] = rng.normal(0, 0.1, mod.num_features)
            mod.running_var[:] = rng.uniform(0.5, 2, mod.num_features)
            mod.weight.data[:] = rng.uniform(0.5, 1.5, mod.num_features)
            mod.bias.data[:] = rng.normal(0, 0.1, mod.num_features)


def _layer_by_layer(monkeypatch, m, x):
    with monkeypatch.context() as mp:
        mp.setattr(_core, "dw_chain_forward", lambda *a, **k: None)
        return m(x)


def test_sequential_runs_the_chain(monkeypatch, rng, chain_calls):
    conv = nn.Conv2d
    m = nn.Sequential(
        conv(3, 32, 3, 2, 1),
        nn.ReLU(),
        conv(32, 32, 3, 1, 1, groups=32),
        nn.ReLU(),
        conv(32, 16, 1),
        conv(16, 96, 1),
        nn.BatchNorm2d(96),
        nn.ReLU6(),
        conv(96, 96, 3, 2, 1, groups=96),
        nn.Hardswish(),
        conv(96, 24, 1),
    ).eval()
    _randomize_bn(m, rng)
    x = rng.standard_normal((2, 3, 128, 128)).astype(np.float32)
    want = _layer_by_layer(monkeypatch, m, x)
    taken = chain_calls
    with cnnfast.no_grad():
        got = m(x)
    assert taken == [True, True]  # dw 32 -> pw 16, then pw 96 -> dw s2 -> pw 24
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_mobilenet_v2_eval_uses_the_chain(monkeypatch, rng, chain_calls):
    m = models.mobilenet_v2(num_classes=10).eval()
    _randomize_bn(m, rng)
    x = rng.standard_normal((1, 3, 160, 160)).astype(np.float32)
    with cnnfast.no_grad():
        want = _layer_by_layer(monkeypatch, m, x)
        taken = chain_calls
        got = m(x)
    assert sum(taken) >= 4  # the blocks on 80x80 and 40x40 planes (smaller ones decline)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_chain_skipped_with_hooks_or_training(monkeypatch, rng, chain_calls):
    m = nn.Sequential(nn.Conv2d(16, 64, 1), nn.ReLU6(), nn.Conv2d(64, 64, 3, 1, 1, groups=64), nn.ReLU6()).eval()
    x = rng.standard_normal((1, 16, 64, 64)).astype(np.float32)
    seen = []
    h = m[2].register_forward_hook(lambda mod, i, o: seen.append(o.shape))
    taken = chain_calls
    with cnnfast.no_grad():
        m(x)
    assert seen == [(1, 64, 64, 64)] and not any(taken)
    h.remove()
    with cnnfast.no_grad():
        m(x)
    assert taken == [True]
    bn = nn.Sequential(nn.Conv2d(16, 64, 1), nn.BatchNorm2d(64), nn.Conv2d(64, 64, 3, 1, 1, groups=64))
    bn.train()
    taken.clear()
    with cnnfast.no_grad():
        bn(x)
    assert not any(taken)  # a BatchNorm in training mode is not an eval stage: no chain


def test_chain_plan_follows_module_changes(monkeypatch, rng, chain_calls):
    """Sequential remembers the chain it found at each child (nn/_eval_fusion.py's plan cache);
    every later change to the modules -- weights replaced or changed in place, a hook, a child
    replaced or deleted, training mode -- must show in the next output, as without the cache."""
    conv = nn.Conv2d
    m = nn.Sequential(
        conv(16, 64, 1), nn.BatchNorm2d(64), nn.ReLU6(), conv(64, 64, 3, 1, 1, groups=64), nn.ReLU6(), conv(64, 24, 1)
    ).eval()
    _randomize_bn(m, rng)
    x = rng.standard_normal((1, 16, 48, 48)).astype(np.float32)

    def check(expect_chain):
        want = _layer_by_layer(monkeypatch, m, x)
        chain_calls.clear()
        with cnnfast.no_grad():
            got = m(x)
        assert chain_calls == ([True] if expect_chain else [])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
        return got

    first = check(True)
    check(True)  # the remembered plan
    m[3].weight.data[:] = rng.standard_normal(m[3].weight.shape).astype(np.float32)  # in place
    assert not np.allclose(check(True), first)
    m[5].weight.data = rng.standard_normal((24, 64, 1, 1)).astype(np.float32)  # a new array
    check(True)
    seen = []
    h = m[3].register_forward_hook(lambda mod, i, o: seen.append(o.shape))
    check(False)
    assert seen == [(1, 64, 48, 48)] * 2  # the reference run and the checked one
    h.remove()
    check(True)
    m[1].train()
    check(True)  # a training-mode BatchNorm is no eval stage: only the depthwise -> project chain runs
    m.eval()
    m[4] = nn.Hardswish()  # a child replaced: the chain takes it as its depthwise activation
    check(True)
    m[4] = nn.Tanh()  # not a chain activation: expand -> depthwise, then Tanh and the 1x1 conv alone
    check(True)
    del m[4]
    assert len(m) == 5
    check(True)


def test_chain_plan_per_input_shape_and_threads(rng, chain_calls):
    """The kernel's declines (small planes) are remembered per input shape and thread count: a
    larger input, or another thread count, is offered to the kernel again."""
    m = nn.Sequential(nn.Conv2d(32, 96, 1), nn.ReLU6(), nn.Conv2d(96, 96, 3, 1, 1, groups=96), nn.ReLU6()).eval()
    small = rng.standard_normal((1, 32, 4, 4)).astype(np.float32)
    big = rng.standard_normal((1, 32, 56, 56)).astype(np.float32)
    with cnnfast.no_grad():
        m(small)
        m(small)
        assert chain_calls == [False]  # declined once, then not asked again for this shape
        m(big)
        assert chain_calls == [False, True]
        old = cnnfast.get_num_threads()
        try:
            cnnfast.set_num_threads(old + 1)
            m(small)
        finally:
            cnnfast.set_num_threads(old)
    assert chain_calls == [False, True, False]
