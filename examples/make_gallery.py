"""Render the cnnfast picture gallery into docs/ (or the folder given with --out).

    python examples/make_gallery.py [--out docs] [--epochs 3] [--dpi 80] [--no-train]

Figures:
  convolution_lecture.png         the lecture's worked example (slides 7-9): 4x4 * 3x3 = [[142, 189], [225, 230]]
  convolution_padding_stride.png  zero padding 1 and stride 2 (slides 26-28), a Sobel kernel
  kernels_hand_designed.png       the hand-designed kernels of cnnfast.filters.kernels, with their values
  filters_camera.png              camera photo: Sobel x / y / magnitude and a Gaussian blur
  filters_astronaut.png           the same on the colour astronaut photo
  mnist_history.png               loss and accuracy of a LeNet-style CNN trained on 5,000 MNIST digits
  mnist_kernels.png               its first-layer kernels after training
  mnist_feature_maps.png          its feature maps on one test digit, layer by layer

The MNIST figures train the model with ``cnnfast.training.fit`` (3 epochs took about two minutes
on a busy 2-core machine); ``--no-train`` skips them. Needs matplotlib (pip install cnnfast[viz]).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import cnnfast
import cnnfast.filters as F
import cnnfast.nn as nn
import cnnfast.viz as viz
from cnnfast.datasets import load_mnist_5k, sample_image
from cnnfast.training import fit


def lenet():
    """LeNet-5 shaped for 28x28 digits: two conv/ReLU/pool stages, then three linear layers."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def _shrink_png(path):
    """Re-save as a 256-colour palette PNG: photos drop to about a third, plots look the same.

    Pillow comes with matplotlib; without it the file stays as matplotlib wrote it.
    """
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dpi", type=int, default=80)
    p.add_argument("--no-train", action="store_true", help="skip the MNIST training figures")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    dpi = args.dpi

    def save(name, fig_fn):
        t = time.perf_counter()
        path = os.path.join(out, name)
        fig_fn(path)
        _shrink_png(path)
        print(f"{path}  ({os.path.getsize(path) / 1024:.0f} KB, {time.perf_counter() - t:.1f} s)")

    save("convolution_lecture.png", lambda path: viz.plot_convolution(path=path, dpi=dpi))
    demo = np.array([[3, 0, 1, 2, 7], [1, 5, 8, 9, 3], [2, 7, 2, 5, 1], [0, 1, 3, 1, 7], [4, 2, 1, 6, 2]])
    save(
        "convolution_padding_stride.png",
        lambda path: viz.plot_convolution(
            demo, F.kernels.sobel_x(), stride=2, padding=1, highlight=(1, 0), path=path, dpi=dpi
        ),
    )
    k = F.kernels
    bank = np.stack(
        [
            k.sobel_x(),
            k.sobel_y(),
            k.prewitt_x(),
            k.laplace(),
            k.box(3),
            k.gaussian(0.8, size=3),
            k.sharpen(),
            k.emboss(),
        ]
    )[:, None]
    names = [
        "sobel_x()",
        "sobel_y()",
        "prewitt_x()",
        "laplace()",
        "box(3)",
        "gaussian(0.8, size=3)",
        "sharpen()",
        "emboss()",
    ]
    save(
        "kernels_hand_designed.png",
        lambda path: viz.plot_kernels(
            bank, ncols=4, names=names, title="hand-designed kernels (cnnfast.filters.kernels)", path=path, dpi=dpi
        ),
    )
    save("filters_camera.png", lambda path: viz.plot_filters_demo(sample_image("camera"), path=path, dpi=dpi))
    save("filters_astronaut.png", lambda path: viz.plot_filters_demo(sample_image("astronaut"), path=path, dpi=dpi))

    if args.no_train:
        return
    cnnfast.manual_seed(0)
    train_data, test_data = load_mnist_5k()
    model = lenet()
    t = time.perf_counter()
    history = fit(
        model, *train_data, epochs=args.epochs, batch_size=64, validation_data=test_data, seed=0, verbose=0
    )  # Adam, lr 1e-3, cross-entropy: fit's defaults
    print(
        f"trained LeNet for {args.epochs} epochs in {time.perf_counter() - t:.0f} s: "
        f"val_accuracy {history.history['val_accuracy'][-1]:.3f}"
    )
    save("mnist_history.png", lambda path: viz.plot_history(history, path=path, dpi=dpi))
    save("mnist_kernels.png", lambda path: viz.plot_kernels(model[0], path=path, dpi=dpi))
    digit = test_data[0][0]  # (1, 28, 28)
    save("mnist_feature_maps.png", lambda path: viz.plot_feature_maps(model, digit, path=path, dpi=dpi))


if __name__ == "__main__":
    main()
