"""adaptive_avg_pool2d (any output size, PyTorch's bins) and global_avg_pool2d.

Output cell ``i`` of a dimension of size ``L`` pooled to ``O`` averages input ``floor(i L / O)``
to ``ceil((i + 1) L / O) - 1``, as torch does. The bins are rectangles, so the average is
separable: ``out = A_h @ x @ A_w.T`` with ``A`` an (O, L) matrix of 1/bin-size weights, and the
gradient is ``A_h.T @ g @ A_w``. The common cases take a faster path: output 1x1 (global
average pooling, a mean) and sizes that divide evenly (a reshape and a mean).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..autograd import ops as _ops
from .._typing import _is_tensor
from .._utils import _as_float
from .._ndarray.adaptive import (  # noqa: F401  (NumPy-level helpers, re-exported under their old names)
    _adaptive_backward,
    _adaptive_forward,
    _bins,
    _output_size,
)

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor

__all__ = ["adaptive_avg_pool2d", "global_avg_pool2d"]


def _ag() -> Any:
    return _ops


def adaptive_avg_pool2d(input: ArrayOrTensor, output_size: int | tuple[int | None, int | None]) -> ArrayOrTensor:
    """Average pooling to a fixed ``output_size`` (int, pair, or a pair with None = keep that
    dimension) for any input size (``torch.nn.functional.adaptive_avg_pool2d``). NCHW or CHW."""
    op = "adaptive_avg_pool2d"
    oh, ow = _output_size(op, output_size, input.shape if _is_tensor(input) else np.shape(input))
    if _is_tensor(input):
        return _ag().AdaptiveAvgPool2d.apply(input, output_size=(oh, ow))
    (x,) = _as_float(op, input=input)
    return _adaptive_forward(x, oh, ow)


def global_avg_pool2d(input: ArrayOrTensor, keepdim: bool = True) -> ArrayOrTensor:
    """The mean over H and W: ``(N, C, H, W) -> (N, C, 1, 1)`` (``(N, C)`` with ``keepdim=False``);
    what ``adaptive_avg_pool2d(input, 1)`` computes, the transfer-learning feature vector."""
    out = adaptive_avg_pool2d(input, 1)
    if keepdim:
        return out
    return out.reshape(out.shape[:-2])
