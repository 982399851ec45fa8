"""cnnfast.functional: the NumPy-level operations (PyTorch's torch.nn.functional names).

ndarray in -> ndarray out; given a cnnfast Tensor, the result is a Tensor recorded for backward.
"""

from .activation import relu, relu_, relu_backward
from .conv import conv2d, conv2d_backward, conv2d_input, conv2d_output_shape, conv2d_relu, conv2d_weight
from .pooling import max_pool2d, max_pool2d_backward, max_pool2d_output_shape
from .misc import (
    avg_pool2d,
    avg_pool2d_output_shape,
    dropout,
    flatten,
    leaky_relu,
    linear,
    log_softmax,
    one_hot,
    sigmoid,
    softmax,
    tanh,
)
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .normalization import batch_norm, local_response_norm
from .pointwise import gelu, hardsigmoid, hardswish, prelu, relu6, silu
from .adaptive import adaptive_avg_pool2d, global_avg_pool2d
from .shape import cat, pad

__all__ = [
    "conv2d",
    "conv2d_relu",
    "conv2d_backward",
    "conv2d_input",
    "conv2d_weight",
    "conv2d_output_shape",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_output_shape",
    "relu",
    "relu_",
    "relu_backward",
    "linear",
    "avg_pool2d",
    "avg_pool2d_output_shape",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "dropout",
    "flatten",
    "one_hot",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy_with_logits",
    # transfer learning (issue 10)
    "batch_norm",
    "local_response_norm",
    "hardswish",
    "hardsigmoid",
    "silu",
    "relu6",
    "gelu",
    "prelu",
    "adaptive_avg_pool2d",
    "global_avg_pool2d",
    "cat",
    "pad",
]
