"""Type aliases for cnnfast's annotations, defined once.

cnnfast's functions take NumPy arrays (anything ``np.asarray`` accepts) and return NumPy arrays;
given a cnnfast Tensor they return a Tensor recorded for backward. Single-operand functions say
so with the constrained TypeVar :data:`ArrayOrTensor`; functions with several operands use
``typing.overload`` (a Tensor anywhere -> Tensor, else ndarray), with :data:`TensorLike` as the
type of an operand that may be either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from .autograd.tensor import Tensor

    def _is_tensor(x: object) -> TypeIs[Tensor]:
        """True for a cnnfast Tensor (so mypy narrows ``x`` to Tensor, and away from it otherwise)."""
else:
    # The runtime helper itself (no wrapper call on the hot path); typed above. _utils cannot name
    # Tensor: it sits below cnnfast.autograd.
    from ._utils import _is_tensor as _is_tensor

__all__ = [
    "Array",
    "ArrayLike",
    "ArrayOrTensor",
    "DTypeLike",
    "Generator",
    "IntPair",
    "NDArray",
    "Padding",
    "Shape",
    "TensorLike",
]

#: An ndarray of any dtype (cnnfast computes in float32 or float64).
Array = NDArray[Any]

#: "ndarray in -> ndarray out; Tensor in -> Tensor out" for functions with one operand.
ArrayOrTensor = TypeVar("ArrayOrTensor", NDArray[Any], "Tensor")

#: An operand that may be an array-like or a Tensor.
TensorLike = Union[ArrayLike, "Tensor"]

#: An int or an (height, width) pair (a tuple or list), as kernel_size/stride/dilation take.
IntPair = Union[int, Sequence[int]]

#: conv2d/pooling padding: an int, a pair, a 4-tuple (top, bottom, left, right) or 'same'/'valid'.
Padding = Union[int, Sequence[int], str]

#: A shape.
Shape = tuple[int, ...]

#: A source of randomness: a NumPy Generator, an int seed, or None for cnnfast's default generator.
Generator = Union[np.random.Generator, int, None]
