"""The transfer-learning layers (issue 10): BatchNorm2d, AdaptiveAvgPool2d, AvgPool2d options,
Hardswish/Hardsigmoid/SiLU/ReLU6/GELU/PReLU, LocalResponseNorm, cat, pad, asymmetric padding,
conv+BN folding: forward and gradients against PyTorch (float32 and float64) and float64 finite
differences (cnnfast.gradcheck)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
import cnnfast.functional as F
from cnnfast import Tensor, nn

R = np.random.default_rng(2026)
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(atol=2e-5, rtol=2e-4), np.float64: dict(atol=1e-10, rtol=1e-9)}


def rand(*shape, dtype=np.float64, scale=1.0):
    return (R.standard_normal(shape) * scale).astype(dtype)


def against_torch(cf_fn, torch_fn, arrays, dtype, atol=None, rtol=None, grads=True):
    """Same inputs through cnnfast and torch: forward, and the gradients of <v, out> for every input."""
    torch = pytest.importorskip("torch")
    tol = dict(TOL[dtype])
    if atol is not None:
        tol["atol"] = atol
    if rtol is not None:
        tol["rtol"] = rtol
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    cts = [Tensor(a.copy(), requires_grad=grads) for a in arrays]
    tts = [torch.tensor(a.copy(), requires_grad=grads) for a in arrays]
    co, to = cf_fn(*cts), torch_fn(*tts)
    assert co.dtype == dtype, (co.dtype, dtype)
    np.testing.assert_allclose(co.data, to.detach().numpy(), **tol)
    if grads:
        v = R.standard_normal(co.shape).astype(dtype)
        (co * v).sum().backward()
        (to * torch.from_numpy(v)).sum().backward()
        for i, (c, t) in enumerate(zip(cts, tts)):
            assert c.grad.dtype == dtype
            np.testing.assert_allclose(c.grad, t.grad.numpy(), err_msg=f"gradient of input {i}", **tol)
    return co


def check_fd(fn, *arrays):
    """float64 finite differences of fn over every array argument."""
    ts = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    assert cnnfast.gradcheck(fn, tuple(ts), eps=1e-6, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------- activations


def _tf():
    return pytest.importorskip("torch").nn.functional


ACTS = {
    "hardswish": (F.hardswish, lambda x: _tf().hardswish(x)),
    "hardsigmoid": (F.hardsigmoid, lambda x: _tf().hardsigmoid(x)),
    "silu": (F.silu, lambda x: _tf().silu(x)),
    "relu6": (F.relu6, lambda x: _tf().relu6(x)),
    "gelu": (F.gelu, lambda x: _tf().gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: _tf().gelu(x, approximate="tanh")),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(ACTS))
def test_activation_matches_torch(name, dtype):
    cf, tf = ACTS[name]
    x = rand(2, 3, 5, 7, scale=4.0)  # covers both sides of the -3/3 and 0/6 breakpoints
    # torch's hardsigmoid backward multiplies by 1.0f/6.0f, a float32 constant, in double too
    rtol = 1e-7 if (name, dtype) == ("hardsigmoid", np.float64) else None
    against_torch(cf, tf, [x], dtype, rtol=rtol)
    # ndarray in -> ndarray out, same values, dtype kept
    out = cf(x.astype(dtype))
    assert type(out) is np.ndarray and out.dtype == dtype


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_gradients_at_the_breakpoints_match_torch(name):
    cf, tf = ACTS[name]
    x = np.array([-6.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 6.0, 7.0])
    against_torch(cf, tf, [x], np.float64, rtol=1e-7)


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_finite_differences(name):
    x = rand(2, 3, 4, scale=3.0)
    x[np.abs(np.abs(x) - 3) < 1e-3] += 0.01  # keep clear of the kinks, where FD is meaningless
    x[np.abs(x - 6) < 1e-3] += 0.01
    x[np.abs(x) < 1e-3] += 0.01
    check_fd(ACTS[name][0], x)


def test_activation_modules_and_inplace():
    torch = pytest.importorskip("torch")
    x = rand(2, 3, 4, 4, dtype=np.float32, scale=4)
    for cls, tcls in [
        (nn.Hardswish, torch.nn.Hardswish),
        (nn.Hardsigmoid, torch.nn.Hardsigmoid),
        (nn.SiLU, torch.nn.SiLU),
        (nn.ReLU6, torch.nn.ReLU6),
    ]:
        for inplace in (False, True):
            m, tm = cls(inplace=inplace), tcls(inplace=inplace)
            assert repr(m) == repr(tm)
            ref = tm(torch.tensor(x)).numpy()
            xa = x.copy()
            out = m(xa)
            np.testing.assert_allclose(out, ref, atol=1e-6)
            if inplace:
                assert out is xa
            else:
                np.testing.assert_array_equal(xa, x)
            # a Tensor that needs grad is never overwritten, even with inplace=True
            t = Tensor(x.copy(), requires_grad=True)
            y = m(t)
            assert y is not t and np.array_equal(t.data, x)
    for approx in ("none", "tanh"):
        assert repr(nn.GELU(approx)) == repr(torch.nn.GELU(approximate=approx))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("nparams", [1, 3])
def test_prelu_matches_torch(nparams, dtype):
    torch = pytest.importorskip("torch")
    x = rand(2, 3, 4, 5)
    w = R.uniform(0.05, 0.5, nparams)
    against_torch(F.prelu, torch.nn.functional.prelu, [x, w], dtype)
    check_fd(F.prelu, rand(2, 3, 2, 2), w)
    m, tm = nn.PReLU(nparams), torch.nn.PReLU(nparams)
    assert repr(m) == repr(tm)
    assert list(m.state_dict()) == list(tm.state_dict()) == ["weight"]
    np.testing.assert_allclose(
        m(x.astype(np.float32)), tm(torch.tensor(x, dtype=torch.float32)).detach().numpy(), atol=1e-6
    )
    with pytest.raises(ValueError, match="channel size"):
        F.prelu(x, np.ones(4))


# ---------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_functional_matches_torch(training, dtype):
    torch = pytest.importorskip("torch")
    x, w, b = rand(4, 3, 5, 6, scale=2) + 1.5, R.uniform(0.5, 2, 3), rand(3)
    rm, rv = rand(3).astype(dtype), R.uniform(0.5, 2, 3).astype(dtype)
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    rm_c, rv_c = rm.copy(), rv.copy()
    against_torch(
        lambda x, w, b: F.batch_norm(x, rm_c, rv_c, w, b, training, 0.3, 1e-3),
        lambda x, w, b: torch.nn.functional.batch_norm(x, rm_t, rv_t, w, b, training, 0.3, 1e-3),
        [x, w, b],
        dtype,
        atol=1e-4 if dtype == np.float32 else None,
    )
    # running statistics: updated in place in training (unbiased variance), untouched in eval
    np.testing.assert_allclose(rm_c, rm_t.numpy(), **TOL[dtype])
    np.testing.assert_allclose(rv_c, rv_t.numpy(), **TOL[dtype])
    assert training != np.array_equal(rm_c, rm)
    # the ndarray path gives the same output
    rm2, rv2 = rm.copy(), rv.copy()
    out = F.batch_norm(x.astype(dtype), rm2, rv2, w.astype(dtype), b.astype(dtype), training, 0.3, 1e-3)
    ref = torch.nn.functional.batch_norm(
        torch.tensor(x.astype(dtype)),
        torch.tensor(rm),
        torch.tensor(rv),
        torch.tensor(w.astype(dtype)),
        torch.tensor(b.astype(dtype)),
        training,
        0.3,
        1e-3,
    )
    assert type(out) is np.ndarray and out.dtype == dtype
    np.testing.assert_allclose(out, ref.numpy(), **TOL[dtype])


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_finite_differences(training):
    rm, rv = rand(3), R.uniform(0.5, 2, 3)
    check_fd(
        lambda x, w, b: F.batch_norm(x, rm.copy(), rv.copy(), w, b, training, 0.1, 1e-5),
        rand(3, 3, 2, 3),
        R.uniform(0.5, 2, 3),
        rand(3),
    )
    # no affine parameters, (N, C) input
    check_fd(lambda x: F.batch_norm(x, None, None, training=True), rand(4, 3))


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_batchnorm2d_module_over_several_steps_matches_torch(momentum, dtype):
    """Train steps (batch stats, running-stat updates, parameter grads and an SGD update), then eval."""
    torch = pytest.importorskip("torch")
    m = nn.BatchNorm2d(4, momentum=momentum, dtype=dtype)
    tm = torch.nn.BatchNorm2d(4, momentum=momentum, dtype=torch.float32 if dtype == np.float32 else torch.float64)
    assert repr(m) == repr(tm)
    assert list(m.state_dict()) == list(tm.state_dict())
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == np.float32 else TOL[dtype]
    for step in range(4):
        x = rand(3, 4, 5, 5, dtype=dtype, scale=step + 1) + step
        xt = Tensor(x.copy(), requires_grad=True)
        xtt = torch.tensor(x.copy(), requires_grad=True)
        y, yt = m(xt), tm(xtt)
        np.testing.assert_allclose(y.data, yt.detach().numpy(), **tol)
        v = rand(*y.shape, dtype=dtype)
        (y * v).sum().backward()
        (yt * torch.from_numpy(v)).sum().backward()
        np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), **tol)
        np.testing.assert_allclose(m.weight.grad, tm.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(m.bias.grad, tm.bias.grad.numpy(), **tol)
        with cnnfast.no_grad(), torch.no_grad():
            for p, tp in ((m.weight, tm.weight), (m.bias, tm.bias)):
                p.data -= 0.1 * p.grad
                tp -= 0.1 * tp.grad
                p.grad, tp.grad = None, None
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(m.state_dict()[k], v.numpy(), err_msg=f"{k} after step {step}", **tol)
    assert int(m.num_batches_tracked) == 4 and m.num_batches_tracked.dtype == np.int64
    m.eval(), tm.eval()
    x = rand(2, 4, 3, 3, dtype=dtype)
    np.testing.assert_allclose(m(x), tm(torch.tensor(x)).detach().numpy(), **tol)
    before = m.state_dict()
    m(x)
    for k, v in m.state_dict().items():  # eval leaves the running statistics alone
        np.testing.assert_array_equal(v, before[k])


def test_batchnorm2d_variants_match_torch():
    torch = pytest.importorskip("torch")
    x = rand(4, 3, 4, 4, dtype=np.float32)
    for kw in (dict(affine=False), dict(track_running_stats=False), dict(eps=1e-3, momentum=0.01), dict(bias=False)):
        m, tm = nn.BatchNorm2d(3, **kw), torch.nn.BatchNorm2d(3, **kw)
        assert repr(m) == repr(tm)
        assert list(m.state_dict()) == list(tm.state_dict())
        assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
        for mode in ("train", "eval"):
            getattr(m, mode)(), getattr(tm, mode)()
            np.testing.assert_allclose(m(x), tm(torch.tensor(x)).detach().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(rand(4, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3)(rand(1, 3, 1, 1))
    with pytest.raises(ValueError, match="running_mean should contain 3 elements"):
        F.batch_norm(x, np.zeros(2, np.float32), np.ones(2, np.float32))


def test_batchnorm2d_state_dict_round_trip_and_astype():
    m = nn.BatchNorm2d(5)
    m(rand(4, 5, 3, 3, dtype=np.float32))
    m2 = nn.BatchNorm2d(5)
    m2.load_state_dict(m.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)
    m2.double()
    assert m2.running_mean.dtype == np.float64 and m2.num_batches_tracked.dtype == np.int64


def _conv_bn(torch_like=False):
    conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=torch_like)
    bn = nn.BatchNorm2d(6, eps=1e-3)
    bn.running_mean[:] = rand(6)
    bn.running_var[:] = R.uniform(0.2, 3, 6)
    bn.weight.data[:] = R.uniform(0.5, 2, 6)
    bn.bias.data[:] = rand(6)
    return conv, bn


@pytest.mark.parametrize("conv_bias", [False, True])
def test_fuse_conv_bn_eval_equals_unfolded(conv_bias):
    conv, bn = _conv_bn(conv_bias)
    conv.eval(), bn.eval()
    x = rand(2, 3, 9, 9, dtype=np.float32)
    fused = nn.fuse_conv_bn_eval(conv, bn)
    np.testing.assert_allclose(fused(x), bn(conv(x)), atol=1e-5, rtol=1e-5)
    assert fused.bias is not None and fused.weight.dtype == np.float32
    with pytest.raises(ValueError, match="eval mode"):
        nn.fuse_conv_bn_eval(conv.train(), bn)


def test_fold_batchnorm_in_sequential_and_torch_reference():
    torch = pytest.importorskip("torch")
    conv, bn = _conv_bn()
    seq = nn.Sequential(conv, bn, nn.ReLU6(), nn.Conv2d(6, 4, 1), nn.BatchNorm2d(4)).eval()
    x = rand(2, 3, 8, 8, dtype=np.float32)
    ref = seq(x)
    nn.fold_batchnorm(seq)
    assert [type(m).__name__ for m in seq] == ["Conv2d", "Identity", "ReLU6", "Conv2d", "Identity"]
    np.testing.assert_allclose(seq(x), ref, atol=1e-5, rtol=1e-5)
    # the folded weights equal torch.nn.utils.fusion's
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    w, b = nn.fuse_conv_bn_weights(
        conv.weight.data, None, bn.running_mean, bn.running_var, bn.eps, bn.weight.data, bn.bias.data
    )
    tw, tb = fuse_conv_bn_weights(
        torch.tensor(conv.weight.data),
        None,
        torch.tensor(bn.running_mean),
        torch.tensor(bn.running_var),
        bn.eps,
        torch.tensor(bn.weight.data),
        torch.tensor(bn.bias.data),
    )
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b, tb.detach().numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="eval"):
        nn.fold_batchnorm(nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)))


# ---------------------------------------------------------------------------- pooling


ADAPTIVE = [((7, 5), 1), ((7, 5), (2, 3)), ((6, 6), 3), ((6, 9), (4, None)), ((5, 5), 7), ((10, 3), (3, 2))]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("hw,out", ADAPTIVE)
def test_adaptive_avg_pool2d_matches_torch(hw, out, dtype):
    torch = pytest.importorskip("torch")
    x = rand(2, 3, *hw)
    against_torch(
        lambda t: F.adaptive_avg_pool2d(t, out), lambda t: torch.nn.functional.adaptive_avg_pool2d(t, out), [x], dtype
    )
    y = F.adaptive_avg_pool2d(x[0].astype(dtype), out)  # CHW
    ref = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x[0].astype(dtype)), out).numpy()
    np.testing.assert_allclose(y, ref, **TOL[dtype])
    m, tm = nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out)
    assert repr(m) == repr(tm)


def test_adaptive_avg_pool2d_finite_differences_and_global():
    check_fd(lambda t: F.adaptive_avg_pool2d(t, (2, 3)), rand(1, 2, 5, 7))
    check_fd(lambda t: F.adaptive_avg_pool2d(t, 2), rand(1, 2, 4, 6))
    x = rand(2, 3, 4, 5)
    np.testing.assert_allclose(F.global_avg_pool2d(x), x.mean(axis=(2, 3), keepdims=True))
    assert F.global_avg_pool2d(Tensor(x), keepdim=False).shape == (2, 3)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, 0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=2, ceil_mode=True, count_include_pad=False),
        dict(kernel_size=3, stride=1, padding=1, divisor_override=5),
    ],
)
def test_avg_pool2d_options_match_torch(kw):
    torch = pytest.importorskip("torch")
    for dtype in DTYPES:
        against_torch(
            lambda t: F.avg_pool2d(t, **kw),
            lambda t: torch.nn.functional.avg_pool2d(t, **kw),
            [rand(2, 3, 7, 6)],
            dtype,
        )


# ---------------------------------------------------------------------------- asymmetric padding


PADS = [(0, 1, 0, 1), (1, 0, 2, 1), (2, 0, 0, 1)]


@pytest.mark.parametrize("pads", PADS)
def test_conv2d_asymmetric_padding_matches_torch(pads):
    torch = pytest.importorskip("torch")
    t, b, l, r = pads
    tf = torch.nn.functional
    for dtype in DTYPES:
        against_torch(
            lambda x, w, bias: F.conv2d(x, w, bias, stride=2, padding=pads),
            lambda x, w, bias: tf.conv2d(tf.pad(x, (l, r, t, b)), w, bias, stride=2),
            [rand(2, 3, 7, 8), rand(4, 3, 3, 3), rand(4)],
            dtype,
            atol=1e-4 if dtype == np.float32 else None,
        )
    x, w = rand(1, 2, 5, 6, dtype=np.float32), rand(3, 2, 3, 3, dtype=np.float32)
    assert F.conv2d_output_shape(x.shape, w.shape, 2, pads) == F.conv2d(x, w, None, 2, pads).shape
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=pads)
    assert conv.padding == pads and conv(x).shape == F.conv2d(x, w, None, 2, pads).shape
    np.testing.assert_array_equal(F.conv2d(x, w, padding=(1, 1, 2, 2)), F.conv2d(x, w, padding=(1, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        F.conv2d(x, w, padding=(1, -1, 0, 0))


@pytest.mark.parametrize("pads", [(0, 1, 0, 1), (1, 0, 1, 1), (1, 0, 0, 1)])
def test_pools_asymmetric_padding_match_torch(pads):
    torch = pytest.importorskip("torch")
    t, b, l, r = pads
    tf = torch.nn.functional
    for dtype in DTYPES:
        against_torch(
            lambda x: F.max_pool2d(x, 3, 2, pads, ceil_mode=True),
            lambda x: tf.max_pool2d(tf.pad(x, (l, r, t, b), value=-float("inf")), 3, 2, ceil_mode=True),
            [rand(2, 3, 7, 8)],
            dtype,
        )
        against_torch(
            lambda x: F.avg_pool2d(x, 3, 2, pads),
            lambda x: tf.avg_pool2d(tf.pad(x, (l, r, t, b)), 3, 2),
            [rand(2, 3, 7, 8)],
            dtype,
        )
    # count_include_pad=False: padded zeros are not counted
    x = rand(1, 1, 5, 6)
    y = F.avg_pool2d(x, 3, 2, pads, count_include_pad=False)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=np.nan)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            np.testing.assert_allclose(y[0, 0, i, j], np.nanmean(xp[0, 0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]))
    # indices point into the unpadded plane
    out, idx = F.max_pool2d(x, 3, 2, pads, return_indices=True)
    np.testing.assert_array_equal(x.reshape(1, 1, -1)[0, 0][idx], out)
    check_fd(lambda a: F.max_pool2d(a, 3, 2, pads), rand(1, 2, 5, 6))
    check_fd(lambda a: F.avg_pool2d(a, 3, 2, pads, count_include_pad=False), rand(1, 2, 5, 6))
    # the modules take the 4-tuple too
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, pads)(x), F.max_pool2d(x, 3, 2, pads))
    np.testing.assert_array_equal(
        nn.AvgPool2d(3, 2, pads, count_include_pad=False)(x), F.avg_pool2d(x, 3, 2, pads, count_include_pad=False)
    )
    with pytest.raises(ValueError, match="at most half"):
        nn.MaxPool2d(3, 2, (2, 0, 0, 0))
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(x, 3, 2, (2, 0, 0, 0))
    with pytest.raises(ValueError, match="at most half"):
        F.avg_pool2d(x, 3, 2, (0, 0, 2, 0))


def test_pad_matches_torch_and_crops():
    torch = pytest.importorskip("torch")
    for pad in [(1, 2), (1, 0, 2, 3), (-1, 2, 0, -2), (0, 0, 0, 0, 1, 1)]:
        for dtype in DTYPES:
            against_torch(
                lambda x: F.pad(x, pad, value=0.5),
                lambda x: torch.nn.functional.pad(x, pad, value=0.5),
                [rand(2, 3, 4, 5)],
                dtype,
            )
    check_fd(lambda x: F.pad(x, (-1, 2, 1, -1)), rand(1, 2, 3, 4))
    with pytest.raises(NotImplementedError, match="constant"):
        F.pad(rand(1, 1, 3, 3), (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="even number"):
        F.pad(rand(1, 1, 3, 3), (1, 1, 1))


# ---------------------------------------------------------------------------- cat, LRN, SE ops


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_matches_torch_and_numpy(dim):
    torch = pytest.importorskip("torch")
    shapes = {0: [(1, 3, 4), (2, 3, 4)], 1: [(2, 1, 4), (2, 3, 4), (2, 2, 4)], -1: [(2, 3, 1), (2, 3, 4)]}[dim]
    arrays = [rand(*s) for s in shapes]
    for dtype in DTYPES:
        against_torch(lambda *xs: cnnfast.cat(xs, dim), lambda *xs: torch.cat(xs, dim), arrays, dtype)
    np.testing.assert_array_equal(cnnfast.cat(arrays, dim), np.concatenate(arrays, dim))
    check_fd(lambda *xs: cnnfast.cat(xs, dim=dim), *arrays)
    # a constant ndarray mixed with Tensors gets no gradient
    t = Tensor(arrays[0], requires_grad=True)
    out = cnnfast.cat([t, arrays[1]], dim)
    out.sum().backward()
    np.testing.assert_array_equal(t.grad, np.ones_like(arrays[0]))
    with pytest.raises(ValueError, match="Sizes of tensors must match"):
        cnnfast.cat([rand(2, 3), rand(3, 4)], 0)
    with pytest.raises(IndexError, match="out of range"):
        cnnfast.cat([rand(2, 3)], 2)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_local_response_norm_matches_torch(size):
    torch = pytest.importorskip("torch")
    kw = dict(alpha=1e-2, beta=0.75, k=2.0)
    for dtype in DTYPES:
        against_torch(
            lambda x: F.local_response_norm(x, size, **kw),
            lambda x: torch.nn.functional.local_response_norm(x, size, **kw),
            [rand(2, 7, 3, 4, scale=3)],
            dtype,
        )
    check_fd(lambda x: F.local_response_norm(x, size, alpha=0.1, beta=0.75, k=1.0), rand(1, 5, 2, 2))
    assert repr(nn.LocalResponseNorm(size, **kw)) == repr(torch.nn.LocalResponseNorm(size, **kw))


def test_squeeze_excitation_tensor_ops_match_torch():
    """mean over H,W keepdim -> sigmoid -> broadcasting mul with (N, C, 1, 1), add: SE's ops."""
    pytest.importorskip("torch")

    def se(x, w):
        s = (x.mean(axis=(2, 3), keepdims=True) * w).sigmoid()
        return x * s + s

    def se_t(x, w):
        s = (x.mean(dim=(2, 3), keepdim=True) * w).sigmoid()
        return x * s + s

    for dtype in DTYPES:
        against_torch(se, se_t, [rand(2, 3, 4, 5), rand(1, 3, 1, 1)], dtype)
    check_fd(se, rand(2, 3, 2, 3), rand(1, 3, 1, 1))


def test_identity_and_new_modules_in_namespaces():
    for name in (
        "BatchNorm2d",
        "AdaptiveAvgPool2d",
        "Hardswish",
        "Hardsigmoid",
        "SiLU",
        "ReLU6",
        "GELU",
        "PReLU",
        "LocalResponseNorm",
        "Identity",
        "fold_batchnorm",
        "fuse_conv_bn_eval",
    ):
        assert hasattr(nn, name)
    for name in ("batch_norm", "adaptive_avg_pool2d", "hardswish", "cat", "pad", "gelu", "prelu"):
        assert hasattr(F, name) and hasattr(cnnfast, name)
    x = rand(2, 3)
    assert nn.Identity(54, unused="x")(x) is x
