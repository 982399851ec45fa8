"""5,000 real MNIST digits shipped inside cnnfast, in a fixed stratified 4,000/1,000 split.

The data come from the MNIST database (LeCun et al., CC BY-SA 3.0); see ``MNIST_5K_NOTICE.md``
next to this file for the source, the license, the citation and how the file was generated.
Loading needs NumPy only and never touches the network.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, overload

import numpy as np

if TYPE_CHECKING:
    from .._typing import Array, DTypeLike

__all__ = ["load_mnist_5k", "MNIST_5K_CLASSES"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_FILE = os.path.join(_HERE, "mnist_5k.npz")

#: The ten class labels, in order.
MNIST_5K_CLASSES = tuple(range(10))

_SIZES = {"train": 4000, "test": 1000}


@functools.lru_cache(maxsize=1)
def _raw() -> dict[str, Array]:
    """Read the archive once (about 5 ms); callers get copies, never these arrays."""
    try:
        with np.load(_FILE, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except FileNotFoundError:
        raise FileNotFoundError(
            f"load_mnist_5k: the data file {_FILE} is missing from this cnnfast "
            "installation (it is package data; reinstall cnnfast)"
        ) from None
    for split, n in _SIZES.items():
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape != (n, 28, 28) or x.dtype != np.uint8 or y.shape != (n,):
            raise RuntimeError(
                f"load_mnist_5k: {_FILE} is damaged: x_{split} {x.shape} {x.dtype}, "
                f"y_{split} {y.shape}; expected ({n}, 28, 28) uint8 and ({n},)"
            )
    return arrays


def _split(name: str, normalize: bool, dtype: np.dtype) -> tuple[Array, Array]:
    a = _raw()
    x = a[f"x_{name}"][:, None, :, :]  # NCHW: (N, 1, 28, 28)
    if normalize:
        x = x.astype(dtype) / dtype.type(255)  # in [0, 1]
    else:
        x = x.copy()
    return x, a[f"y_{name}"].astype(np.int64)


@overload
def load_mnist_5k(
    split: None = None, normalize: bool = True, dtype: DTypeLike = np.float32
) -> tuple[tuple[Array, Array], tuple[Array, Array]]: ...
@overload
def load_mnist_5k(split: str, normalize: bool = True, dtype: DTypeLike = np.float32) -> tuple[Array, Array]: ...
def load_mnist_5k(
    split: str | None = None, normalize: bool = True, dtype: DTypeLike = np.float32
) -> tuple[Array, Array] | tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Load 5,000 real MNIST digits (500 per class) in a fixed, class-stratified split.

    Parameters
    ----------
    split : None, 'train' or 'test'
        ``'train'``: the 4,000 training digits (400 per class); ``'test'``: the 1,000 held-out
        digits (100 per class); ``None``: both, as ``((X_train, y_train), (X_test, y_test))``.
    normalize : bool
        True (default): images as ``dtype`` scaled to [0, 1]. False: raw uint8 pixels 0..255.
    dtype : float32 (default) or float64
        The image dtype when ``normalize`` is True (ignored otherwise).

    Returns
    -------
    ``(X, y)`` for one split, or ``((X_train, y_train), (X_test, y_test))``. ``X`` has shape
    ``(N, 1, 28, 28)`` (NCHW, ready for ``Conv2d(1, ...)``), ``y`` is int64 in 0..9. The order is
    shuffled once, fixed and identical on every call and every machine (it is stored in the file).
    Fresh arrays are returned on each call, so modifying them is safe.
    """
    dt = np.dtype(dtype)
    if normalize and dt not in (np.float32, np.float64):
        raise ValueError(f"load_mnist_5k: dtype must be float32 or float64 when normalize=True, got {dt}")
    if split is None:
        return _split("train", normalize, dt), _split("test", normalize, dt)
    if split not in _SIZES:
        raise ValueError(f"load_mnist_5k: split must be None, 'train' or 'test', got {split!r}")
    return _split(split, normalize, dt)
