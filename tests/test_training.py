"""fit / evaluate / predict / History on small problems, and training that tracks PyTorch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import cnnfast
from cnnfast import nn, optim, training
from cnnfast.training import History, evaluate, fit, predict


def _blobs(n=300, seed=0, classes=3):
    """Well-separated Gaussian blobs: a linear model can reach ~100%."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, 4)) * 4
    y = rng.integers(0, classes, n)
    X = (centers[y] + rng.standard_normal((n, 4))).astype(np.float32)
    return X, y.astype(np.int64)


def _mlp(seed=0):
    cnnfast.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def test_fit_reduces_loss_and_fills_history():
    X, y = _blobs()
    model = _mlp()
    before = evaluate(model, X, y)
    h = fit(
        model,
        X,
        y,
        epochs=5,
        batch_size=32,
        optimizer=optim.Adam(model.parameters(), lr=1e-2),
        validation_data=_blobs(100, seed=0),
        seed=0,
        verbose=0,
    )
    assert isinstance(h, History)
    assert h.epoch == [0, 1, 2, 3, 4]
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 5 for v in h.history.values())
    assert h.history["loss"][-1] < h.history["loss"][0] < before["loss"] + 1e-6
    assert h.history["accuracy"][-1] > 0.9
    assert len(h.epoch_time) == 5 and all(t > 0 for t in h.epoch_time)
    assert all(ips > 0 for ips in h.images_per_second)
    assert h.params == {"epochs": 5, "batch_size": 32, "steps": 10, "samples": 300}
    after = evaluate(model, X, y)
    assert set(after) == {"loss", "accuracy"} and after["loss"] < before["loss"] and after["accuracy"] > 0.9
    assert model.training  # fit leaves the model in train mode


def test_default_optimizer_and_loss():
    X, y = _blobs()
    model = _mlp()
    h = fit(model, X, y, epochs=3, verbose=0, seed=1)
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_validation_split_holds_out_the_last_samples():
    X, y = _blobs(200)
    h = fit(_mlp(), X, y, epochs=1, validation_split=0.25, verbose=0)
    assert h.params["samples"] == 150 and "val_accuracy" in h.history
    with pytest.raises(ValueError, match="not both"):
        fit(_mlp(), X, y, epochs=1, validation_split=0.25, validation_data=(X, y), verbose=0)
    with pytest.raises(ValueError, match=r"validation_split must be in \(0, 1\)"):
        fit(_mlp(), X, y, epochs=1, validation_split=1.5, verbose=0)


def test_same_seed_same_weights_different_seed_different_weights():
    X, y = _blobs()

    def run(seed):
        model = _mlp(0)
        fit(model, X, y, epochs=2, batch_size=16, seed=seed, verbose=0)
        return np.concatenate([p.data.ravel() for p in model.parameters()])

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_callbacks_and_early_stopping():
    X, y = _blobs()
    seen = []

    class Stopper:
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, sorted(logs)))
            return epoch == 1

    model = _mlp()
    sched = optim.lr_scheduler.StepLR(opt := optim.SGD(model.parameters(), lr=0.1), step_size=1, gamma=0.5)
    h = fit(model, X, y, epochs=10, optimizer=opt, verbose=0, callbacks=[lambda e, logs: sched.step(), Stopper()])
    assert h.epoch == [0, 1] and seen == [(0, ["accuracy", "loss"]), (1, ["accuracy", "loss"])]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)


def test_plain_lines_when_stdout_is_not_a_terminal(capsys):
    X, y = _blobs(100)
    fit(_mlp(), X, y, epochs=2, batch_size=50, verbose=1)  # capsys: not a tty, so no tqdm redraws
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("Epoch 1/2 - 2/2 - ") and "loss: " in out[0] and "accuracy: " in out[1]
    assert "img/s" in out[1]


