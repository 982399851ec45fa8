"""cnnfast.viz: every figure renders headless to a PNG of the expected size with real content."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

import cnnfast
import cnnfast.viz as viz
from cnnfast.datasets import sample_image

matplotlib = pytest.importorskip("matplotlib")
mpimg = pytest.importorskip("matplotlib.image")


def _png_size(path):
    """(width, height) from the PNG IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", head[16:24])


def _check_png(fig, path):
    """The file exists, has the Figure's size in pixels, and is not a blank canvas."""
    w, h = _png_size(path)
    fw, fh = fig.get_size_inches() * fig.dpi
    assert (w, h) == (round(fw), round(fh))
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == (h, w)
    assert pixels[..., :3].std() > 0.02
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)  # not the temp file's private mode
    return pixels


def test_plot_convolution_lecture_default(tmp_path):
    path = tmp_path / "conv.png"
    fig = viz.plot_convolution(path=path)
    _check_png(fig, path)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    for value in ("142", "189", "225", "230"):  # the output cells, computed with cnnfast.conv2d
        assert value in texts
    label = fig._supxlabel.get_text()
    assert label == "output[0, 0] = 4x1 + 2x2 + 0x3 + 3x4 + 2x5 + 3x6 + 2x7 + 1x8 + 8x9 = 142"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cnnfast-viz-")]  # no temp files left


def test_plot_convolution_padding_stride_highlight(tmp_path):
    img = np.arange(25).reshape(5, 5) % 7
    k = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    fig = viz.plot_convolution(img, k, stride=2, padding=1, highlight=(1, 2), path=tmp_path / "c.png")
    _check_png(fig, tmp_path / "c.png")
    expected = cnnfast.conv2d(
        img[None, None].astype(np.float32), k[None, None].astype(np.float32), stride=2, padding=1
    )[0, 0]
    assert fig._supxlabel.get_text().endswith(f"= {int(expected[1, 2])}")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 7 * 7 and texts.count("0") >= 24  # the padded grid, 24 padding zeros drawn
    with pytest.raises(ValueError, match="outside the 3x3 output"):
        viz.plot_convolution(img, k, stride=2, padding=1, highlight=(3, 0))
    with pytest.raises(ValueError, match="must be 2-D"):
        viz.plot_convolution(img[None], k)
    with pytest.raises(ValueError, match="not legible"):
        viz.plot_convolution(np.zeros((20, 20)), k)


def test_plot_kernels_layer_weight_and_rgb(tmp_path):
    class FakeConv:  # anything with a .weight Tensor-like (.data) works, like nn.Conv2d
        class weight:
            data = np.random.default_rng(0).standard_normal((6, 2, 5, 5)).astype(np.float32)

    fig = viz.plot_kernels(FakeConv(), path=tmp_path / "k.png")
    _check_png(fig, tmp_path / "k.png")
    assert "6x2x5x5" in fig._suptitle.get_text()
    fig = viz.plot_kernels(np.random.default_rng(1).standard_normal((20, 3, 3, 3)), path=tmp_path / "rgb.png")
    _check_png(fig, tmp_path / "rgb.png")
    assert "RGB" in fig._suptitle.get_text()
    fig = viz.plot_kernels(np.random.default_rng(1).standard_normal((100, 1, 3, 3)), max_kernels=10)
    assert sum(bool(ax.images) for ax in fig.axes) == 10
    with pytest.raises(ValueError, match=r"\(K, C, kH, kW\)"):
        viz.plot_kernels(np.zeros((1, 2, 3, 4, 5)))


class _Conv:
    def __init__(self, w):
        self.weight = w

    def __call__(self, x):
        return cnnfast.conv2d(x, self.weight, padding=1)

    def __repr__(self):
        return f"Conv2d({self.weight.shape[1]}, {self.weight.shape[0]}, kernel_size=3, padding=1)"


class _Relu:
    def __call__(self, x):
        return cnnfast.relu(x)

    def __repr__(self):
        return "ReLU()"


