"""cnnfast.nn: layers vs torch (copied weights, forward and gradients) and finite differences,
Module API (parameters, modes, state_dict, freezing, hooks, repr), init, Sequential, summary."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import cnnfast
from cnnfast import Tensor, nn


def lenet(m):
    """The lecture's LeNet-style net, written once for cnnfast.nn and torch.nn."""
    return m.Sequential(
        m.Conv2d(1, 6, 5, padding=2),
        m.ReLU(),
        m.MaxPool2d(2),
        m.Conv2d(6, 16, 5),
        m.ReLU(),
        m.MaxPool2d(2),
        m.Flatten(),
        m.Linear(400, 120),
        m.ReLU(),
        m.Linear(120, 84),
        m.ReLU(),
        m.Linear(84, 10),
    )


def copy_to_torch(cnet, tnet):
    import torch

    with torch.no_grad():
        for (cn, cp), (tn, tp) in zip(cnet.named_parameters(), tnet.named_parameters()):
            assert cn == tn and cp.shape == tuple(tp.shape)
            tp.copy_(torch.from_numpy(cp.data))


def fd_params(model, x, loss_fn, eps=1e-6, atol=1e-7, rtol=1e-5):
    """Parameter gradients of loss_fn(model(x)) vs central finite differences (model in float64)."""
    model.double()
    model.zero_grad()
    loss_fn(model(Tensor(x))).backward()
    for name, p in model.named_parameters():
        num = np.zeros_like(p.data)
        for i in np.ndindex(p.shape):
            old = p.data[i]
            p.data[i] = old + eps
            hi = float(loss_fn(model(x)))
            p.data[i] = old - eps
            lo = float(loss_fn(model(x)))
            p.data[i] = old
            num[i] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(p.grad, num, atol=atol, rtol=rtol, err_msg=name)


def sq_loss(y):
    v = np.cos(np.arange(np.size(y.data if isinstance(y, Tensor) else y))).reshape(
        np.shape(y.data if isinstance(y, Tensor) else y)
    )
    return (y * v).sum()


# ---------------------------------------------------------------------------- layers: FD


@pytest.mark.parametrize(
    "layer, shape",
    [
        (lambda: nn.Conv2d(2, 4, 3, padding=1, stride=2), (2, 2, 5, 5)),
        (lambda: nn.Conv2d(4, 4, 3, padding="same", groups=2, bias=False), (1, 4, 4, 4)),
        (lambda: nn.Linear(5, 3), (4, 5)),
    ],
    ids=["conv", "conv_groups_same", "linear"],
)
def test_layer_param_gradients_fd(layer, shape):
    cnnfast.manual_seed(0)
    x = np.random.default_rng(0).standard_normal(shape)
    fd_params(layer(), x, sq_loss)


def test_small_cnn_param_gradients_fd():
    cnnfast.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2, 3, 2, padding=1),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 3),
    )
    x = np.random.default_rng(2).standard_normal((2, 1, 8, 8))
    fd_params(net, x, lambda y: nn.CrossEntropyLoss()(y, np.array([0, 2])), atol=1e-7)


# ---------------------------------------------------------------------------- layers vs torch


