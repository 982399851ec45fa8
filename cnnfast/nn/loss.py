"""Loss layers: CrossEntropyLoss, NLLLoss, MSELoss, BCEWithLogitsLoss (``forward(input, target)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

import numpy as np

from .. import functional as F
from ..functional.loss import _check_reduction
from .module import Module

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, TensorLike
    from ..autograd.tensor import Tensor

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss"]


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


def _weight(w: TensorLike | None) -> Array | None:
    return None if w is None else np.asarray(getattr(w, "data", w))


class CrossEntropyLoss(_Loss):
    """``cross_entropy(logits, target)``: log_softmax + negative log likelihood in one stable step.

    ``target`` is class indices (N,) or class probabilities / one-hot rows of the logits' shape.
    """

    def __init__(
        self,
        weight: TensorLike | None = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.register_buffer("weight", _weight(weight))
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    @overload
    def forward(self, input: Tensor, target: TensorLike) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: Tensor) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: ArrayLike) -> Array: ...
    def forward(self, input: TensorLike, target: TensorLike) -> Array | Tensor:
        return F.cross_entropy(
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)


class NLLLoss(_Loss):
    """Negative log likelihood of log-probabilities (pair with LogSoftmax)."""

    def __init__(self, weight: TensorLike | None = None, *, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _weight(weight))
        self.ignore_index = ignore_index

    @overload
    def forward(self, input: Tensor, target: TensorLike) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: Tensor) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: ArrayLike) -> Array: ...
    def forward(self, input: TensorLike, target: TensorLike) -> Array | Tensor:
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error (input and target must have the same shape)."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    @overload
    def forward(self, input: Tensor, target: TensorLike) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: Tensor) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: ArrayLike) -> Array: ...
    def forward(self, input: TensorLike, target: TensorLike) -> Array | Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross entropy, numerically stable (takes logits, not probabilities)."""

    def __init__(
        self, weight: TensorLike | None = None, *, reduction: str = "mean", pos_weight: TensorLike | None = None
    ) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _weight(weight))
        self.register_buffer("pos_weight", _weight(pos_weight))

    @overload
    def forward(self, input: Tensor, target: TensorLike) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: Tensor) -> Tensor: ...
    @overload
    def forward(self, input: ArrayLike, target: ArrayLike) -> Array: ...
    def forward(self, input: TensorLike, target: TensorLike) -> Array | Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
