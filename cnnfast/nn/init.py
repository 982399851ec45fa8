"""Parameter initialisation (``torch.nn.init``): every function fills its argument in place and
returns it. Arguments may be Tensors/Parameters (their ``.data`` is filled, nothing is recorded)
or ndarrays. ``generator=`` (a numpy Generator or int seed) makes the draw reproducible; without
it the default generator seeded by :func:`cnnfast.manual_seed` is used.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, TypeVar, Union

import numpy as np

from .._random import _get_generator
from ..autograd.tensor import Tensor

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, Generator

# The functions fill a Tensor (a Parameter) or an ndarray in place and return it.
_T = TypeVar("_T", bound=Union[Tensor, "Array"])

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]


def _array(tensor: Tensor | Array, op: str) -> Array:
    arr = tensor.data if isinstance(tensor, Tensor) else tensor
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        raise TypeError(
            f"{op}: expected a floating point Tensor or ndarray, got "
            f"{type(tensor).__name__}" + (f" of dtype {arr.dtype}" if isinstance(arr, np.ndarray) else "")
        )
    return arr


def _fill(tensor: _T, values: ArrayLike, op: str) -> _T:
    arr = _array(tensor, op)
    arr[...] = values
    return tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(arr: Array) -> tuple[int, int]:
    if arr.ndim < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a tensor with fewer than 2 dimensions "
            f"(got shape {arr.shape})"
        )
    receptive = int(np.prod(arr.shape[2:])) if arr.ndim > 2 else 1
    return arr.shape[1] * receptive, arr.shape[0] * receptive


def _fan(arr: Array, mode: str, op: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{op}: mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(arr)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: _T, a: float = 0.0, b: float = 1.0, generator: Generator = None) -> _T:
    """Fill with U(a, b)."""
    arr = _array(tensor, "uniform_")
    return _fill(tensor, _get_generator(generator, "uniform_").uniform(a, b, arr.shape), "uniform_")


def normal_(tensor: _T, mean: float = 0.0, std: float = 1.0, generator: Generator = None) -> _T:
    """Fill with N(mean, std^2)."""
    arr = _array(tensor, "normal_")
    return _fill(tensor, _get_generator(generator, "normal_").normal(mean, std, arr.shape), "normal_")


def constant_(tensor: _T, val: float) -> _T:
    return _fill(tensor, val, "constant_")


def zeros_(tensor: _T) -> _T:
    return _fill(tensor, 0, "zeros_")


def ones_(tensor: _T) -> _T:
    return _fill(tensor, 1, "ones_")


def xavier_uniform_(tensor: _T, gain: float = 1.0, generator: Generator = None) -> _T:
    """Glorot uniform: U(-b, b), ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_array(tensor, "xavier_uniform_"))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: _T, gain: float = 1.0, generator: Generator = None) -> _T:
    """Glorot normal: N(0, std^2), ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_array(tensor, "xavier_normal_"))
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(
    tensor: _T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Generator = None
) -> _T:
    """He uniform: U(-b, b), ``b = gain * sqrt(3 / fan)`` with ``gain = calculate_gain(nonlinearity, a)``.

    ``a=sqrt(5)`` (what Conv2d and Linear use by default, as PyTorch) gives ``b = 1/sqrt(fan_in)``.
    """
    fan = _fan(_array(tensor, "kaiming_uniform_"), mode, "kaiming_uniform_")
    if fan == 0:
        raise ValueError("kaiming_uniform_: fan is 0 (a zero-element tensor)")
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: _T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Generator = None
) -> _T:
    """He normal: N(0, std^2), ``std = gain / sqrt(fan)``."""
    fan = _fan(_array(tensor, "kaiming_normal_"), mode, "kaiming_normal_")
    if fan == 0:
        raise ValueError("kaiming_normal_: fan is 0 (a zero-element tensor)")
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)
