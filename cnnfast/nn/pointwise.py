"""Activation layers of modern CNNs: ReLU6, Hardsigmoid, Hardswish, SiLU, GELU, PReLU (torch.nn names)."""
from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor
from .module import Module, Parameter

__all__ = ["ReLU6", "Hardsigmoid", "Hardswish", "SiLU", "GELU", "PReLU"]


class _Inplace(Module):
    _fn: Callable[..., Any] | None = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input):
        return type(self)._fn(input, inplace=self.inplace)


class ReLU6(_Inplace):
    """``min(max(x, 0), 6)``."""

    _fn = staticmethod(F.relu6)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Hardsigmoid(_Inplace):
    """``relu6(x + 3) / 6``."""

    _fn = staticmethod(F.hardsigmoid)


class Hardswish(_Inplace):
    """``x * relu6(x + 3) / 6``."""

    _fn = staticmethod(F.hardswish)


class SiLU(_Inplace):
    """``x * sigmoid(x)`` (swish)."""

    _fn = staticmethod(F.silu)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """``x * Phi(x)`` (``approximate='none'``, erf) or its tanh approximation (``'tanh'``)."""

    def __init__(self, approximate="none"):
        super().__init__()
        from ..functional.pointwise import _check_approximate

        _check_approximate("GELU", approximate)
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class PReLU(Module):
    """``x if x > 0 else a * x`` with learnt ``weight`` ``a`` of shape ``(num_parameters,)``:
    1 (shared) or the number of channels (one slope each), initialised to ``init``."""

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, numbers.Integral) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.init = init
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=np.dtype(dtype)))

    def reset_parameters(self):
        self.weight.data[...] = self.init

    def forward(self, input):
        w = self.weight if isinstance(input, Tensor) else self.weight.data
        return F.prelu(input, w)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
