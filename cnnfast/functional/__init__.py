"""cnnfast.functional: the NumPy-level operations (PyTorch's torch.nn.functional names).

ndarray in -> ndarray out; given a cnnfast Tensor, the result is a Tensor recorded for backward.
"""
from .activation import relu, relu_, relu_backward
from .conv import conv2d, conv2d_backward, conv2d_input, conv2d_output_shape, conv2d_relu, conv2d_weight
from .pooling import max_pool2d, max_pool2d_backward, max_pool2d_output_shape

__all__ = [
    "conv2d", "conv2d_relu", "conv2d_backward", "conv2d_input", "conv2d_weight", "conv2d_output_shape",
    "max_pool2d", "max_pool2d_backward", "max_pool2d_output_shape",
    "relu", "relu_", "relu_backward",
]
