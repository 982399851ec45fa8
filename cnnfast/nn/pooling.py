"""``MaxPool2d`` and ``AvgPool2d``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import functional as F
from .module import Module

if TYPE_CHECKING:
    from .._typing import Array, ArrayOrTensor, IntPair, Padding

__all__ = ["MaxPool2d", "AvgPool2d"]


class MaxPool2d(Module):
    """2-D max pooling (``torch.nn.MaxPool2d``); ``stride`` defaults to ``kernel_size``.

    Arguments are validated here, at construction, with the same checks the kernel applies.
    """

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: Padding = 0,
        dilation: IntPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        # Validate now rather than at the first forward: a 1x1 dummy input is never too small
        # for these checks to run, and any error names the bad argument.
        from ..functional.pooling import _pool_args

        four = isinstance(padding, (tuple, list)) and len(padding) == 4  # (top, bottom, left, right)
        if four:
            from ..functional.conv import _four_pads

            padding = _four_pads("MaxPool2d", padding)
        k, st, p, d = _pool_args("MaxPool2d", kernel_size, stride, 0 if four else padding, dilation)
        if four:
            p = (max(padding[:2]), max(padding[2:]))  # type: ignore[index,assignment]  # the 4-tuple of _four_pads
        for name, v in (("kernel_size", k), ("stride", st), ("dilation", d)):
            if min(v) <= 0:
                raise ValueError(f"MaxPool2d: {name} must be positive, got {v}")
        if min(p) < 0 or any(p[i] > (d[i] * (k[i] - 1) + 1) // 2 for i in range(2)):
            raise ValueError(
                f"MaxPool2d: pad should be non-negative and at most half of effective kernel size, "
                f"but got padding={padding}, kernel_size={kernel_size}, dilation={dilation}"
            )
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.dilation = dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor | tuple[ArrayOrTensor, Array]:
        return F.max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """2-D average pooling (``torch.nn.AvgPool2d``); ``stride`` defaults to ``kernel_size``."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: Padding = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        from ..functional.misc import _avg_pool_args

        if isinstance(padding, (tuple, list)) and len(padding) == 4:  # (top, bottom, left, right)
            from ..functional.conv import _four_pads

            padding = _four_pads("AvgPool2d", padding)
            _avg_pool_args("AvgPool2d", kernel_size, stride, (max(padding[:2]), max(padding[2:])))  # type: ignore[index]  # the 4-tuple of _four_pads
        else:
            _avg_pool_args("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        if not self.count_include_pad:
            s += ", count_include_pad=False"
        if self.divisor_override is not None:
            s += f", divisor_override={self.divisor_override}"
        return s
