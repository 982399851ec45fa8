"""cnnfast.functional on Tensors (recorded, gradients vs float64 finite differences and torch) and
the new NumPy-level ops (linear, avg_pool2d, activations, softmax, dropout, flatten, one_hot)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
import cnnfast.functional as F
from cnnfast import Tensor


def fd_check(fn, *arrays, eps=1e-6, atol=1e-7, rtol=1e-5, seed=0):
    """Autograd vs central finite differences of L = <v, fn(*inputs)> for a random cotangent v (float64)."""
    ts = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*ts)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    (out * v).sum().backward()
    for t in ts:
        num = np.zeros_like(t.data)
        flat, nflat = t.data.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            vals = []
            for x in (old + eps, old - eps):
                flat[i] = x
                with cnnfast.no_grad():
                    vals.append(float((fn(*ts).data * v).sum()))
            flat[i] = old
            nflat[i] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(t.grad, num, atol=atol, rtol=rtol)


def torch_check(cf_fn, torch_fn, *arrays, atol=1e-5, rtol=1e-4, grad_atol=1e-5, grad_rtol=1e-4, seed=0):
    """tinygrad's helper_test_op: same float32 inputs through cnnfast and torch; forward and grads."""
    torch = pytest.importorskip("torch")
    cts = [Tensor(a, requires_grad=True) for a in arrays]
    tts = [torch.tensor(a, requires_grad=True) for a in arrays]
    co, to = cf_fn(*cts), torch_fn(*tts)
    np.testing.assert_allclose(co.data, to.detach().numpy(), atol=atol, rtol=rtol)
    v = np.random.default_rng(seed).standard_normal(co.shape).astype(np.float32)
    (co * v).sum().backward()
    (to * torch.from_numpy(v)).sum().backward()
    for c, t in zip(cts, tts):
        np.testing.assert_allclose(c.grad, t.grad.numpy(), atol=grad_atol, rtol=grad_rtol)


R = np.random.default_rng(11)


def rand(*shape, dtype=np.float64):
    return R.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------- kernel ops on Tensors

CONV_CASES = [
    dict(),
    dict(stride=2, padding=1),
    dict(padding="same", dilation=2),
    dict(padding=(1, 0), stride=(1, 2)),
    dict(groups=2, padding="valid"),
]


@pytest.mark.parametrize("kw", CONV_CASES, ids=[str(k) for k in CONV_CASES])
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_tensor_gradients(kw, relu):
    x, w, b = rand(2, 4, 6, 5), rand(6, 4 // kw.get("groups", 1), 3, 3), rand(6)
    fn = F.conv2d_relu if relu else F.conv2d
    fd_check(lambda x, w, b: fn(x, w, b, **kw), x, w, b, atol=1e-6)


def test_conv2d_unbatched_and_no_bias():
    x, w = rand(3, 5, 5), rand(2, 3, 2, 2)
    fd_check(lambda x, w: F.conv2d(x, w), x, w, atol=1e-6)
    out = F.conv2d(Tensor(x), w)  # only the input is a Tensor: the weight is a constant
    assert isinstance(out, Tensor) and out.shape == (2, 4, 4) and not out.requires_grad


def test_conv2d_only_weight_requires_grad():
    x = Tensor(rand(1, 2, 4, 4))
    w = Tensor(rand(3, 2, 3, 3), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == w.shape


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=2, stride=1, dilation=2),
        dict(kernel_size=3, stride=2, ceil_mode=True),
    ],
)
def test_max_pool2d_tensor_gradients(kw):
    x = rand(2, 3, 7, 6)  # continuous random values: no ties, so finite differences are exact
    fd_check(lambda x: F.max_pool2d(x, **kw), x)


