"""Losses (functional and nn): values and gradients vs float64 finite differences and torch,
reductions, class weights, ignore_index, label smoothing, probability targets, errors."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
import cnnfast.functional as F
from cnnfast import Tensor, nn


def fd_grad(fn, x, eps=1e-6):
    """Central finite differences of the scalar fn(x) (x float64, perturbed in place)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        hi = float(fn(x))
        x[i] = old - eps
        lo = float(fn(x))
        x[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g


def check_loss_grad(loss_fn, x, *, wrt_target=None, atol=1e-7, rtol=1e-5):
    """Gradient of loss_fn(input[, target]) (reduced with a random cotangent if 'none') vs FD, float64."""
    x = x.astype(np.float64)
    out0 = loss_fn(x, wrt_target) if wrt_target is not None else loss_fn(x)
    v = np.random.default_rng(0).standard_normal(np.shape(out0))

    def scalar(xa, ta=None):
        out = loss_fn(xa, ta) if ta is not None else loss_fn(xa)
        return float((np.asarray(out) * v).sum())

    xt = Tensor(x.copy(), requires_grad=True)
    tt = Tensor(wrt_target.astype(np.float64).copy(), requires_grad=True) if wrt_target is not None else None
    out = loss_fn(xt, tt) if tt is not None else loss_fn(xt)
    (out * v).sum().backward()
    xa = x.copy()
    np.testing.assert_allclose(xt.grad, fd_grad(lambda a: scalar(a, wrt_target), xa), atol=atol, rtol=rtol)
    if tt is not None:
        ta = wrt_target.astype(np.float64).copy()
        np.testing.assert_allclose(tt.grad, fd_grad(lambda t: scalar(x, t), ta), atol=atol, rtol=rtol)


R = np.random.default_rng(5)
LOGITS = R.standard_normal((6, 4)) * 2
LABELS = np.array([0, 3, 1, 1, 2, 3])
SPATIAL = R.standard_normal((2, 3, 2, 2))
SPATIAL_LABELS = np.array([[[0, 2], [1, 1]], [[2, 2], [0, 1]]])
W4 = np.array([0.5, 1.0, 2.0, 1.5])


CE_CASES = [
    ("plain", dict()),
    ("sum", dict(reduction="sum")),
    ("none", dict(reduction="none")),
    ("weight", dict(weight=W4)),
    ("ignore", dict(ignore_index=1)),
    ("smooth", dict(label_smoothing=0.2)),
    ("weight_smooth_ignore", dict(weight=W4, label_smoothing=0.1, ignore_index=3)),
]


@pytest.mark.parametrize("name, kw", CE_CASES, ids=[c[0] for c in CE_CASES])
def test_cross_entropy_gradient(name, kw):
    check_loss_grad(lambda x: F.cross_entropy(x, LABELS, **kw), LOGITS)


@pytest.mark.parametrize("name, kw", CE_CASES, ids=[c[0] for c in CE_CASES])
def test_cross_entropy_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    tkw = {k: (torch.tensor(v, dtype=torch.float32) if k == "weight" else v) for k, v in kw.items()}
    x = LOGITS.astype(np.float32)
    ct, tt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    cl = F.cross_entropy(ct, LABELS, **kw)
    tl = torch.nn.functional.cross_entropy(tt, torch.tensor(LABELS), **tkw)
    np.testing.assert_allclose(cl.data, tl.detach().numpy(), rtol=1e-5, atol=1e-6)
    v = np.random.default_rng(1).standard_normal(cl.shape).astype(np.float32)
    (cl * v).sum().backward()
    (tl * torch.tensor(v)).sum().backward()
    np.testing.assert_allclose(ct.grad, tt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_cross_entropy_probability_targets_match_torch_and_fd():
    torch = pytest.importorskip("torch")
    probs = F.softmax(R.standard_normal((6, 4)), 1)
    for kw in (dict(), dict(label_smoothing=0.3, weight=W4), dict(reduction="none")):
        tkw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kw.items()}
        ref = torch.nn.functional.cross_entropy(torch.tensor(LOGITS), torch.tensor(probs), **tkw)
        np.testing.assert_allclose(F.cross_entropy(LOGITS, probs, **kw), ref.numpy(), rtol=1e-10)
        check_loss_grad(lambda x, t: F.cross_entropy(x, t, **kw), LOGITS, wrt_target=probs)


def test_one_hot_targets_equal_index_targets():
    oh = F.one_hot(LABELS, 4).astype(np.float64)
    np.testing.assert_allclose(F.cross_entropy(LOGITS, oh), F.cross_entropy(LOGITS, LABELS), rtol=1e-12)
    np.testing.assert_allclose(
        F.cross_entropy(LOGITS, oh, label_smoothing=0.1),
        F.cross_entropy(LOGITS, LABELS, label_smoothing=0.1),
        rtol=1e-12,
    )


def test_cross_entropy_spatial_and_unbatched():
    torch = pytest.importorskip("torch")
    for kw in (dict(), dict(reduction="none"), dict(weight=W4[:3], label_smoothing=0.1)):
        tkw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kw.items()}
        ref = torch.nn.functional.cross_entropy(torch.tensor(SPATIAL), torch.tensor(SPATIAL_LABELS), **tkw)
        np.testing.assert_allclose(F.cross_entropy(SPATIAL, SPATIAL_LABELS, **kw), ref.numpy(), rtol=1e-10)
    check_loss_grad(lambda x: F.cross_entropy(x, SPATIAL_LABELS, label_smoothing=0.1), SPATIAL)
    ref = torch.nn.functional.cross_entropy(torch.tensor(LOGITS[0]), torch.tensor(2))
    np.testing.assert_allclose(F.cross_entropy(LOGITS[0], np.array(2)), ref.numpy(), rtol=1e-12)
    check_loss_grad(lambda x: F.cross_entropy(x, np.array(2)), LOGITS[0])


