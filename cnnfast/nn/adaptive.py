"""``AdaptiveAvgPool2d``: average pooling to a fixed output size (global pooling with size 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import functional as F
from .module import Module

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor

__all__ = ["AdaptiveAvgPool2d"]


class AdaptiveAvgPool2d(Module):
    """Average pooling to ``output_size`` (int, pair, or pair with None = keep that dimension)
    for any input size, with torch's bins (``torch.nn.AdaptiveAvgPool2d``). ``AdaptiveAvgPool2d(1)``
    is global average pooling, the head of ResNet, MobileNet, EfficientNet and GoogLeNet."""

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        from ..functional.adaptive import _output_size

        _output_size("AdaptiveAvgPool2d", output_size, (1, 1, 1, 1))  # validate the values now
        self.output_size = output_size

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
