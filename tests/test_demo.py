"""The LeNet demo: the architecture, the CLI, the plots, and the full training run reaching the bar."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cnnfast
from cnnfast import demo


def test_lenet_architecture():
    model = demo.build_lenet()
    assert sum(p.data.size for p in model.parameters()) == 61_706  # LeNet-5 with a 10-way output
    shapes = [tuple(v.shape) for v in model.state_dict().values()]
    assert shapes == [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,), (10, 84), (10,)]
    with cnnfast.no_grad():
        out = model(cnnfast.Tensor(np.zeros((2, 1, 28, 28), np.float32)))
    assert out.shape == (2, 10)


def test_cli_help_runs_as_a_module(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "cnnfast.demo", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    for opt in ("--epochs", "--batch-size", "--lr", "--threads", "--seed", "--plots", "--compare-torch"):
        assert opt in r.stdout


def test_bad_arguments_exit_with_a_message():
    with pytest.raises(SystemExit, match="--epochs and --batch-size must be >= 1"):
        demo.main(["--epochs", "0"])


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    viz = pytest.importorskip("cnnfast.viz")
    if not all(hasattr(viz, f) for f in ("plot_history", "plot_kernels", "plot_feature_maps")):
        pytest.skip("cnnfast.viz lacks the plotting functions")
    cnnfast.manual_seed(0)
    model = demo.build_lenet()
    history = cnnfast.History()
    for e, (l, a) in enumerate([(1.0, 0.6), (0.5, 0.8)]):
        history._append(e, {"loss": l, "accuracy": a}, 1.0, 100)
    image = cnnfast.datasets.load_mnist_5k("test")[0][0]
    paths = demo._write_plots(str(tmp_path / "plots"), history, model, image)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["history.png", "kernels.png", "feature_maps.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_default_demo_reaches_the_accuracy_bar(capsys):
    """The documented default run: >= 95% on the 1,000 held-out digits (and within 1.5 points of
    PyTorch trained from the same weights on the same batches, when torch is installed)."""
    try:
        import torch  # noqa: F401

        compare = ["--compare-torch"]
    except ImportError:
        compare = []
    result = demo.main(["--quiet", "--threads", "2", *compare])
    out = capsys.readouterr().out
    assert result["test_accuracy"] >= demo.ACCURACY_BAR, out
    assert "test accuracy" in out and "img/s" in out
    h = result["history"].history
    assert len(h["loss"]) == demo.DEFAULT_EPOCHS and h["loss"][-1] < h["loss"][0]
    if compare:
        assert abs(result["torch"]["test_accuracy"] - result["test_accuracy"]) <= 0.015, out
        assert "accuracy gap" in out


def test_python_dash_m_cnnfast(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cnnfast"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "selected ISA" in r.stdout and "python -m cnnfast.demo" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "cnnfast", "bogus"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "unknown command 'bogus'" in r.stderr