def test_max_pool2d_return_indices_and_unbatched():
    x = Tensor(rand(3, 4, 4), requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert isinstance(idx, np.ndarray) and idx.shape == (3, 2, 2) and y.shape == (3, 2, 2)
    y.sum().backward()
    assert x.grad.sum() == 12 and set(np.unique(x.grad)) <= {0.0, 1.0}


def test_relu_tensor_and_inplace():
    fd_check(lambda x: F.relu(x) * 2, rand(3, 4))
    x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    y = F.relu(x, inplace=True)  # recording: computed out of place, x unchanged
    assert y is not x and x.data[0] == -1.0
    t = Tensor(np.array([-1.0, 2.0], np.float32))
    assert F.relu(t, inplace=True) is t and t.data.tolist() == [0.0, 2.0]


# ---------------------------------------------------------------------------- new ops: FD


@pytest.mark.parametrize(
    "name, fn, shapes",
    [
        ("linear", lambda x, w, b: F.linear(x, w, b), [(4, 5), (3, 5), (3,)]),
        ("linear_3d_nobias", lambda x, w: F.linear(x, w), [(2, 4, 5), (3, 5)]),
        ("linear_1d", lambda x, w, b: F.linear(x, w, b), [(5,), (3, 5), (3,)]),
        ("avg_pool2d", lambda x: F.avg_pool2d(x, 2), [(2, 3, 6, 5)]),
        ("avg_pool2d_pad", lambda x: F.avg_pool2d(x, 3, 2, 1), [(1, 2, 7, 6)]),
        (
            "avg_pool2d_nopadcount_ceil",
            lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
            [(1, 2, 6, 6)],
        ),
        ("avg_pool2d_unbatched", lambda x: F.avg_pool2d(x, (2, 3), stride=(1, 2)), [(2, 5, 7)]),
        ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), [(3, 4)]),
        ("sigmoid", F.sigmoid, [(3, 4)]),
        ("tanh", F.tanh, [(3, 4)]),
        ("softmax", lambda x: F.softmax(x, dim=1), [(3, 4, 2)]),
        ("log_softmax", lambda x: F.log_softmax(x, dim=-1), [(3, 4)]),
        ("flatten", lambda x: F.flatten(x, 1) * np.arange(12.0), [(2, 3, 2, 2)]),
    ],
)
def test_new_ops_gradients(name, fn, shapes):
    fd_check(fn, *[rand(*s) for s in shapes])


def test_dropout_gradient_uses_the_forward_mask():
    x = Tensor(np.ones((50, 40)), requires_grad=True)
    y = F.dropout(x, 0.3, generator=np.random.default_rng(0))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # y = x * mask with x = 1
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.7)
    assert 0.6 < kept.mean() < 0.8


# ---------------------------------------------------------------------------- vs torch


def test_new_ops_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    f32 = np.float32
    torch_check(
        lambda x, w, b: F.linear(x, w, b), tf.linear, rand(4, 6, dtype=f32), rand(3, 6, dtype=f32), rand(3, dtype=f32)
    )
    for kw in (
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        dict(kernel_size=3, stride=1, padding=1, divisor_override=4),
    ):
        torch_check(lambda x: F.avg_pool2d(x, **kw), lambda x: tf.avg_pool2d(x, **kw), rand(2, 3, 7, 8, dtype=f32))
    torch_check(lambda x: F.leaky_relu(x, 0.2), lambda x: tf.leaky_relu(x, 0.2), rand(5, 4, dtype=f32))
    torch_check(F.sigmoid, torch.sigmoid, rand(5, 4, dtype=f32) * 20)
    torch_check(F.tanh, torch.tanh, rand(5, 4, dtype=f32))
    torch_check(lambda x: F.softmax(x, 1), lambda x: tf.softmax(x, 1), rand(5, 4, dtype=f32) * 30)
    torch_check(lambda x: F.log_softmax(x, 1), lambda x: tf.log_softmax(x, 1), rand(5, 4, dtype=f32) * 30)


@pytest.mark.parametrize("kw", CONV_CASES, ids=[str(k) for k in CONV_CASES])
def test_conv2d_tensor_matches_torch(kw):
    torch = pytest.importorskip("torch")
    g = kw.get("groups", 1)
    # float32 sums over C*kh*kw products: tolerance a few float32 ulps of the output magnitude
    torch_check(
        lambda x, w, b: F.conv2d_relu(x, w, b, **kw),
        lambda x, w, b: torch.relu(torch.nn.functional.conv2d(x, w, b, **kw)),
        rand(2, 4, 8, 7, dtype=np.float32),
        rand(6, 4 // g, 3, 3, dtype=np.float32),
        rand(6, dtype=np.float32),
        atol=1e-4,
        grad_atol=1e-4,
    )


# ---------------------------------------------------------------------------- ndarray path


def test_ndarray_in_ndarray_out():
    x = rand(2, 3, 4, 4, dtype=np.float32)
    for out in (
        F.avg_pool2d(x, 2),
        F.leaky_relu(x),
        F.sigmoid(x),
        F.tanh(x),
        F.softmax(x, 1),
        F.log_softmax(x, 1),
        F.dropout(x, 0.5),
        F.flatten(x, 1),
        F.linear(x.reshape(2, -1), rand(5, 48, dtype=np.float32)),
    ):
        assert type(out) is np.ndarray and out.dtype == np.float32


def test_int_input_computes_in_float32():
    assert F.sigmoid(np.array([0, 1])).dtype == np.float32
    assert F.avg_pool2d(np.ones((1, 1, 2, 2), np.int64), 2).dtype == np.float32


def test_softmax_is_stable_and_normalised():
    x = np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]])
    p = F.softmax(x, 1)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0])
    lp = F.log_softmax(x, 1)
    np.testing.assert_allclose(lp[0, :2], np.log(0.5))
    np.testing.assert_allclose(lp[0, 2], -2000.0 - np.log(2.0))


