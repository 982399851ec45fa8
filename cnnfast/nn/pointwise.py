"""Activation layers of modern CNNs: ReLU6, Hardsigmoid, Hardswish, SiLU, GELU, PReLU (torch.nn names)."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor
from .module import Module, Parameter

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor, DTypeLike

__all__ = ["ReLU6", "Hardsigmoid", "Hardswish", "SiLU", "GELU", "PReLU"]


class _Inplace(Module):
    _fn: ClassVar[Callable[..., Any] | None] = None
    inplace: bool

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        fn = type(self)._fn
        assert fn is not None, "subclasses set _fn"
        out: ArrayOrTensor = fn(input, inplace=self.inplace)
        return out


class ReLU6(_Inplace):
    """``min(max(x, 0), 6)``."""

    _fn = staticmethod(F.relu6)

    def extra_repr(self) -> str:
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

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """``x * Phi(x)`` (``approximate='none'``, erf) or its tanh approximation (``'tanh'``)."""

    approximate: str

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        from ..functional.pointwise import _check_approximate

        _check_approximate("GELU", approximate)
        self.approximate = approximate

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class PReLU(Module):
    """``x if x > 0 else a * x`` with learnt ``weight`` ``a`` of shape ``(num_parameters,)``:
    1 (shared) or the number of channels (one slope each), initialised to ``init``."""

    num_parameters: int  # type: ignore[assignment]  # shadows Module.num_parameters(), as in torch
    init: float
    weight: Parameter

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype: DTypeLike = np.float32) -> None:
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, numbers.Integral) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.init = init
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=np.dtype(dtype)))

    def reset_parameters(self) -> None:
        self.weight.data[...] = self.init

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        w = self.weight if isinstance(input, Tensor) else self.weight.data
        return F.prelu(input, w)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
