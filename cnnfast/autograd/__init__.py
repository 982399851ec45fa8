"""cnnfast.autograd: a define-by-run tape over NumPy arrays (micrograd/tinygrad style).

``Tensor`` wraps an ndarray; operations on Tensors that require grad record a ``Function`` node;
``loss.backward()`` topologically sorts the graph once and sweeps it in reverse.
"""

from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor
from .function import Function, backward
from . import ops

__all__ = ["Tensor", "Function", "backward", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "ops"]
