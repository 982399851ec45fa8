"""Losses: cross_entropy, nll_loss, mse_loss, binary_cross_entropy_with_logits (PyTorch semantics).

ndarray in -> ndarray out (a 0-d array for 'mean'/'sum'); given a Tensor, a recorded Tensor.
Each loss is one autograd node whose backward is written out by hand (the ``_*_backward``
helpers in cnnfast._ndarray.loss), not a chain of elementwise ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..autograd import ops as _ops
from .._typing import _is_tensor
from .._utils import _any_tensor, _tensor_arg
from .._ndarray.loss import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _REDUCTIONS,
    _bce_logits_backward,
    _bce_logits_forward,
    _check_reduction,
    _check_weight,
    _class_input,
    _cross_entropy_backward,
    _cross_entropy_forward,
    _float,
    _index_coeffs,
    _nll_backward,
    _nll_forward,
    _reduce,
    _reduce_backward,
    _same_shape,
    _softplus_neg,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, TensorLike
    from ..autograd.tensor import Tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits"]


def _ag() -> Any:
    return _ops


# ---------------------------------------------------------------------------- class-index targets


@overload
def cross_entropy(
    input: Tensor,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: Tensor,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor: ...
@overload
def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array: ...
def cross_entropy(
    input: TensorLike,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array | Tensor:
    """Cross entropy between ``softmax(input, 1)`` and ``target`` (``torch.nn.functional.cross_entropy``).

    ``input`` is raw logits ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``. ``target`` is either
    integer class indices ``(N,)``/``(N, d1, ...)``/``()`` or class probabilities (e.g. one-hot)
    with the input's shape. ``weight`` rescales each class; targets equal to ``ignore_index`` are
    skipped; ``label_smoothing`` mixes the target with the uniform distribution. 'mean' divides by
    the summed target weights (the sample count without ``weight``).
    """
    if _any_tensor(input, target, weight):
        return _ag().CrossEntropy.apply(
            _tensor_arg(input), _tensor_arg(target), _tensor_arg(weight), ignore_index, reduction, label_smoothing
        )
    return _cross_entropy_forward(input, target, weight, ignore_index, reduction, label_smoothing)[0]


# ---------------------------------------------------------------------------- nll_loss


@overload
def nll_loss(
    input: Tensor,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: Tensor,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor: ...
@overload
def nll_loss(
    input: ArrayLike, target: ArrayLike, weight: Tensor, *, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor: ...
@overload
def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Array: ...
def nll_loss(
    input: TensorLike,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Array | Tensor:
    """Negative log likelihood of log-probabilities ``input`` (N, C, ...) at integer ``target`` classes."""
    if _any_tensor(input, target, weight):
        return _ag().NLLLoss.apply(
            _tensor_arg(input), _tensor_arg(target), _tensor_arg(weight), ignore_index, reduction
        )
    return _nll_forward(input, target, weight, ignore_index, reduction)[0]


# ---------------------------------------------------------------------------- mse / bce


@overload
def mse_loss(input: Tensor, target: TensorLike, reduction: str = "mean") -> Tensor: ...
@overload
def mse_loss(input: ArrayLike, target: Tensor, reduction: str = "mean") -> Tensor: ...
@overload
def mse_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean") -> Array: ...
def mse_loss(input: TensorLike, target: TensorLike, reduction: str = "mean") -> Array | Tensor:
    """Mean squared error ``(input - target)**2``, reduced. Shapes must match exactly."""
    op = "mse_loss"
    _check_reduction(op, reduction)
    xi = input.data if _is_tensor(input) else np.asarray(input)
    ti = target.data if _is_tensor(target) else np.asarray(target)
    _same_shape(op, xi, ti)
    if _any_tensor(input, target):
        return _ag().MSELoss.apply(_tensor_arg(input), _tensor_arg(target), reduction)
    x = _float(xi)
    d = x - _float(ti, x)
    return _reduce(d * d, reduction)


@overload
def binary_cross_entropy_with_logits(
    input: Tensor,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    reduction: str = "mean",
    pos_weight: TensorLike | None = None,
) -> Tensor: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: Tensor,
    weight: TensorLike | None = None,
    *,
    reduction: str = "mean",
    pos_weight: TensorLike | None = None,
) -> Tensor: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: Tensor,
    *,
    reduction: str = "mean",
    pos_weight: TensorLike | None = None,
) -> Tensor: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, *, reduction: str = "mean", pos_weight: Tensor
) -> Tensor: ...
@overload
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    reduction: str = "mean",
    pos_weight: ArrayLike | None = None,
) -> Array: ...
def binary_cross_entropy_with_logits(
    input: TensorLike,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    reduction: str = "mean",
    pos_weight: TensorLike | None = None,
) -> Array | Tensor:
    """Sigmoid + binary cross entropy in one numerically stable step (never takes log of 0).

    ``target`` holds probabilities in [0, 1] with the input's shape; ``weight`` rescales each
    element; ``pos_weight`` weighs the positive term (broadcast over the class dimension).
    """
    if _any_tensor(input, target, weight, pos_weight):
        pw = pos_weight.data if _is_tensor(pos_weight) else pos_weight
        w = weight.data if _is_tensor(weight) else weight
        return _ag().BCEWithLogits.apply(_tensor_arg(input), _tensor_arg(target), w, pw, reduction)
    return _bce_logits_forward(input, target, weight, pos_weight, reduction)[0]
