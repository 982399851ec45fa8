"""``BatchNorm2d`` and ``LocalResponseNorm`` (torch.nn names, arguments, defaults and state-dict keys)."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor
from .module import Module, Parameter

if TYPE_CHECKING:
    from .._typing import Array, ArrayOrTensor, DTypeLike

__all__ = ["BatchNorm2d", "LocalResponseNorm"]


class BatchNorm2d(Module):
    """Batch normalisation over the channels of an NCHW batch (``torch.nn.BatchNorm2d``).

    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros; left out with ``bias=False``, a
    keyword as in torch 2.13) when ``affine``; buffers
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (int64 0) when
    ``track_running_stats``, saved in ``state_dict`` under torch's names.

    Training mode normalises with the batch's statistics and updates the running ones:
    ``running = (1 - momentum) * running + momentum * batch`` (the variance unbiased), or a
    cumulative average when ``momentum=None``. Eval mode normalises with the running statistics
    (unless ``track_running_stats=False``, which always uses the batch's). For inference, fold it
    into the preceding conv with :func:`cnnfast.nn.fuse_conv_bn_eval` / :func:`cnnfast.nn.fold_batchnorm`.
    """

    num_features: int
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool
    # None when affine=False; typed for the affine case (as torch's annotations are).
    weight: Parameter
    bias: Parameter
    running_mean: Array | None
    running_var: Array | None
    num_batches_tracked: Array | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: DTypeLike = np.float32,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        op = "BatchNorm2d"
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features <= 0:
            raise ValueError(f"{op}: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)):
            raise TypeError(f"{op}: momentum must be a number or None, got {momentum!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{op}: dtype must be floating point, got {dtype}")
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:  # then the three buffers are arrays
            self.running_mean[...] = 0  # type: ignore[index]
            self.running_var[...] = 1  # type: ignore[index]
            self.num_batches_tracked[...] = 0  # type: ignore[index]

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            if self.bias is not None:
                self.bias.data[...] = 0

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        nd = input.ndim if isinstance(input, Tensor) else np.ndim(input)
        if nd != 4:
            raise ValueError(f"BatchNorm2d: expected 4D input (got {nd}D input)")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked += 1
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        w: Any = self.weight
        b: Any = self.bias
        if not isinstance(input, Tensor):
            w, b = (None if w is None else w.data), (None if b is None else b.data)
        return F.batch_norm(
            input,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            w,
            b,
            use_batch,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class LocalResponseNorm(Module):
    """Local response normalisation across channels (``torch.nn.LocalResponseNorm``)."""

    size: int
    alpha: float
    beta: float
    k: float

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        self.size = int(size)
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
