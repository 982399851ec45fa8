"""Sequential's inference fusion on ndarrays (cnnfast.nn.fusion.conv_block_eval): Conv2d -> eval
BatchNorm2d -> activation in one conv call gives the layer-by-layer result (float rounding), and
falls back to layer by layer wherever folding would be wrong."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import nn


def _bn(c, rng, **kw):
    bn = nn.BatchNorm2d(c, **kw)
    if bn.running_mean is not None:
        bn.running_mean[...] = rng.normal(0, 0.5, c)
        bn.running_var[...] = rng.uniform(0.3, 2.0, c)
    if bn.weight is not None:
        bn.weight.data[...] = rng.uniform(0.5, 1.5, c)
        bn.bias.data[...] = rng.normal(0, 0.5, c)
    return bn.eval()


def _layer_by_layer(seq, x):
    y = x
    for m in seq:
        y = m(y)
    return y


ACTS = [None, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: "none" if a is None else a.__name__)
@pytest.mark.parametrize("with_bn", [True, False])
@pytest.mark.parametrize("plane", [1, 9], ids=["fold-in-place", "fold-weights"])  # 1x1 plane: weights > output
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_equals_layer_by_layer(act, with_bn, plane, dtype):
    rng = np.random.default_rng(0)
    layers = [nn.Conv2d(6, 8, 3, padding=1, bias=not with_bn, dtype=dtype)]
    if with_bn:
        layers.append(_bn(8, rng, dtype=dtype))
    if act is not None:
        layers.append(act())
    seq = nn.Sequential(*layers, nn.Identity()).eval()
    x = rng.standard_normal((2, 6, plane, plane)).astype(dtype)
    x[0, 0, 0, 0] = 0.0
    got = seq(x)
    want = _layer_by_layer(seq, x)
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("act", ACTS, ids=lambda a: "none" if a is None else a.__name__)
def test_bn_per_channel_with_activation_over_runs_of_planes(act):
    # weights larger than the output: BatchNorm applied to the output per channel, the activation
    # in the same pass over runs of planes (several runs per image, a run spanning two images)
    rng = np.random.default_rng(1)
    layers = [nn.Conv2d(192, 192, 1, bias=False), _bn(192, rng)]
    if act is not None:
        layers.append(act())
    seq = nn.Sequential(*layers, nn.Identity()).eval()
    x = rng.standard_normal((3, 192, 5, 7)).astype(np.float32)
    assert 192 * 192 > x.size  # not folded
    got = seq(x)
    want = _layer_by_layer(seq, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_weights_changed_in_place_are_used():
    rng = np.random.default_rng(1)
    seq = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), _bn(4, rng), nn.ReLU6()).eval()
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    first = seq(x)
    seq[0].weight.data *= 2  # as an optimizer step would
    seq[1].running_mean[...] += 1
    np.testing.assert_allclose(seq(x), _layer_by_layer(seq, x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(seq(x), first)


def test_no_fusion_where_it_would_be_wrong():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    train_bn = nn.Sequential(nn.Conv2d(3, 4, 3), _bn(4, rng).train(), nn.ReLU())
    before = train_bn[1].running_mean.copy()
    y = train_bn(x)  # training mode: batch statistics, running stats updated
    assert not np.array_equal(train_bn[1].running_mean, before)
    c = train_bn[0](x)
    ref = np.maximum(
        (c - c.mean(axis=(0, 2, 3), keepdims=True))
        / np.sqrt(c.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
        * train_bn[1].weight.data.reshape(1, -1, 1, 1)
        + train_bn[1].bias.data.reshape(1, -1, 1, 1),
        0,
    )
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    batch_stats = nn.Sequential(nn.Conv2d(3, 4, 3), _bn(4, rng, track_running_stats=False), nn.ReLU()).eval()
    conv_out = batch_stats[0](x)
    ref = np.maximum(
        (conv_out - conv_out.mean(axis=(0, 2, 3), keepdims=True))
        / np.sqrt(conv_out.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
        * batch_stats[1].weight.data.reshape(1, -1, 1, 1)
        + batch_stats[1].bias.data.reshape(1, -1, 1, 1),
        0,
    )
    np.testing.assert_allclose(batch_stats(x), ref, rtol=1e-4, atol=1e-5)


def test_hooks_and_tensors_see_every_layer():
    rng = np.random.default_rng(3)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), _bn(4, rng), nn.Hardswish()).eval()
    seen = []
    seq[1].register_forward_hook(lambda m, a, out: seen.append(type(m).__name__))
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    seq(x)
    assert seen == ["BatchNorm2d"]
    t = cnnfast.Tensor(x, requires_grad=True)
    y = seq(t)
    y.sum().backward()
    assert t.grad is not None and t.grad.shape == x.shape
    np.testing.assert_allclose(y.data, seq(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name", ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet18", "resnet50", "googlenet"]
)
def test_models_fused_equals_layer_by_layer(name):
    rng = np.random.default_rng(4)
    model = getattr(cnnfast.models, name)(num_classes=10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.normal(0, 0.2, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
        elif isinstance(m, nn.Linear):
            m.weight.data[...] = rng.normal(0, 1 / np.sqrt(m.in_features), m.weight.shape)
    model.eval()
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    with cnnfast.no_grad():
        fused = model(x)
        handles = [m.register_forward_hook(lambda *a: None) for m in model.modules() if type(m) in (nn.Conv2d, nn.ReLU)]
        plain = model(x)  # a hook on every conv and ReLU switches the fusion off
    for h in handles:
        h.remove()
    np.testing.assert_allclose(fused, plain, rtol=1e-4, atol=1e-4 * float(np.abs(plain).max()))


def test_resnet_block_shortcut_in_the_fused_call():
    """A ResNet block adds its shortcut inside the last conv's fused call (relu(bn(conv(out)) +
    identity)); with a hook, a Tensor or a training-mode BatchNorm the modules run one by one, and
    every path gives relu(bn(conv(out)) + identity) computed module by module."""
    from cnnfast.models.resnet import BasicBlock, Bottleneck

    rng = np.random.default_rng(5)
    for block in (
        BasicBlock(8, 8),
        BasicBlock(8, 16, 2, nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), _bn(16, rng))),
        Bottleneck(16, 4),
    ):
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean[...] = rng.normal(0, 0.5, m.num_features)
                m.running_var[...] = rng.uniform(0.3, 2.0, m.num_features)
                m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
        block.eval()
        bottleneck = isinstance(block, Bottleneck)
        last_conv, last_bn = (block.conv3, block.bn3) if bottleneck else (block.conv2, block.bn2)
        x = rng.standard_normal((2, block.conv1.in_channels, 10, 10)).astype(np.float32)

        def by_modules():
            with cnnfast.no_grad():
                mid = np.maximum(block.bn1(block.conv1(x)), 0)
                if bottleneck:
                    mid = np.maximum(block.bn2(block.conv2(mid)), 0)
                ident = x if block.downsample is None else block.downsample(x)
                return np.maximum(last_bn(last_conv(mid)) + ident, 0)

        want = by_modules()
        with cnnfast.no_grad():
            fused = block(x)
            h = last_bn.register_forward_hook(lambda *a: None)
            hooked = block(x)
            h.remove()
        tensor = block(cnnfast.Tensor(x)).data
        for got in (fused, hooked, tensor):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
        last_bn.train()  # batch statistics: no fold; the shortcut must still come after the BatchNorm
        want_train = by_modules()
        with cnnfast.no_grad():
            got_train = block(x)
        last_bn.eval()
        assert not np.allclose(want_train, want)
        np.testing.assert_allclose(got_train, want_train, rtol=1e-5, atol=1e-5 * float(np.abs(want_train).max()))
