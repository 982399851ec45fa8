"""The array math of cnnfast.functional.activation: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core
from .._utils import _as_float

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike


def relu_backward(grad_output: ArrayLike, input: ArrayLike, *, out: Array | None = None) -> Array:
    """Gradient of relu: ``grad_output * (input > 0)`` (0 at exactly 0, as torch.relu).

    ``input`` may be the forward input or its output (same sign pattern).
    """
    op = "relu_backward"
    gy, x = _as_float(op, grad_output=grad_output, input=input)
    if gy.shape != x.shape:
        raise ValueError(f"{op}: grad_output of size {gy.shape} does not match input of size {x.shape}")
    return _core.relu_backward(gy, x, out)


def _relu_array(input: Any, inplace: bool = False, out: Array | None = None) -> Array:
    """relu on an array (see cnnfast.functional.relu)."""
    op = "relu"
    if inplace:
        if (
            not isinstance(input, np.ndarray)
            or input.dtype not in (np.float32, np.float64)
            or not input.flags.c_contiguous
            or not input.flags.writeable
        ):
            raise ValueError(
                f"{op}: inplace=True needs a writeable C-contiguous float32/float64 ndarray, "
                f"got {type(input).__name__}" + (f" of dtype {input.dtype}" if isinstance(input, np.ndarray) else "")
            )
        return _core.relu_forward(input, input)
    (x,) = _as_float(op, input=input)
    return _core.relu_forward(x, out)