class _Pool:
    def __call__(self, x):
        return cnnfast.max_pool2d(x, 2)

    def __repr__(self):
        return "MaxPool2d(kernel_size=2)"


class _Flatten:
    def __call__(self, x):
        return x.reshape(x.shape[0], -1)

    def __repr__(self):
        return "Flatten()"


def test_plot_feature_maps(tmp_path):
    w = np.random.default_rng(0).standard_normal((12, 1, 3, 3)).astype(np.float32)
    model = [_Conv(w), _Relu(), _Pool(), _Flatten()]  # any iterable of layers, like a Sequential
    img = sample_image("camera")[::16, ::16].astype(np.float32) / 255  # 32x32
    fig = viz.plot_feature_maps(model, img, path=tmp_path / "fm.png")
    _check_png(fig, tmp_path / "fm.png")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert len(labels) == 4 and labels[0].startswith("input") and "12x16x16" in labels[3]  # input+conv+relu+pool
    assert sum(bool(ax.images) for ax in fig.axes) == 1 + 3 * 8  # channels capped at max_channels=8
    fig = viz.plot_feature_maps(model, img[None], layers=[0], max_channels=4)
    assert len([ax for ax in fig.axes if ax.get_ylabel()]) == 2
    with pytest.raises(ValueError, match="not feature maps"):
        viz.plot_feature_maps(model, img, layers=[3])
    with pytest.raises(ValueError, match="out of range"):
        viz.plot_feature_maps(model, img, layers=[7])
    with pytest.raises(ValueError, match="one input"):
        viz.plot_feature_maps(model, np.zeros((2, 1, 8, 8)))
    with pytest.raises(TypeError, match="Sequential"):
        viz.plot_feature_maps(object(), img)


@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_plot_filters_demo(tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig = viz.plot_filters_demo(sample_image(name), path=path, dpi=60)
    _check_png(fig, path)
    assert len(fig.axes) == 5
    with pytest.raises(ValueError, match="grayscale"):
        viz.plot_filters_demo(np.zeros((4, 4, 5)))


def test_plot_history(tmp_path):
    hist = {
        "loss": [1.2, 0.7, 0.4],
        "accuracy": [0.6, 0.8, 0.9],
        "val_loss": [1.3, 0.9, 0.8],
        "val_accuracy": [0.55, 0.75, 0.8],
    }

    class History:
        history = hist
        epoch = [0, 1, 2]

    fig = viz.plot_history(History(), path=tmp_path / "h.png")
    _check_png(fig, tmp_path / "h.png")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    np.testing.assert_array_equal(fig.axes[0].lines[1].get_ydata(), hist["val_loss"])
    fig = viz.plot_history({"loss": [3.0, 2.0]})
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no 'loss' or 'accuracy'"):
        viz.plot_history({"lr": [0.1]})
    with pytest.raises(TypeError, match="History"):
        viz.plot_history([1, 2])


def test_threads_render_independently(tmp_path):
    """No pyplot global state: figures rendered from several threads at once all come out right."""
    errors = []

    def work(i):
        try:
            p = tmp_path / f"t{i}.png"
            _check_png(viz.plot_convolution(highlight=(i % 2, 1), path=p), p)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_never_imports_pyplot(tmp_path):
    """pyplot's global state (and its GUI backend selection) is never touched."""
    code = (
        "import sys, cnnfast.viz as v; v.plot_convolution(path='c.png'); v.plot_history({'loss': [1, 0.5]}); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    assert (tmp_path / "c.png").exists()


def test_failed_save_leaves_no_file(tmp_path):
    fig = viz.plot_history({"loss": [1.0, 0.5]})
    with pytest.raises(ValueError):
        viz._finish(fig, tmp_path / "out.unknownformat")
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes `import matplotlib.figure` fail
    with pytest.raises(ImportError, match=r"pip install cnnfast\[viz\]"):
        viz.plot_history({"loss": [1.0]})
