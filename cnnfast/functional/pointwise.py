"""The activations of modern CNNs: hardswish, hardsigmoid, silu, relu6, gelu, prelu (torch names).

ndarray in -> ndarray out; given a cnnfast Tensor the result is a Tensor recorded for backward.
Each op is a forward/backward pair of ``_``-prefixed helpers (``cnnfast._ndarray.pointwise``)
shared with the autograd Functions in ``cnnfast.autograd.ops``. The float32/float64 forwards run
C++ kernels (``_core.pointwise_forward``: one pass, threaded, SIMD; SiLU in float64 stays NumPy's
formula), the gradients NumPy formulas; in eval inference a conv's activation runs fused into the
conv call (``nn._eval_fusion``).

Gradients at the kinks follow PyTorch: relu6 and hardsigmoid pass no gradient at their
breakpoints (-3/3, 0/6), hardswish's gradient is ``x/3 + 1/2`` on ``(-3, 3)``, 0 at -3 and 1 at 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..autograd import ops as _ops
from .._typing import _is_tensor
from .._utils import _any_tensor, _as_float, _tensor_arg
from .._ndarray.pointwise import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _INV_SQRT_2,
    _INV_SQRT_2PI,
    _SQRT_2_OVER_PI,
    _check_approximate,
    _erf,
    _erf_ufunc,
    _gelu,
    _gelu_backward,
    _hardsigmoid,
    _hardsigmoid_backward,
    _hardswish,
    _hardswish_backward,
    _prelu,
    _prelu_backward,
    _prelu_weight,
    _relu6,
    _relu6_backward,
    _sigmoid,
    _silu,
    _silu_backward,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, ArrayOrTensor, TensorLike
    from ..autograd.tensor import Tensor

__all__ = ["hardswish", "hardsigmoid", "silu", "relu6", "gelu", "prelu"]


def _ag() -> Any:
    return _ops


def _grad_enabled() -> bool:
    from ..autograd.grad_mode import is_grad_enabled

    return is_grad_enabled()


def _inplace_ok(op: str, input: object) -> None:
    if not isinstance(input, np.ndarray) or input.dtype.kind != "f" or not input.flags.writeable:
        raise ValueError(f"{op}: inplace=True needs a writeable floating point ndarray, got {type(input).__name__}")


def _unary(
    op: str, fwd: Callable[..., Array], fn_name: str, input: ArrayOrTensor, inplace: bool, **kw: Any
) -> ArrayOrTensor:
    """Shared entry: Tensor -> recorded Function (in place only when nothing is recorded), array -> array."""
    if _is_tensor(input):
        if inplace and not (input.requires_grad and _grad_enabled()) and input.data.dtype.kind == "f":
            input.data[...] = fwd(input.data, **kw)
            return input
        return getattr(_ag(), fn_name).apply(input, **kw)
    if inplace:
        _inplace_ok(op, input)
        input[...] = fwd(input, **kw)
        return input
    (x,) = _as_float(op, input=input)
    return fwd(x, **kw)


# ---------------------------------------------------------------------------- relu6 / hard*


def relu6(input: ArrayOrTensor, inplace: bool = False) -> ArrayOrTensor:
    """``min(max(x, 0), 6)`` (MobileNetV2's activation)."""
    return _unary("relu6", _relu6, "ReLU6", input, inplace)


def hardsigmoid(input: ArrayOrTensor, inplace: bool = False) -> ArrayOrTensor:
    """``relu6(x + 3) / 6``, a piecewise-linear sigmoid (MobileNetV3's squeeze-and-excitation gate)."""
    return _unary("hardsigmoid", _hardsigmoid, "Hardsigmoid", input, inplace)


def hardswish(input: ArrayOrTensor, inplace: bool = False) -> ArrayOrTensor:
    """``x * relu6(x + 3) / 6`` (MobileNetV3)."""
    return _unary("hardswish", _hardswish, "Hardswish", input, inplace)


# ---------------------------------------------------------------------------- silu


def silu(input: ArrayOrTensor, inplace: bool = False) -> ArrayOrTensor:
    """``x * sigmoid(x)`` (swish; EfficientNet's activation)."""
    return _unary("silu", _silu, "SiLU", input, inplace)


# ---------------------------------------------------------------------------- gelu


def gelu(input: ArrayOrTensor, approximate: str = "none") -> ArrayOrTensor:
    """``x * Phi(x)`` with Phi the standard normal CDF (erf); ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` as torch does."""
    _check_approximate("gelu", approximate)
    return _unary("gelu", _gelu, "GELU", input, False, approximate=approximate)


# ---------------------------------------------------------------------------- prelu


@overload
def prelu(input: Tensor, weight: TensorLike) -> Tensor: ...
@overload
def prelu(input: ArrayLike, weight: Tensor) -> Tensor: ...
@overload
def prelu(input: ArrayLike, weight: ArrayLike) -> Array: ...
def prelu(input: TensorLike, weight: TensorLike) -> Array | Tensor:
    """``x if x > 0 else weight * x``, with one learnt slope (``weight`` of shape (1,)) or one per
    channel (shape (C,), broadcast along dim 1)."""
    if _any_tensor(input, weight):
        return _ag().PReLU.apply(_tensor_arg(input), _tensor_arg(weight))
    x, w = _as_float("prelu", input=input, weight=weight)
    return _prelu(x, w)
