"""conv2d on NumPy arrays (and, given a Tensor, recorded for autograd).

Cross-correlation exactly as the lecture computes it (no kernel flip), NCHW, PyTorch's argument
names and order. The backward passes are public too, so a NumPy user can write their own backprop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from ..autograd import ops as _ag
from .._utils import _any_tensor
from .._ndarray.conv import _conv2d_array
from .._ndarray.conv import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _batch,
    _bwd_input,
    _bwd_weight,
    _conv_pads,
    _four_pads,
    _pad_extra,
    _prepare,
    conv2d_backward,
    conv2d_input,
    conv2d_output_shape,
    conv2d_weight,
)

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, IntPair, Padding, TensorLike
    from ..autograd.tensor import Tensor

__all__ = ["conv2d", "conv2d_relu", "conv2d_backward", "conv2d_input", "conv2d_weight", "conv2d_output_shape"]


@overload
def conv2d(
    input: Tensor,
    weight: TensorLike,
    bias: TensorLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor: ...
@overload
def conv2d(
    input: ArrayLike,
    weight: Tensor,
    bias: TensorLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor: ...
@overload
def conv2d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: Tensor,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor: ...
@overload
def conv2d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Array: ...
def conv2d(
    input: TensorLike,
    weight: TensorLike,
    bias: TensorLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Array | Tensor:
    """2-D convolution (cross-correlation) over an NCHW batch or a single CHW image.

    Args follow ``torch.nn.functional.conv2d``: ``weight`` is ``(out_channels, in_channels/groups,
    kH, kW)``, ``bias`` is ``(out_channels,)`` or None, ``stride``/``dilation`` are ints or pairs,
    ``padding`` is an int, a pair, ``'valid'``, ``'same'`` or a 4-tuple ``(top, bottom, left, right)``
    (asymmetric, as ONNX's SAME_UPPER produces). Returns an ndarray for ndarray inputs,
    a recorded Tensor if any input is a Tensor.

    Casting: float32 in -> float32 out; float64 anywhere -> float64; other real dtypes (ints, bool,
    float16) compute in float32. Non-contiguous inputs are copied to contiguous ones.
    """
    return _conv2d_entry("conv2d", input, weight, bias, stride, padding, dilation, groups, relu=False)


@overload
def conv2d_relu(
    input: Tensor,
    weight: TensorLike,
    bias: TensorLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor: ...
@overload
def conv2d_relu(
    input: ArrayLike,
    weight: Tensor,
    bias: TensorLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor: ...
@overload
def conv2d_relu(
    input: ArrayLike,
    weight: ArrayLike,
    bias: Tensor,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor: ...
@overload
def conv2d_relu(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Array: ...
def conv2d_relu(
    input: TensorLike,
    weight: TensorLike,
    bias: TensorLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Array | Tensor:
    """``relu(conv2d(...))`` fused in one kernel pass (same arguments as :func:`conv2d`)."""
    return _conv2d_entry("conv2d", input, weight, bias, stride, padding, dilation, groups, relu=True)


def _conv2d_entry(
    op: str,
    input: Any,
    weight: Any,
    bias: Any,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    groups: int,
    relu: bool,
) -> Any:
    if _any_tensor(input, weight, bias):
        return _ag.conv2d(input, weight, bias, stride, padding, dilation, groups, relu=relu)
    return _conv2d_array(op, input, weight, bias, stride, padding, dilation, groups, relu)
