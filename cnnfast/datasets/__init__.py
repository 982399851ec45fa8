"""Small real datasets shipped inside cnnfast (no network access, ever)."""

from ._images import sample_image  # noqa: F401
from ._mnist import load_mnist_5k  # noqa: F401

__all__ = ["load_mnist_5k", "sample_image"]
