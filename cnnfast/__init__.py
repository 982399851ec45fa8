"""cnnfast: fast convolutional neural networks on the CPU.

Hand-written C++ kernels (SIMD + OpenMP) for conv2d, max_pool2d and ReLU, a NumPy functional API
with PyTorch's names, and a small autograd for training.
"""
__version__ = "0.1.0"

from . import _core  # noqa: E402  (the compiled kernels; importing it reads CNNFAST_ISA)
from ._runtime import (  # noqa: E402
    available_isas, get_isa, get_num_threads, runtime_info, set_isa, set_num_threads, show_runtime,
)
from .functional import (  # noqa: E402
    conv2d, conv2d_backward, conv2d_input, conv2d_output_shape, conv2d_relu, conv2d_weight,
    max_pool2d, max_pool2d_backward, max_pool2d_output_shape, relu, relu_, relu_backward,
)
from . import functional  # noqa: E402
from .functional import (  # noqa: E402
    avg_pool2d, binary_cross_entropy_with_logits, cross_entropy, dropout, flatten, leaky_relu, linear, log_softmax,
    mse_loss, nll_loss, one_hot, sigmoid, softmax, tanh,
)
from .autograd import Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from ._random import manual_seed  # noqa: E402
from . import nn  # noqa: E402

__all__ = [
    "__version__", "functional",
    "show_runtime", "runtime_info", "get_num_threads", "set_num_threads", "get_isa", "set_isa", "available_isas",
    "conv2d", "conv2d_relu", "conv2d_backward", "conv2d_input", "conv2d_weight", "conv2d_output_shape",
    "max_pool2d", "max_pool2d_backward", "max_pool2d_output_shape", "relu", "relu_", "relu_backward",
]
# autograd, nn and the functional ops beyond the kernels
__all__ += [
    "Tensor", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "manual_seed", "nn",
    "linear", "avg_pool2d", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "flatten",
    "one_hot", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits",
]
