"""batch_norm and local_response_norm (torch.nn.functional names).

ndarray in -> ndarray out; given a cnnfast Tensor the result is a Tensor recorded for backward.
batch_norm is NumPy in two passes over the input (statistics, then normalise) in training and
one pass (a per-channel scale and shift) in eval; for inference, fold it into the preceding
convolution instead (:func:`cnnfast.nn.fuse_conv_bn_eval`), which costs nothing at run time.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..autograd import ops as _ops
from .._typing import _is_tensor
from .._utils import _any_tensor, _as_float, _tensor_arg
from .._ndarray.normalization import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _batch_norm_backward,
    _batch_norm_forward,
    _bn_axes,
    _bn_bshape,
    _bn_check,
    _channel_dot,
    _channel_window_sum,
    _lrn_backward,
    _lrn_forward,
    _update_running,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, ArrayOrTensor, TensorLike
    from ..autograd.tensor import Tensor

__all__ = ["batch_norm", "local_response_norm"]


def _ag() -> Any:
    return _ops


# ---------------------------------------------------------------------------- batch_norm


@overload
def batch_norm(
    input: Tensor,
    running_mean: Array | None,
    running_var: Array | None,
    weight: TensorLike | None = None,
    bias: TensorLike | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor: ...
@overload
def batch_norm(
    input: ArrayLike,
    running_mean: Array | None,
    running_var: Array | None,
    weight: Tensor,
    bias: TensorLike | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor: ...
@overload
def batch_norm(
    input: ArrayLike,
    running_mean: Array | None,
    running_var: Array | None,
    weight: ArrayLike | None,
    bias: Tensor,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor: ...
@overload
def batch_norm(
    input: ArrayLike,
    running_mean: Array | None,
    running_var: Array | None,
    weight: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array: ...
def batch_norm(
    input: TensorLike,
    running_mean: Array | None,
    running_var: Array | None,
    weight: TensorLike | None = None,
    bias: TensorLike | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array | Tensor:
    """Batch normalisation over dim 1 of an (N, C, ...) input (``torch.nn.functional.batch_norm``).

    ``training=True``: normalise with the batch's mean and (biased) variance per channel, and, if
    ``running_mean``/``running_var`` are arrays, update them **in place**:
    ``running = (1 - momentum) * running + momentum * batch_stat`` (the variance unbiased).
    ``training=False``: normalise with the running statistics. ``weight``/``bias`` (gamma/beta,
    shape (C,)) are optional. Gradients flow to input, weight and bias, not to the running stats.
    """
    op = "batch_norm"
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}: momentum must be a number, got {momentum!r}")
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if a is not None and not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
            raise TypeError(
                f"{op}: {name} must be a floating point ndarray (updated in place) or None, " f"got {type(a).__name__}"
            )
    if _any_tensor(input, weight, bias):
        return _ag().BatchNorm.apply(
            _tensor_arg(input),
            _tensor_arg(weight),
            _tensor_arg(bias),
            running_mean=running_mean,
            running_var=running_var,
            training=bool(training),
            momentum=float(momentum),
            eps=float(eps),
        )
    named = {k: v for k, v in (("input", input), ("weight", weight), ("bias", bias)) if v is not None}
    arrs = dict(zip(named, _as_float(op, **named)))
    x, w, b = arrs["input"], arrs.get("weight"), arrs.get("bias")
    _bn_check(op, x, running_mean, running_var, w, b, training)
    return _batch_norm_forward(x, running_mean, running_var, w, b, bool(training), float(momentum), float(eps))[0]


# ---------------------------------------------------------------------------- local_response_norm


def local_response_norm(
    input: ArrayOrTensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> ArrayOrTensor:
    """Local response normalisation across channels (AlexNet, GoogLeNet v1 in ONNX), as torch:
    ``x_c / (k + alpha/size * sum_{c' in window(c)} x_c'^2) ** beta`` with a window of ``size``
    channels from ``c - size//2`` to ``c + (size-1)//2``."""
    op = "local_response_norm"
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"{op}: size must be a positive int, got {size!r}")
    if _is_tensor(input):
        if input.ndim < 3:
            raise ValueError(f"{op}: Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
        return _ag().LocalResponseNorm.apply(input, size=int(size), alpha=float(alpha), beta=float(beta), k=float(k))
    (x,) = _as_float(op, input=input)
    if x.ndim < 3:
        raise ValueError(f"{op}: Expected 3D or higher dimensionality input (got {x.ndim} dimensions)")
    return _lrn_forward(x, int(size), float(alpha), float(beta), float(k))[0]
