"""relu on NumPy arrays (and, given a Tensor, recorded for autograd)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..autograd import ops as _ag
from .._typing import _is_tensor
from .._ndarray.activation import _relu_array
from .._ndarray.activation import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    relu_backward,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayOrTensor

__all__ = ["relu", "relu_", "relu_backward"]


def relu(input: ArrayOrTensor, inplace: bool = False, *, out: Array | None = None) -> ArrayOrTensor:
    """``max(x, 0)`` elementwise, any shape. NaN stays NaN.

    ``inplace=True`` overwrites ``input`` (which must then be a C-contiguous float32/float64
    array) and returns it; ``out=`` writes into a preallocated array of the result's dtype and
    shape. Both skip allocating (and page-faulting) a fresh output.
    """
    if _is_tensor(input):
        return _ag.relu(input, inplace=inplace)
    return _relu_array(input, inplace, out)


def relu_(input: ArrayOrTensor) -> ArrayOrTensor:
    """In-place relu: ``relu(input, inplace=True)``."""
    return relu(input, inplace=True)