def test_cross_entropy_is_stable_for_huge_logits():
    x = np.array([[1e4, 0.0, -1e4]], np.float32)
    loss = F.cross_entropy(x, np.array([0]))
    assert np.isfinite(loss) and loss == 0.0
    t = Tensor(x, requires_grad=True)
    F.cross_entropy(t, np.array([2])).backward()
    assert np.all(np.isfinite(t.grad))
    np.testing.assert_allclose(t.grad, [[1, 0, -1]], atol=1e-6)


@pytest.mark.parametrize(
    "kw", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(weight=W4), dict(ignore_index=3, weight=W4)]
)
def test_nll_loss_matches_torch_and_fd(kw):
    torch = pytest.importorskip("torch")
    logp = F.log_softmax(LOGITS, 1)
    tkw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kw.items()}
    ref = torch.nn.functional.nll_loss(torch.tensor(logp), torch.tensor(LABELS), **tkw)
    np.testing.assert_allclose(F.nll_loss(logp, LABELS, **kw), ref.numpy(), rtol=1e-12)
    check_loss_grad(lambda x: F.nll_loss(x, LABELS, **kw), logp)


def test_log_softmax_nll_equals_cross_entropy():
    x = Tensor(LOGITS, requires_grad=True)
    F.nll_loss(F.log_softmax(x, 1), LABELS).backward()
    g1 = x.grad
    x.grad = None
    F.cross_entropy(x, LABELS).backward()
    np.testing.assert_allclose(x.grad, g1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    torch = pytest.importorskip("torch")
    x, y = R.standard_normal((3, 4)), R.standard_normal((3, 4))
    ref = torch.nn.functional.mse_loss(torch.tensor(x), torch.tensor(y), reduction=reduction)
    np.testing.assert_allclose(F.mse_loss(x, y, reduction=reduction), ref.numpy(), rtol=1e-12)
    check_loss_grad(lambda a, t: F.mse_loss(a, t, reduction=reduction), x, wrt_target=y)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(reduction="sum"),
        dict(reduction="none"),
        dict(weight=np.array([1.0, 2.0, 0.5, 1.0])),
        dict(pos_weight=np.array([3.0, 1.0, 0.5, 2.0])),
    ],
)
def test_bce_with_logits(kw):
    torch = pytest.importorskip("torch")
    x = R.standard_normal((3, 4)) * 3
    y = R.random((3, 4))
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    ref = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y), **tkw)
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(x, y, **kw), ref.numpy(), rtol=1e-12)
    check_loss_grad(lambda a, t: F.binary_cross_entropy_with_logits(a, t, **kw), x, wrt_target=y)


def test_bce_with_logits_extreme_logits_are_finite():
    x = np.array([-1000.0, 1000.0, 0.0], np.float32)
    y = np.array([1.0, 0.0, 1.0], np.float32)
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss, [1000.0, 1000.0, np.log(2.0)], rtol=1e-6)
    t = Tensor(x, requires_grad=True)
    F.binary_cross_entropy_with_logits(t, y).backward()
    np.testing.assert_allclose(t.grad, np.array([-1.0, 1.0, -0.5]) / 3, rtol=1e-6)


def test_loss_modules():
    x = Tensor(LOGITS.astype(np.float32), requires_grad=True)
    crit = nn.CrossEntropyLoss(weight=W4, label_smoothing=0.1)
    loss = crit(x, LABELS)
    assert isinstance(loss, Tensor) and loss.shape == ()
    np.testing.assert_allclose(loss.item(), F.cross_entropy(LOGITS, LABELS, W4, label_smoothing=0.1), rtol=1e-5)
    assert type(crit(LOGITS, LABELS)) is np.ndarray  # ndarray in -> ndarray out
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert "label_smoothing=0.1" in repr(crit)
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    assert nn.NLLLoss()(F.log_softmax(LOGITS, 1), LABELS).shape == ()
    assert nn.MSELoss(reduction="none")(LOGITS, LOGITS).shape == LOGITS.shape
    assert nn.BCEWithLogitsLoss(pos_weight=np.ones(4))(LOGITS, np.ones_like(LOGITS)).shape == ()
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_loss_errors_name_shapes_and_labels():
    with pytest.raises(ValueError, match=r"target 4 is out of bounds for 4 classes"):
        F.cross_entropy(LOGITS, np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match=r"target -2 is out of bounds"):
        F.cross_entropy(LOGITS, np.array([0, 1, 2, 3, -2, 0]))
    with pytest.raises(ValueError, match=r"target of size \(5,\) does not match input of size \(6, 4\)"):
        F.cross_entropy(LOGITS, np.zeros(5, np.int64))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(LOGITS, LABELS.astype(np.float32))
    with pytest.raises(ValueError, match=r"weight of size \(3,\).*4 classes"):
        F.cross_entropy(LOGITS, LABELS, np.ones(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(LOGITS, LABELS, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"input of size \(3, 4\) and target of size \(3, 1\)"):
        F.mse_loss(np.ones((3, 4)), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4,\)"):
        F.binary_cross_entropy_with_logits(np.ones((3, 4)), np.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        F.nll_loss(LOGITS, LABELS, reduction="max")


def test_ignore_all_gives_nan_like_torch():
    with np.errstate(invalid="ignore"):
        assert np.isnan(F.cross_entropy(LOGITS[:1], np.array([-100])))
    assert cnnfast.is_grad_enabled()
