"""linear, avg_pool2d, activations, softmax, dropout, flatten, one_hot (torch.nn.functional names).

ndarray in -> ndarray out; given a cnnfast Tensor the result is a Tensor recorded for backward.
The array math is in ``cnnfast._ndarray.misc``, shared with the autograd Functions; its ``_``-prefixed
helpers are importable from here under their old names.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..autograd import ops as _ops
from .._typing import _is_tensor
from .._utils import _any_tensor, _as_float, _tensor_arg  # noqa: F401  (_tensor_arg: its old home)
from .._ndarray.misc import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _avg_pool2d_backward,
    _avg_pool2d_forward,
    _avg_pool_args,
    _avg_pool_shape,
    _check_dim,
    _divisors,
    _dropout_mask,
    _flat_shape,
    _leaky_relu,
    _linear,
    _log_softmax,
    _pool_out,
    _sigmoid,
    _softmax,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, ArrayOrTensor, Generator, IntPair, Padding, TensorLike
    from ..autograd.tensor import Tensor

__all__ = [
    "linear",
    "avg_pool2d",
    "avg_pool2d_output_shape",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "dropout",
    "flatten",
    "one_hot",
]


def _ag() -> Any:
    return _ops


# ---------------------------------------------------------------------------- linear


@overload
def linear(input: Tensor, weight: TensorLike, bias: TensorLike | None = None) -> Tensor: ...
@overload
def linear(input: ArrayLike, weight: Tensor, bias: TensorLike | None = None) -> Tensor: ...
@overload
def linear(input: ArrayLike, weight: ArrayLike, bias: Tensor) -> Tensor: ...
@overload
def linear(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None) -> Array: ...
def linear(input: TensorLike, weight: TensorLike, bias: TensorLike | None = None) -> Array | Tensor:
    """``input @ weight.T + bias``: input ``(*, in_features)``, weight ``(out_features, in_features)``."""
    if _any_tensor(input, weight, bias):
        return _ag().Linear.apply(_tensor_arg(input), _tensor_arg(weight), _tensor_arg(bias))
    x, w, b = _as_float("linear", input=input, weight=weight, bias=bias)
    return _linear(x, w, b)


# ---------------------------------------------------------------------------- avg_pool2d


def avg_pool2d(
    input: ArrayOrTensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> ArrayOrTensor:
    """2-D average pooling over an NCHW batch or CHW image (``torch.nn.functional.avg_pool2d``).

    ``stride`` defaults to ``kernel_size``; zero padding at most half the kernel. With
    ``count_include_pad=False`` the padded zeros are left out of each window's divisor.
    ``padding`` may also be a 4-tuple ``(top, bottom, left, right)`` (asymmetric).
    """
    op = "avg_pool2d"
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return _avg_pool2d_asym(op, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    k, s, p = _avg_pool_args(op, kernel_size, stride, padding)
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0):
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override!r}")
    if _is_tensor(input):
        return _ag().AvgPool2d.apply(input, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override)
    (x,) = _as_float(op, input=input)
    return _avg_pool2d_forward(x, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override)[0]


def _avg_pool2d_asym(
    op: str,
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Any:
    """Asymmetric padding: zero-pad explicitly, sum-pool without padding, divide by the window
    sizes (counting the padding or not)."""
    from .conv import _four_pads
    from .shape import pad as _pad

    t, b, l, r = _four_pads(op, padding)
    k, s, _ = _avg_pool_args(op, kernel_size, stride, 0)
    if max(t, b) > k[0] // 2 or max(l, r) > k[1] // 2:
        raise ValueError(
            f"{op}: pad should be at most half of kernel size, but got padding={tuple(padding)} and " f"kernel_size={k}"
        )
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0):
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override!r}")
    x = input if _is_tensor(input) else _as_float(op, input=input)[0]
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: Expected 3D or 4D (batch mode) input, but got input of size {tuple(x.shape)}")
    xp = _pad(x, (l, r, t, b))
    sums = avg_pool2d(xp, k, s, 0, ceil_mode, True, 1)
    if divisor_override is not None:
        return sums / np.asarray(divisor_override, dtype=x.dtype)
    mask = np.zeros((1, 1) + tuple(xp.shape[-2:]), dtype=x.dtype)
    if count_include_pad:
        mask[...] = 1
    else:
        mask[..., t : t + x.shape[-2], l : l + x.shape[-1]] = 1
    count = avg_pool2d(mask, k, s, 0, ceil_mode, True, 1)
    if x.ndim == 3:
        count = count[0]
    return sums / count


def avg_pool2d_output_shape(
    input_shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
) -> tuple[int, ...]:
    """Output shape of :func:`avg_pool2d`, validated as avg_pool2d validates."""
    op = "avg_pool2d"
    k, s, p = _avg_pool_args(op, kernel_size, stride, padding)
    shape = tuple(int(v) for v in input_shape)
    oh, ow = _avg_pool_shape(op, shape, k, s, p, ceil_mode)
    return shape[:-2] + (oh, ow)


# ---------------------------------------------------------------------------- activations


def leaky_relu(input: ArrayOrTensor, negative_slope: float = 0.01, inplace: bool = False) -> ArrayOrTensor:
    """``x if x > 0 else negative_slope * x``."""
    if _is_tensor(input):
        if inplace and not (input.requires_grad and _grad_enabled()):
            d = input.data
            np.multiply(d, negative_slope, out=d, where=d < 0)
            return input
        return _ag().LeakyReLU.apply(input, negative_slope)
    if inplace:
        if not isinstance(input, np.ndarray) or input.dtype.kind != "f" or not input.flags.writeable:
            raise ValueError("leaky_relu: inplace=True needs a writeable floating point ndarray")
        np.multiply(input, negative_slope, out=input, where=input < 0)
        return input
    (x,) = _as_float("leaky_relu", input=input)
    return _leaky_relu(x, negative_slope)


def _grad_enabled() -> bool:
    from ..autograd.grad_mode import is_grad_enabled

    return is_grad_enabled()


def sigmoid(input: ArrayOrTensor) -> ArrayOrTensor:
    """``1 / (1 + exp(-x))``, computed without overflow."""
    if _is_tensor(input):
        return _ag().Sigmoid.apply(input)
    (x,) = _as_float("sigmoid", input=input)
    return _sigmoid(x)


def tanh(input: ArrayOrTensor) -> ArrayOrTensor:
    if _is_tensor(input):
        return _ag().Tanh.apply(input)
    (x,) = _as_float("tanh", input=input)
    return np.tanh(x)


def softmax(input: ArrayOrTensor, dim: int) -> ArrayOrTensor:
    """``exp(x) / sum(exp(x))`` along ``dim`` (max-subtracted, so large logits do not overflow)."""
    if _is_tensor(input):
        return _ag().Softmax.apply(input, dim=dim)
    (x,) = _as_float("softmax", input=input)
    return _softmax(x, dim)


def log_softmax(input: ArrayOrTensor, dim: int) -> ArrayOrTensor:
    """``log(softmax(x))`` along ``dim``, computed stably as ``x - max - log(sum(exp(x - max)))``."""
    if _is_tensor(input):
        return _ag().LogSoftmax.apply(input, dim=dim)
    (x,) = _as_float("log_softmax", input=input)
    return _log_softmax(x, dim)


# ---------------------------------------------------------------------------- dropout / shape


def dropout(
    input: ArrayOrTensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, generator: Generator = None
) -> ArrayOrTensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (when ``training``).

    ``generator`` (a numpy Generator or int seed) makes the mask reproducible; by default the
    generator seeded by :func:`cnnfast.manual_seed` is used.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p!r}")
    if _is_tensor(input):
        if not training or p == 0:
            return input
        mask = _dropout_mask(
            input.shape, p, input.data.dtype if input.data.dtype.kind == "f" else np.dtype(np.float32), generator
        )
        if inplace and not (input.requires_grad and _grad_enabled()):
            input.data *= mask
            return input
        return _ag().Dropout.apply(input, mask)
    if inplace:
        if not isinstance(input, np.ndarray) or input.dtype.kind != "f" or not input.flags.writeable:
            raise ValueError("dropout: inplace=True needs a writeable floating point ndarray")
        if training and p > 0:
            input *= _dropout_mask(input.shape, p, input.dtype, generator)
        return input
    (x,) = _as_float("dropout", input=input)
    if not training or p == 0:
        return x
    return x * _dropout_mask(x.shape, p, x.dtype, generator)


def flatten(input: ArrayOrTensor, start_dim: int = 0, end_dim: int = -1) -> ArrayOrTensor:
    """Merge dims ``start_dim..end_dim`` into one (``torch.flatten``; nn.Flatten starts at dim 1)."""
    if _is_tensor(input):
        return input.reshape(_flat_shape(input.shape, start_dim, end_dim))
    x = np.asarray(input)
    return x.reshape(_flat_shape(x.shape, start_dim, end_dim))


@overload
def one_hot(labels: Tensor, num_classes: int = -1) -> Tensor: ...
@overload
def one_hot(labels: ArrayLike, num_classes: int = -1) -> Array: ...
def one_hot(labels: TensorLike, num_classes: int = -1) -> Array | Tensor:
    """Integer class labels of any shape -> int64 array of shape ``labels.shape + (num_classes,)``.

    ``num_classes=-1`` uses ``labels.max() + 1``. Labels must be integers in ``[0, num_classes)``.
    """
    is_t = _is_tensor(labels)
    y = np.asarray(labels.data if _is_tensor(labels) else labels)
    if y.dtype.kind not in "iu":
        if y.size:
            raise TypeError(f"one_hot: labels must be an integer array, got dtype {y.dtype}")
        y = y.astype(np.int64)  # an empty list arrives as float64
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"one_hot: num_classes must be an int, got {num_classes!r}")
    if num_classes == -1:
        if y.size == 0:
            raise ValueError("one_hot: can not infer num_classes from empty labels; pass num_classes")
        num_classes = int(y.max()) + 1
    if num_classes < 1 and not (num_classes == 0 and y.size == 0):
        raise ValueError(f"one_hot: num_classes must be positive (or -1), got {num_classes}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = y.min() if y.min() < 0 else y.max()
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got {bad}")
    out = (y[..., None] == np.arange(num_classes)).astype(np.int64)
    if is_t:
        from ..autograd.tensor import Tensor

        return Tensor(out)
    return out