LAYERS = [
    ("conv", lambda m: m.Conv2d(3, 8, 3, stride=2, padding=1), (2, 3, 9, 8)),
    ("conv_dil_groups", lambda m: m.Conv2d(4, 6, (3, 2), dilation=2, groups=2, bias=False), (2, 4, 9, 8)),
    ("maxpool", lambda m: m.MaxPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 9, 8)),
    ("avgpool", lambda m: m.AvgPool2d(2), (2, 3, 8, 8)),
    ("relu", lambda m: m.ReLU(), (4, 5)),
    ("leaky", lambda m: m.LeakyReLU(0.1), (4, 5)),
    ("sigmoid", lambda m: m.Sigmoid(), (4, 5)),
    ("tanh", lambda m: m.Tanh(), (4, 5)),
    ("softmax", lambda m: m.Softmax(dim=1), (4, 5)),
    ("logsoftmax", lambda m: m.LogSoftmax(dim=1), (4, 5)),
    ("flatten", lambda m: m.Flatten(), (2, 3, 4)),
    ("linear", lambda m: m.Linear(5, 7), (4, 5)),
    ("lenet", lenet, (3, 1, 28, 28)),
]


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(name, make, shape):
    torch = pytest.importorskip("torch")
    c, t = make(nn), make(torch.nn)
    copy_to_torch(c, t)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    cx, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    cy, ty = c(cx), t(tx)
    # float32: tolerances a few ulps of the accumulated sums (conv/linear reduce over up to 400 terms)
    np.testing.assert_allclose(cy.data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    v = np.random.default_rng(5).standard_normal(cy.shape).astype(np.float32)
    (cy * v).sum().backward()
    (ty * torch.from_numpy(v)).sum().backward()
    np.testing.assert_allclose(cx.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (n, p), tp in zip(c.named_parameters(), t.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=n)


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    for make in (
        lenet,
        lambda m: m.Conv2d(3, 8, (3, 5), stride=2, padding=1, dilation=2, bias=False),
        lambda m: m.Conv2d(4, 4, 3, padding="same", groups=2),
        lambda m: m.MaxPool2d(3, 1, 1, ceil_mode=True),
        lambda m: m.AvgPool2d(2),
        lambda m: m.ReLU(True),
        lambda m: m.LeakyReLU(0.2, True),
        lambda m: m.Sigmoid(),
        lambda m: m.Softmax(dim=1),
        lambda m: m.LogSoftmax(dim=0),
        lambda m: m.Linear(4, 3, bias=False),
        lambda m: m.Dropout(0.2),
        lambda m: m.Identity(),
        lambda m: m.CrossEntropyLoss(),
        lambda m: m.BCEWithLogitsLoss(),
    ):
        assert repr(make(nn)) == repr(make(torch.nn))


# ---------------------------------------------------------------------------- layer behaviour


def test_layers_ndarray_in_ndarray_out():
    net = lenet(nn)
    x = np.zeros((2, 1, 28, 28), np.float32)
    y = net(x)
    assert type(y) is np.ndarray and y.shape == (2, 10) and y.dtype == np.float32
    assert all(p.grad is None for p in net.parameters())
    yt = net(Tensor(x))
    assert isinstance(yt, Tensor) and yt.requires_grad
    np.testing.assert_allclose(yt.data, y, rtol=1e-6)
    # unbatched CHW image through the conv part
    assert net[:6](x[0]).shape == (16, 5, 5)


def test_default_init_matches_pytorch_bounds():
    conv = nn.Conv2d(3, 8, 5, generator=np.random.default_rng(0))
    bound = 1 / math.sqrt(3 * 5 * 5)
    for p in (conv.weight, conv.bias):
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound
        assert p.dtype == np.float32 and p.requires_grad
    lin = nn.Linear(400, 120, generator=1)
    assert np.abs(lin.weight.data).max() <= 1 / 20 and lin.weight.data.std() > 0.8 / 20 / math.sqrt(3)
    assert nn.Conv2d(1, 2, 3, dtype=np.float64).weight.dtype == np.float64


def test_init_reproducible_with_generator_and_manual_seed():
    a = nn.Conv2d(3, 4, 3, generator=np.random.default_rng(7))
    b = nn.Conv2d(3, 4, 3, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    cnnfast.manual_seed(3)
    n1 = lenet(nn)
    cnnfast.manual_seed(3)
    n2 = lenet(nn)
    for p, q in zip(n1.parameters(), n2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(n1[0].weight.data, lenet(nn)[0].weight.data)


def test_layer_validation():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding string"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="positive int"):
        nn.Conv2d(0, 1, 3)
    with pytest.raises(TypeError, match="kernel_size"):
        nn.Conv2d(1, 1, 2.5)
    with pytest.raises(ValueError, match="half of effective kernel"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="half of kernel"):
        nn.AvgPool2d(3, padding=2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(-0.1)
    with pytest.raises(ValueError, match="dim="):
        nn.Softmax()(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"Given groups=1.*expected input.*to have 3 channels"):
        nn.Conv2d(3, 2, 3)(np.ones((1, 2, 5, 5), np.float32))


def test_dropout_train_eval():
    d = nn.Dropout(0.5, generator=0)
    x = np.ones((100, 100), np.float32)
    y = d(x)
    assert 0.4 < (y == 0).mean() < 0.6 and set(np.unique(y)) == {0.0, 2.0}
    d.eval()
    np.testing.assert_array_equal(d(x), x)


def test_sequential_fusion_is_transparent():
    cnnfast.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 3))
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    xt = Tensor(x, requires_grad=True)
    y = seq(xt)
    assert y.grad_fn is not None
    (y * y).sum().backward()
    grads = [p.grad.copy() for p in seq.parameters()] + [xt.grad.copy()]
    seq.zero_grad()
    xt.grad = None
    unfused = seq[2](seq[1](seq[0](xt)))  # layer by layer: no fusion
    np.testing.assert_allclose(unfused.data, y.data, rtol=1e-6, atol=1e-6)
    (unfused * unfused).sum().backward()
    for g, h in zip(grads, [p.grad for p in seq.parameters()] + [xt.grad]):
        np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "pool",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    ],
)
def test_sequential_conv_relu_pool_node_matches_the_three_ops(pool, dtype):
    # While recording, Conv2d+ReLU+MaxPool2d in a Sequential is one autograd node whose backward
    # masks the pooled gradient; it must give exactly the gradients of the ops run one by one.
    cnnfast.manual_seed(1)
    seq = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(**pool), nn.Conv2d(4, 2, 2, dtype=dtype)
    )
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 9)).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    y = seq(xt)
    assert type(y.grad_fn.parents[0].grad_fn).__name__ == "Conv2dReLUMaxPool2d"
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(gy)
    grads = [p.grad.copy() for p in seq.parameters()] + [xt.grad.copy()]
    seq.zero_grad()
    xt.grad = None
    unfused = seq[3](seq[2](seq[1](seq[0](xt))))  # layer by layer: no fusion
    np.testing.assert_array_equal(unfused.data, y.data)
    unfused.backward(gy)
    for g, h in zip(grads, [p.grad for p in seq.parameters()] + [xt.grad]):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, h)
    with cnnfast.no_grad():  # the ndarray path: the same forward
        np.testing.assert_array_equal(seq(x), y.data)


