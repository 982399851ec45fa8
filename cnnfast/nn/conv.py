"""``Conv2d``: a 2-D convolution layer over the conv2d kernels."""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import functional as F
from .._utils import _pair
from ..autograd.tensor import Tensor
from . import init
from .module import Module, Parameter

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor, DTypeLike, Generator, IntPair, Padding

__all__ = ["Conv2d"]


def _positive(op: str, name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


class Conv2d(Module):
    """2-D convolution (cross-correlation) of an NCHW batch or a CHW image (``torch.nn.Conv2d``).

    ``weight`` has shape ``(out_channels, in_channels // groups, kH, kW)`` and ``bias`` shape
    ``(out_channels,)``, both initialised as PyTorch does: ``kaiming_uniform_(a=sqrt(5))``, i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with ``fan_in = in_channels/groups * kH * kW``.
    Called on an ndarray it returns an ndarray; on a Tensor, a Tensor recorded for backward.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Padding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: DTypeLike = np.float32,
        generator: Generator = None,
    ) -> None:
        super().__init__()
        op = "Conv2d"
        self.in_channels = _positive(op, "in_channels", in_channels)
        self.out_channels = _positive(op, "out_channels", out_channels)
        self.groups = _positive(op, "groups", groups)
        if in_channels % groups:
            raise ValueError(
                f"{op}: in_channels must be divisible by groups (got in_channels={in_channels}, " f"groups={groups})"
            )
        if out_channels % groups:
            raise ValueError(
                f"{op}: out_channels must be divisible by groups (got out_channels={out_channels}, " f"groups={groups})"
            )
        self.kernel_size = _pair(kernel_size, "kernel_size", op)
        self.stride = _pair(stride, "stride", op)
        self.dilation = _pair(dilation, "dilation", op)
        for name in ("kernel_size", "stride", "dilation"):
            if min(getattr(self, name)) <= 0:
                raise ValueError(f"{op}: {name} must be positive, got {getattr(self, name)}")
        self.padding: str | tuple[int, ...]
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided convolutions (stride={self.stride})"
                )
            self.padding = padding
        elif isinstance(padding, (tuple, list)) and len(padding) == 4:  # (top, bottom, left, right)
            from ..functional.conv import _four_pads

            self.padding = _four_pads(op, padding)
        else:
            self.padding = _pair(padding, "padding", op)
            if min(self.padding) < 0:
                raise ValueError(f"{op}: padding must be non-negative, got {self.padding}")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{op}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.padding_mode = padding_mode
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator = None) -> None:
        """PyTorch's default initialisation (see the class docstring)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in = self.weight.data[0].size
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return self._conv(input, F.conv2d)

    def _conv(self, input: ArrayOrTensor, fn: Callable[..., Any]) -> ArrayOrTensor:
        w: Any = self.weight
        b: Any = self.bias
        if not isinstance(input, Tensor):  # ndarray in -> ndarray out, nothing recorded
            w, b = w.data, (None if b is None else b.data)
        return fn(input, w, b, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
