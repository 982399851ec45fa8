"""relu on NumPy arrays (and, given a Tensor, recorded for autograd)."""
from __future__ import annotations

import numpy as np

from .. import _core
from .._utils import _any_tensor, _as_float

__all__ = ["relu", "relu_", "relu_backward"]


def relu(input, inplace=False, *, out=None):
    """``max(x, 0)`` elementwise, any shape. NaN stays NaN.

    ``inplace=True`` overwrites ``input`` (which must then be a C-contiguous float32/float64
    array) and returns it; ``out=`` writes into a preallocated array of the result's dtype and
    shape. Both skip allocating (and page-faulting) a fresh output.
    """
    op = "relu"
    if _any_tensor(input):
        from ..autograd import ops as _ag

        return _ag.relu(input, inplace=inplace)
    if inplace:
        if not isinstance(input, np.ndarray) or input.dtype not in (np.float32, np.float64) \
                or not input.flags.c_contiguous or not input.flags.writeable:
            raise ValueError(f"{op}: inplace=True needs a writeable C-contiguous float32/float64 ndarray, "
                             f"got {type(input).__name__}" + (f" of dtype {input.dtype}" if isinstance(input, np.ndarray) else ""))
        return _core.relu_forward(input, input)
    (x,) = _as_float(op, input=input)
    return _core.relu_forward(x, out)


def relu_(input):
    """In-place relu: ``relu(input, inplace=True)``."""
    return relu(input, inplace=True)


def relu_backward(grad_output, input, *, out=None):
    """Gradient of relu: ``grad_output * (input > 0)`` (0 at exactly 0, as torch.relu).

    ``input`` may be the forward input or its output (same sign pattern).
    """
    op = "relu_backward"
    gy, x = _as_float(op, grad_output=grad_output, input=input)
    if gy.shape != x.shape:
        raise ValueError(f"{op}: grad_output of size {gy.shape} does not match input of size {x.shape}")
    return _core.relu_backward(gy, x, out)
