"""Sample images shipped inside cnnfast, for the filter and visualisation examples.

Both are public domain (see ``IMAGES_LICENSE.txt`` next to this file) and are stored as
compressed ``.npz`` archives, so loading needs NumPy only (no matplotlib, no Pillow).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["sample_image", "SAMPLE_IMAGES"]

_HERE = os.path.dirname(os.path.abspath(__file__))

#: name -> (file, description); shapes are documented in :func:`sample_image`.
SAMPLE_IMAGES = {
    "camera": ("camera.npz", "512x512 grayscale photograph of a cameraman (CC0, Lav Varshney)"),
    "astronaut": ("astronaut.npz", "256x256 RGB portrait of astronaut Eileen Collins (NASA, public domain)"),
}


def sample_image(name: str) -> np.ndarray:
    """Return a shipped sample image as a fresh, writable uint8 ndarray.

    ``'camera'``: grayscale, shape (512, 512). ``'astronaut'``: RGB, shape (256, 256, 3) (channel
    last, as images usually are; ``cnnfast.filters`` takes that layout directly).

    Raises ValueError for an unknown name, listing the available ones.
    """
    if not isinstance(name, str) or name not in SAMPLE_IMAGES:
        raise ValueError(f"sample_image: unknown image {name!r}; available: {', '.join(sorted(SAMPLE_IMAGES))}")
    path = os.path.join(_HERE, SAMPLE_IMAGES[name][0])
    with np.load(path, allow_pickle=False) as f:
        return np.array(f["image"], dtype=np.uint8)
