"""cnnfast.models against torchvision 0.29 (pure-Python model code, see torchvision_ref.py):
state-dict keys and shapes, parameter counts, eval outputs for the same weights (loaded from a
file torch.save wrote, through cnnfast.load_torch), training-mode outputs and gradients, summary()
and BatchNorm folding."""

from __future__ import annotations

import io

import numpy as np
import pytest

import cnnfast
from cnnfast import Tensor, models, nn

PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_small": 2_542_856,
    "efficientnet_b0": 5_288_548,
    "googlenet": 6_624_904,
}
ARCHS = list(PARAMS)


def _randomize_bn(tv_model, seed):
    """Non-trivial BatchNorm statistics and affine parameters, so eval mode tests them."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in tv_model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.num_batches_tracked.fill_(7)


def _input(seed=0, shape=(2, 3, 64, 64)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def tv():
    import torchvision_ref

    return torchvision_ref.builders()


@pytest.mark.parametrize("name", ARCHS)
def test_parameter_count_keys_and_shapes_match_torchvision(name, tv):
    ref = tv[name]()
    model = getattr(models, name)()
    assert model.num_parameters() == PARAMS[name] == sum(p.numel() for p in ref.parameters())
    ref_sd = ref.state_dict()
    sd = model.state_dict()
    assert list(sd) == list(ref_sd)
    for k, v in ref_sd.items():
        assert sd[k].shape == tuple(v.shape), k
        assert sd[k].dtype == (np.int64 if k.endswith("num_batches_tracked") else np.float32), k
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in ref.named_parameters()]
    # num_classes changes only the head
    small = getattr(models, name)(num_classes=10)
    assert small.num_parameters() == sum(p.numel() for p in tv[name](num_classes=10).parameters())


@pytest.mark.parametrize("name", ARCHS)
def test_eval_outputs_match_torchvision_through_load_torch(name, tv, tmp_path):
    """torchvision weights -> torch.save -> cnnfast.load_torch (no torch) -> load_state_dict -> same logits."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = tv[name](num_classes=10)
    _randomize_bn(ref, seed=1)
    ref.eval()
    path = tmp_path / f"{name}.pth"
    torch.save(ref.state_dict(), path)
    loaded = cnnfast.load_torch(path)
    ref_sd = ref.state_dict()
    assert list(loaded) == list(ref_sd)
    for k, v in ref_sd.items():
        np.testing.assert_array_equal(loaded[k], v.numpy(), err_msg=k)
    model = getattr(models, name)(num_classes=10)
    model.load_state_dict(loaded)
    model.eval()
    x = _input()
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    got = model(x)
    assert type(got) is np.ndarray and got.shape == (2, 10) and got.dtype == np.float32
    scale = np.abs(want).max()
    err = np.abs(got - want).max()
    print(f"\n{name}: max abs error vs torchvision {err:.2e} (max |logit| {scale:.3g}, input {x.shape})")
    assert err <= 1e-4 * max(scale, 1.0), f"{name}: max abs error {err:.3g} (output scale {scale:.3g})"
    # a Tensor input gives the same values (and records a graph)
    t_out = model(Tensor(x))
    np.testing.assert_allclose(t_out.data, got, rtol=1e-5, atol=1e-5 * max(scale, 1.0))


