"""``Linear`` (fully connected), ``Identity`` and ``Flatten``."""

from __future__ import annotations

import math
import numbers

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor
from . import init
from .module import Module, Parameter

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor, DTypeLike, Generator

__all__ = ["Linear", "Identity", "Flatten"]


class Linear(Module):
    """``y = x @ weight.T + bias`` with weight ``(out_features, in_features)`` (``torch.nn.Linear``).

    Initialised as PyTorch: weight and bias U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: DTypeLike = np.float32,
        generator: Generator = None,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {v!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Linear: dtype must be floating point, got {dtype}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator = None) -> None:
        if self.in_features:
            init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        w: Any = self.weight
        b: Any = self.bias
        if not isinstance(input, Tensor):
            w, b = w.data, (None if b is None else b.data)
        return F.linear(input, w, b)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return input


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (default: all but the batch dim) into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
