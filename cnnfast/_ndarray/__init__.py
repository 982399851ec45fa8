"""The NumPy layer: array math on ndarrays (ndarray in, ndarray out), the bottom of cnnfast's Python
layers. It imports only ``_core``, ``_utils``, ``_gemm`` and ``_random``; ``cnnfast.autograd``
(Tensor operations) builds on it, and ``cnnfast.functional`` (the public ndarray-or-Tensor edge)
on both. The ``_``-prefixed helpers are re-exported by the ``cnnfast.functional`` module they
came from.
"""

from .activation import _relu_array as relu_array
from .activation import relu_backward
from .conv import _conv2d_array as conv2d_array
from .conv import conv2d_backward
from .pooling import _max_pool2d_array as max_pool2d_array
from .pooling import max_pool2d_backward

__all__ = ["relu_array", "relu_backward", "conv2d_array", "conv2d_backward", "max_pool2d_array", "max_pool2d_backward"]