def test_plain_text_progress_on_a_terminal_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` raise ImportError
    monkeypatch.setattr(training, "_stdout_isatty", lambda: True)
    X, y = _blobs(100)
    fit(_mlp(), X, y, epochs=2, batch_size=50, verbose=1)
    out = capsys.readouterr().out
    assert "\rEpoch 1/2 - 2/2 - " in out and out.count("\n") == 2 and "img/s" in out


def test_tqdm_progress_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(training, "_stdout_isatty", lambda: True)
    X, y = _blobs(100)
    fit(_mlp(), X, y, epochs=1, batch_size=25, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "4/4" in out and "batch" in out and "img/s" in out


def test_verbose_0_is_silent_and_verbose_2_one_line_per_epoch(capsys):
    X, y = _blobs(100)
    fit(_mlp(), X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    fit(_mlp(), X, y, epochs=3, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_predict_logits_probabilities_and_mode_restored():
    X, y = _blobs(70)
    model = _mlp()
    fit(model, X, y, epochs=3, verbose=0)
    logits = predict(model, X, batch_size=16)  # several batches, last one partial
    assert logits.shape == (70, 3) and logits.dtype == np.float32
    with cnnfast.no_grad():
        direct = model(cnnfast.Tensor(X)).data
    np.testing.assert_allclose(logits, direct, rtol=1e-5, atol=1e-6)
    proba = predict(model, X, softmax=True)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(1), logits.argmax(1))
    model.train()
    predict(model, X)
    assert model.training
    model.eval()
    evaluate(model, X, y)
    assert not model.training


def test_eval_mode_is_used_for_evaluation():
    X, y = _blobs(64)
    cnnfast.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.5), nn.Linear(32, 3))
    a, b = predict(model, X), predict(model, X)
    np.testing.assert_array_equal(a, b)  # no dropout in eval mode: deterministic


def test_argument_errors():
    X, y = _blobs(20)
    with pytest.raises(ValueError, match=r"same number of samples.*\(20, 4\).*\(19,\)"):
        fit(_mlp(), X, y[:-1], epochs=1)
    with pytest.raises(TypeError, match="floating point"):
        fit(_mlp(), X.astype(np.int64), y, epochs=1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fit(_mlp(), X, y, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        fit(_mlp(), X, y, epochs=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        predict(_mlp(), X, batch_size=-1)


def test_diverging_loss_is_reported():
    X, y = _blobs(64)
    X[5, 0] = np.nan
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 1"):
        fit(_mlp(), X, y, epochs=1, batch_size=64, verbose=0)


# -- cnnfast tracks PyTorch step by step ----------------------------------------------------------


def _small_cnn():
    return [
        ("conv", (1, 4, 3)),
        ("relu",),
        ("pool",),
        ("conv", (4, 6, 3)),
        ("relu",),
        ("pool",),
        ("flatten",),
        ("linear", (6 * 3 * 3, 10)),
    ]


def _build(spec, nnmod):
    layers = []
    for item in spec:
        kind = item[0]
        if kind == "conv":
            layers.append(nnmod.Conv2d(*item[1], padding=1))
        elif kind == "relu":
            layers.append(nnmod.ReLU())
        elif kind == "pool":
            layers.append(nnmod.MaxPool2d(2))
        elif kind == "flatten":
            layers.append(nnmod.Flatten())
        else:
            layers.append(nnmod.Linear(*item[1]))
    return nnmod.Sequential(*layers)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_training_tracks_pytorch(opt_name):
    torch = pytest.importorskip("torch")
    cnnfast.manual_seed(0)
    ours = _build(_small_cnn(), nn).double()
    theirs = _build(_small_cnn(), torch.nn).double()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    X = rng.random((48, 1, 12, 12))
    y = rng.integers(0, 10, 48)
    if opt_name == "sgd":
        opt = optim.SGD(ours.parameters(), lr=0.05, momentum=0.9)
        topt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = optim.Adam(ours.parameters(), lr=1e-2)
        topt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    losses = []
    for _step in range(8):
        idx = rng.permutation(48)[:16]
        out = ours(cnnfast.Tensor(X[idx]))
        loss = loss_fn(out, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tout = theirs(torch.from_numpy(X[idx]))
        tloss = tloss_fn(tout, torch.from_numpy(y[idx]))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert float(loss.data) == pytest.approx(tloss.item(), rel=1e-9, abs=1e-12)
        losses.append(float(loss.data))
    for (k, a), (k2, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert k == k2
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-8, atol=1e-10, err_msg=k)
    assert losses[-1] < losses[0]


def test_fit_matches_a_manual_torch_loop_with_the_same_batches():
    """fit(seed=s) visits default_rng(s).permutation(n) per epoch: a torch loop doing that agrees."""
    torch = pytest.importorskip("torch")
    cnnfast.manual_seed(1)
    ours = _build(_small_cnn(), nn).double()
    theirs = _build(_small_cnn(), torch.nn).double()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(1)
    X, y = rng.random((40, 1, 12, 12)), rng.integers(0, 10, 40)
    h = fit(ours, X, y, epochs=2, batch_size=16, optimizer=optim.Adam(ours.parameters(), lr=1e-2), seed=5, verbose=0)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    order_rng = np.random.default_rng(5)
    tl = []
    for _ in range(2):
        order = order_rng.permutation(40)
        total = 0.0
        for s in range(0, 40, 16):
            idx = order[s : s + 16]
            loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(X[idx])), torch.from_numpy(y[idx]))
            topt.zero_grad()
            loss.backward()
            topt.step()
            total += loss.item() * len(idx)
        tl.append(total / 40)
    np.testing.assert_allclose(h.history["loss"], tl, rtol=1e-9)
    for (k, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-8, atol=1e-10, err_msg=k)