def test_sequential_container_api():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.ReLU)
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    assert seq(np.ones((4, 2), np.float32)).shape == (4, 1)
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"] and len(list(seq.parameters())) == 4
    with pytest.raises(IndexError, match="out of range"):
        seq[5]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), 3)
    ml = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 2)])
    assert len(ml) == 2 and len(list(ml.parameters())) == 4


# ---------------------------------------------------------------------------- Module API


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(8, 3)
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.register_buffer("steps", np.zeros(1))
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv1(x)), 2)
        return self.fc(self.drop(x.reshape(x.shape[0], -1))) * self.scale


def test_parameters_registration_order_and_children():
    net = Net()
    # as torch: a module's own parameters first, then its children's, each in registration order
    assert [n for n, _ in net.named_parameters()] == ["scale", "conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
    assert [n for n, _ in net.named_children()] == ["conv1", "fc", "drop"]
    assert len(list(net.modules())) == 4
    assert isinstance(net.scale, nn.Parameter) and net.num_parameters() == 2 * 9 + 2 + 24 + 3 + 1
    net.fc = nn.Linear(8, 5)  # replacing a child re-registers it
    assert net.fc.out_features == 5 and len(list(net.parameters())) == 5
    with pytest.raises(TypeError, match="Parameter or None"):
        net.scale = np.ones(1)
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, shared)
    assert len(list(seq.parameters())) == 2  # shared parameters once


def test_train_eval_propagates():
    net = Net()
    assert net.training and net.drop.training
    assert net.eval() is net and not net.drop.training and not net.conv1.training
    net.train()
    assert net.drop.training


def test_state_dict_round_trip():
    a, b = Net(), Net()
    sd = a.state_dict()
    assert list(sd) == ["scale", "steps", "conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
    assert all(type(v) is np.ndarray for v in sd.values())
    a.fc.weight.data += 1  # state_dict is a snapshot
    assert not np.array_equal(sd["fc.weight"], a.fc.weight.data)
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    x = np.ones((2, 1, 6, 6), np.float32)
    a.load_state_dict(sd)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x), b(x))
    assert b.state_dict(keep_vars=True)["fc.weight"] is b.fc.weight


def test_load_state_dict_errors_and_no_partial_write():
    net = Net()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    bad = net.state_dict()
    bad["conv1.weight"] = np.zeros((3, 1, 3, 3))
    bad["fc.bias"] = np.full(3, 9.0)
    with pytest.raises(RuntimeError, match=r"size mismatch for conv1.weight.*\(3, 1, 3, 3\).*\(2, 1, 3, 3\)"):
        net.load_state_dict(bad)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # fc.bias not written either
    sd = net.state_dict()
    del sd["scale"]
    sd["extra.weight"] = np.ones(2)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "scale"') as e:
        net.load_state_dict(sd)
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in str(e.value)
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["scale"] and res.unexpected_keys == ["extra.weight"]
    sd = net.state_dict()
    sd["fc.weight"] = Tensor(np.ones((3, 8)))  # Tensors accepted, dtype kept
    net.load_state_dict(sd)
    assert net.fc.weight.dtype == np.float32 and net.fc.weight.data.sum() == 24