def test_sigmoid_extremes():
    s = F.sigmoid(np.array([-800.0, -30.0, 0.0, 30.0, 800.0]))
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(30.0)), 0.5, 1 / (1 + np.exp(-30.0)), 1.0], rtol=1e-12)


def test_avg_pool2d_matches_manual_windows():
    x = rand(1, 1, 4, 4)
    y = F.avg_pool2d(x, 2)
    np.testing.assert_allclose(y[0, 0], x[0, 0].reshape(2, 2, 2, 2).mean(axis=(1, 3)))
    assert (
        F.avg_pool2d_output_shape((1, 2, 7, 8), 3, 2, 1, ceil_mode=True)
        == F.avg_pool2d(rand(1, 2, 7, 8), 3, 2, 1, ceil_mode=True).shape
    )


def test_dropout_eval_and_p_edges():
    x = np.ones((4, 4), np.float32)
    assert F.dropout(x, 0.5, training=False) is not None
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False), x)
    np.testing.assert_array_equal(F.dropout(x, 1.0), 0)
    np.testing.assert_array_equal(F.dropout(x, 0.0), x)
    a = F.dropout(x, 0.5, generator=np.random.default_rng(3))
    b = F.dropout(x, 0.5, generator=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    cnnfast.manual_seed(5)
    c = F.dropout(x, 0.5)
    cnnfast.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(x, 0.5), c)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


def test_one_hot():
    y = np.array([2, 0, 1])
    oh = F.one_hot(y, 4)
    assert oh.dtype == np.int64 and oh.shape == (3, 4)
    np.testing.assert_array_equal(oh.argmax(1), y)
    np.testing.assert_array_equal(oh.sum(1), 1)
    assert cnnfast.one_hot(y).shape == (3, 3)  # num_classes inferred as max + 1
    assert cnnfast.one_hot(np.array([[0, 1]]), 2).shape == (1, 2, 2)
    assert isinstance(F.one_hot(Tensor(y), 3), Tensor)
    with pytest.raises(ValueError, match=r"\[0, 2\), got 2"):
        F.one_hot(y, 2)
    with pytest.raises(ValueError, match="got -1"):
        F.one_hot(np.array([-1, 0]), 3)
    with pytest.raises(TypeError, match="integer"):
        F.one_hot(np.array([0.0, 1.0]), 2)


def test_functional_errors_name_shapes():
    with pytest.raises(ValueError, match=r"input of size \(2, 4\).*weight of size \(3, 5\)"):
        F.linear(np.ones((2, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"bias of size \(2,\)"):
        F.linear(np.ones((2, 5)), np.ones((3, 5)), np.ones(2))
    with pytest.raises(ValueError, match="at most half"):
        F.avg_pool2d(np.ones((1, 1, 4, 4)), 2, padding=2)
    with pytest.raises(ValueError, match=r"too small"):
        F.avg_pool2d(np.ones((1, 1, 2, 2)), 3)
    with pytest.raises(ValueError, match=r"3D or 4D"):
        F.avg_pool2d(np.ones((4, 4)), 2)
    with pytest.raises(IndexError, match=r"dim 2 out of range.*\(3, 4\)"):
        F.softmax(np.ones((3, 4)), 2)
    with pytest.raises(ValueError, match=r"start_dim=2 cannot come after end_dim=1"):
        F.flatten(np.ones((2, 3, 4)), 2, 1)