def _compare_training_step(model, ref, x, target, torch):
    """One float64 training step through both: logits, loss, every parameter gradient, the
    input gradient and the updated running statistics must agree."""
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    ref.train(), model.train()
    xt = Tensor(x, requires_grad=True)
    out = model(xt)
    xtt = torch.from_numpy(x.copy()).requires_grad_()
    tout = ref(xtt)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-8, atol=1e-9)
    if target is None:
        v = np.random.default_rng(9).standard_normal(out.shape)
        (out * v).sum().backward()
        (tout * torch.from_numpy(v)).sum().backward()
    else:
        loss = cnnfast.cross_entropy(out, target)
        loss.backward()
        tloss = torch.nn.functional.cross_entropy(tout, torch.from_numpy(target))
        tloss.backward()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=1e-6, atol=1e-8 * max(np.abs(xt.grad).max(), 1.0))
    tparams = dict(ref.named_parameters())
    for k, p in model.named_parameters():
        g, tg = p.grad, tparams[k].grad.numpy()
        assert g is not None, k
        np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-8 * max(np.abs(tg).max(), 1.0), err_msg=k)
    tsd = ref.state_dict()
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(v, tsd[k].numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def _block_pair(kind):
    """The same block from cnnfast.models and from torchvision, in float64."""
    from functools import partial

    import torch

    import cnnfast.models.efficientnet as cf_eff
    import cnnfast.models.mobilenet as cf_mob
    import torchvision.models.efficientnet as tv_eff
    import torchvision.models.mobilenetv2 as tv_mob2
    import torchvision.models.mobilenetv3 as tv_mob3

    if kind == "mobilenet_v2":  # expand 6, depthwise, project, residual
        return cf_mob.InvertedResidual(16, 16, 1, 6), tv_mob2.InvertedResidual(16, 16, 1, 6), 16
    if kind == "mobilenet_v3":  # hardswish, squeeze-and-excitation with hardsigmoid, 5x5, residual
        args = (24, 5, 96, 24, True, "HS", 1, 1, 1.0)
        return (
            cf_mob.InvertedResidualV3(cf_mob._V3Config(*args), partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)),
            tv_mob3.InvertedResidual(
                tv_mob3.InvertedResidualConfig(*args), partial(torch.nn.BatchNorm2d, eps=1e-3, momentum=0.01)
            ),
            24,
        )
    if kind == "inception":  # four branches (max pool with ceil_mode), cat along channels
        import importlib

        cf_g = importlib.import_module("cnnfast.models.googlenet")  # the attribute is the function
        tv_g = importlib.import_module("torchvision.models.googlenet")

        return cf_g.Inception(32, 8, 8, 16, 4, 8, 8), tv_g.Inception(32, 8, 8, 16, 4, 8, 8), 32
    # efficientnet: SiLU, SE with SiLU, stride 1 residual (stochastic depth off)
    args = (6, 3, 1, 16, 16, 1)
    return (
        cf_eff.MBConv(cf_eff.MBConvConfig(*args), 0.0, nn.BatchNorm2d),
        tv_eff.MBConv(tv_eff.MBConvConfig(*args), 0.0, torch.nn.BatchNorm2d),
        16,
    )


@pytest.mark.parametrize("kind", ["mobilenet_v2", "mobilenet_v3", "efficientnet", "inception"])
def test_training_mode_blocks_match_torchvision(kind, tv):
    """The blocks in training mode (whole networks with depthwise convs would take torch too long
    in float64: its depthwise conv is then a per-channel loop)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    model, ref, c = _block_pair(kind)
    _compare_training_step(model.double(), ref.double(), _input(5, (4, c, 7, 7)).astype(np.float64), None, torch)


@pytest.mark.parametrize("name", ["resnet18"])
def test_training_mode_outputs_gradients_and_running_stats_match_torchvision(name, tv):
    """One training step in float64 (batch statistics, no dropout/stochastic depth): logits,
    parameter gradients and updated running statistics equal torchvision's. (float64: with a
    batch of 4 the deep layers' batch statistics are ill-conditioned enough that float32 rounding
    differences grow to ~1% in the first layer's gradient.)"""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    ref = tv[name](num_classes=5).double()
    model = getattr(models, name)(num_classes=5).double()
    x = _input(3, (4, 3, 32, 32)).astype(np.float64)
    _compare_training_step(model, ref, x, np.array([0, 1, 2, 3]), torch)


@pytest.mark.parametrize("name", ARCHS)
def test_summary_shows_the_parameter_count(name):
    model = getattr(models, name)()
    buf = io.StringIO()
    info = model.summary((1, 3, 64, 64), file=buf)
    assert info["total_params"] == PARAMS[name] == info["trainable_params"]
    assert f"Total params: {PARAMS[name]:,}" in buf.getvalue()
    assert info["layers"][-1]["output_shape"] == (1, 1000)
    # freezing the backbone (the transfer-learning recipe) shows up as non-trainable
    model.requires_grad_(False)
    head = model.fc if hasattr(model, "fc") else model.classifier
    head.requires_grad_(True)
    info = model.summary((1, 3, 64, 64), file=False)
    assert 0 < info["trainable_params"] < info["total_params"] == PARAMS[name]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "googlenet"])
