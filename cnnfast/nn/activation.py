"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .. import functional as F
from .module import Module

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


class ReLU(Module):
    """``max(x, 0)``. ``inplace=True`` overwrites the input when nothing is being recorded."""

    inplace: bool

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    negative_slope: float
    inplace: bool

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = bool(inplace)

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.tanh(input)


class _SoftmaxBase(Module):
    _fn: ClassVar[Callable[..., Any] | None] = None
    dim: int | None

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        if self.dim is None:
            raise ValueError(
                f"{type(self).__name__}: dim is not set; construct it with dim=, e.g. "
                f"{type(self).__name__}(dim=1) for (N, C) logits"
            )
        fn = type(self)._fn
        assert fn is not None, "subclasses set _fn"
        out: ArrayOrTensor = fn(input, self.dim)
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """Softmax along ``dim`` (probabilities summing to 1)."""

    _fn = staticmethod(F.softmax)


class LogSoftmax(_SoftmaxBase):
    """log(softmax) along ``dim``, computed stably; pair with NLLLoss."""

    _fn = staticmethod(F.log_softmax)