def test_state_dict_loads_into_torch_and_back():
    torch = pytest.importorskip("torch")
    c, t = lenet(nn), lenet(torch.nn)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in c.state_dict().items()})
    c2 = lenet(nn)
    c2.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(c2(x), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_freezing():
    net = lenet(nn)
    net[:6].requires_grad_(False)
    out = net(Tensor(np.ones((2, 1, 28, 28), np.float32)))
    nn.CrossEntropyLoss()(out, np.array([1, 2])).backward()
    assert all(p.grad is None for p in net[:6].parameters())
    assert all(p.grad is not None for p in net[6:].parameters())
    s = net.summary((1, 1, 28, 28), file=False)
    assert s["non_trainable_params"] == 156 + 2416 and s["trainable_params"] == 48120 + 10164 + 850
    assert "(frozen)" in str(s)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_zero_grad_to_zeros_and_module_astype():
    lin = nn.Linear(2, 2)
    lin(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad is not None and not lin.weight.grad.any()
    lin.double()
    assert lin.weight.dtype == np.float64 and lin.weight.grad is None


def test_forward_hook_and_missing_init():
    lin = nn.Linear(2, 2)
    seen = []
    h = lin.register_forward_hook(lambda m, inp, out: seen.append(out.shape))
    lin(np.ones((3, 2), np.float32))
    h.remove()
    lin(np.ones((3, 2), np.float32))
    assert seen == [(3, 2)]

    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super"):
        Bad()
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


# ---------------------------------------------------------------------------- summary


def conv_params(cin, cout, k, groups=1, bias=True):
    return cout * (cin // groups) * k * k + (cout if bias else 0)


def linear_params(fin, fout):
    return fin * fout + fout


def test_summary_lenet():
    net = lenet(nn)
    buf = io.StringIO()
    s = net.summary((1, 1, 28, 28), file=buf)
    text = buf.getvalue()
    assert text.strip() == str(s).strip()
    expected = [
        conv_params(1, 6, 5),
        0,
        0,
        conv_params(6, 16, 5),
        0,
        0,
        0,
        linear_params(400, 120),
        0,
        linear_params(120, 84),
        0,
        linear_params(84, 10),
    ]
    assert [r["params"] for r in s["layers"]] == expected
    assert s["total_params"] == sum(expected) == 61706 == net.num_parameters()
    assert s["trainable_params"] == 61706 and s["non_trainable_params"] == 0
    shapes = [r["output_shape"] for r in s["layers"]]
    assert (
        shapes[0] == (1, 6, 28, 28) and shapes[5] == (1, 16, 5, 5) and shapes[6] == (1, 400) and shapes[-1] == (1, 10)
    )
    acts = sum(int(np.prod(sh)) * 4 for sh in shapes)
    assert s["activation_bytes"] == acts and s["param_bytes"] == 61706 * 4
    for needle in (
        "Conv2d",
        "(1, 16, 10, 10)",
        "48,120",
        "Total params: 61,706",
        "Trainable params: 61,706",
        "Non-trainable params: 0",
        "Activations",
    ):
        assert needle in text
    assert net.training  # summary restores the mode


def test_summary_custom_module_counts_own_parameters():
    s = Net().summary((2, 1, 6, 6), file=False)
    names = [r["name"] for r in s["layers"]]
    assert "conv1" in names and "fc" in names
    assert s["total_params"] == Net().num_parameters()


# ---------------------------------------------------------------------------- init


def test_init_functions():
    rng = np.random.default_rng(0)
    w = Tensor(np.empty((64, 32, 3, 3), np.float32))
    fan_in, fan_out = 32 * 9, 64 * 9
    nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=rng)
    assert np.abs(w.data).max() <= math.sqrt(2) * math.sqrt(3 / fan_in)
    np.testing.assert_allclose(w.data.std(), math.sqrt(2 / fan_in), rtol=0.05)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=rng)
    np.testing.assert_allclose(w.data.std(), math.sqrt(2 / fan_out), rtol=0.05)
    nn.init.xavier_uniform_(w, generator=rng)
    assert np.abs(w.data).max() <= math.sqrt(6 / (fan_in + fan_out))
    nn.init.xavier_normal_(w, gain=2.0, generator=rng)
    np.testing.assert_allclose(w.data.std(), 2 * math.sqrt(2 / (fan_in + fan_out)), rtol=0.05)
    a = np.empty((3, 4))
    assert nn.init.uniform_(a, -2, -1, generator=1) is a and a.max() <= -1 and a.min() >= -2
    np.testing.assert_array_equal(nn.init.zeros_(a), 0)
    np.testing.assert_array_equal(nn.init.ones_(a), 1)
    nn.init.normal_(a, 5.0, 0.0)
    np.testing.assert_array_equal(a, 5.0)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(np.empty(3))
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_uniform_(a, mode="fan_avg")
    with pytest.raises(TypeError, match="floating point"):
        nn.init.zeros_(np.empty(3, np.int32))


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for nl, p in [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("selu", None),
    ]:
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    with pytest.raises(ValueError, match="unsupported"):
        nn.init.calculate_gain("swish")


def test_summary_with_tensor_methods_in_forward():
    class ViewNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 4 * 4, 2)

        def forward(self, x):
            return self.fc(self.conv(x).view(x.shape[0], -1).relu())

    s = ViewNet().summary((3, 1, 6, 6), file=False)
    assert [r["output_shape"] for r in s["layers"]] == [(3, 4, 4, 4), (3, 2)]
    assert s["total_params"] == conv_params(1, 4, 3) + linear_params(64, 2)