def test_fold_batchnorm_keeps_eval_outputs(name):
    rng = np.random.default_rng(5)
    model = getattr(models, name)(num_classes=7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[:] = rng.standard_normal(m.num_features) * 0.1
            m.running_var[:] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight.data[:] = rng.uniform(0.5, 1.5, m.num_features)
    model.eval()
    x = _input(4)
    want = model(x)
    nn.fold_batchnorm(model)
    left = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert left == []
    got = model(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_googlenet_loads_torchvision_weights_with_aux_heads_and_transform_input(tv, tmp_path):
    torch = pytest.importorskip("torch")
    import torchvision.models.googlenet as tvg

    torch.manual_seed(2)
    ref = tvg.GoogLeNet(num_classes=10, aux_logits=True, transform_input=True, init_weights=False)
    _randomize_bn(ref, seed=3)
    ref.eval()
    torch.save(ref.state_dict(), tmp_path / "g.pth")
    sd = cnnfast.load_torch(tmp_path / "g.pth")
    assert any(k.startswith("aux1.") for k in sd)
    model = models.googlenet(num_classes=10, transform_input=True)
    model.load_state_dict(sd)
    model.eval()
    x = _input(6)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    with pytest.raises(NotImplementedError, match="auxiliary"):
        models.googlenet(aux_logits=True)


def test_models_namespace():
    assert sorted(models.list_models()) == sorted(ARCHS)
    m = models.resnet18(num_classes=3)
    assert repr(m).startswith(
        "ResNet(\n  (conv1): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), "
        "bias=False)\n  (bn1): BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, bias=True, "
        "track_running_stats=True)"
    )


def test_residual_add_in_place_only_on_an_unshared_fresh_array():
    from cnnfast.models._blocks import _residual_add

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    r = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    want = r + x
    result = r.copy()
    result = _residual_add(result, x)
    np.testing.assert_array_equal(result, want)
    # held elsewhere (r), a view, memory of another object, another dtype: never overwritten
    held = r.copy()
    keep = held
    result = _residual_add(held, x)
    assert result is not keep
    np.testing.assert_array_equal(keep, r)
    big = np.concatenate([r, r])
    view = big[:1]
    result = _residual_add(view, x)
    np.testing.assert_array_equal(big, np.concatenate([r, r]))
    buf = bytearray(r.tobytes())
    shared = np.frombuffer(buf, np.float32).reshape(r.shape)
    result = _residual_add(shared, x)
    np.testing.assert_array_equal(np.frombuffer(buf, np.float32).reshape(r.shape), r)
    np.testing.assert_array_equal(result, want)
    result = _residual_add(r.astype(np.float64), x)
    assert result.dtype == np.float64


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_residual_blocks_eval_in_place_add_keeps_hooked_outputs(name):
    cnnfast.manual_seed(0)
    m = getattr(models, name)()
    m.eval()
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with cnnfast.no_grad():
        want = m(Tensor(x)).data
        got = m(x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        # a forward hook that keeps a residual branch's output: the kept array is not overwritten
        blocks = [b for b in m.modules() if getattr(b, "use_res_connect", False)]
        assert blocks
        branch = getattr(blocks[0], "conv", None) or blocks[0].block
        kept = []
        branch.register_forward_hook(lambda mod, inp, out: kept.append((out, out.copy())))
        got2 = m(x)
        np.testing.assert_allclose(got2, want, rtol=1e-4, atol=1e-4)
        assert kept and kept[0][0] is not None
        np.testing.assert_array_equal(kept[0][0], kept[0][1])


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_folded_model_keeps_the_fused_eval_calls(name, monkeypatch):
    """fold_batchnorm leaves Identity modules where the BatchNorm2d layers were: the eval path passes
    over them, so the folded model makes the same fused C++ calls as the original (conv + activation
    in one call, depthwise chains, shortcut adds) -- not a separate activation pass per layer."""
    from cnnfast import _core

    rng = np.random.default_rng(6)
    model = getattr(models, name)(num_classes=5).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var[:] = rng.uniform(0.5, 1.5, m.num_features)
    x = _input(1, (1, 3, 96, 96))
    names = ("conv2d_forward", "conv_bn_act_forward", "dw_chain_forward", "pointwise_forward", "se_scale_forward")
    counts = {}
    for k in names:
        real = getattr(_core, k)

        def counted(*a, _real=real, _k=k, **kw):
            counts[_k] = counts.get(_k, 0) + 1
            return _real(*a, **kw)

        monkeypatch.setattr(_core, k, counted)
    with cnnfast.no_grad():
        want = model(x)
        before = dict(counts)
        counts.clear()
        nn.fold_batchnorm(model)
        got = model(x)
    assert counts == before and before.get("conv_bn_act_forward", 0) > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
