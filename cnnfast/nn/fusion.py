"""Folding an eval-mode BatchNorm2d into the convolution before it (inference only).

``bn(conv(x)) = gamma * (W*x + b - mean) / sqrt(var + eps) + beta`` is itself a convolution, with
``W' = W * s`` (``s = gamma / sqrt(var + eps)`` per output channel) and ``b' = (b - mean) * s + beta``,
so an inference network runs one kernel per conv and no BatchNorm pass at all. The names follow
``torch.nn.utils.fusion``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._eval_fusion import conv_bn_act, conv_block_eval  # noqa: F401  (the ndarray inference path)
from .conv import Conv2d
from .linear import Identity
from .module import Module, Parameter
from .normalization import BatchNorm2d

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike

__all__ = ["fuse_conv_bn_weights", "fuse_conv_bn_eval", "fold_batchnorm", "conv_block_eval", "conv_bn_act"]


def fuse_conv_bn_weights(
    conv_w: ArrayLike,
    conv_b: ArrayLike | None,
    bn_rm: ArrayLike | None,
    bn_rv: ArrayLike | None,
    bn_eps: float,
    bn_w: ArrayLike | None,
    bn_b: ArrayLike | None,
) -> tuple[Array, Array]:
    """The folded ``(weight, bias)`` arrays (in ``conv_w``'s dtype; computed in float64).

    ``conv_b``, ``bn_w`` and ``bn_b`` may be None (no bias, ``affine=False``)."""
    w0 = np.asarray(conv_w)
    c = w0.shape[0]
    for name, a in (
        ("running_mean", bn_rm),
        ("running_var", bn_rv),
        ("conv bias", conv_b),
        ("bn weight", bn_w),
        ("bn bias", bn_b),
    ):
        if a is not None and np.shape(a) != (c,):
            raise ValueError(
                f"fuse_conv_bn_weights: {name} of size {np.shape(a)} does not match the conv's "
                f"{c} output channels (weight of size {w0.shape})"
            )

    def f64(a: ArrayLike | None, fill: float) -> Array:
        return np.full(c, fill, np.float64) if a is None else np.asarray(a, np.float64)

    scale = f64(bn_w, 1.0) / np.sqrt(f64(bn_rv, 1.0) + bn_eps)
    w = w0.astype(np.float64) * scale.reshape((c,) + (1,) * (w0.ndim - 1))
    b = (f64(conv_b, 0.0) - f64(bn_rm, 0.0)) * scale + f64(bn_b, 0.0)
    return w.astype(w0.dtype), b.astype(w0.dtype)


def fuse_conv_bn_eval(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """A new Conv2d computing ``bn(conv(x))`` of the eval-mode ``bn`` (which must track running stats)."""
    if not isinstance(conv, Conv2d) or not isinstance(bn, BatchNorm2d):
        raise TypeError(
            f"fuse_conv_bn_eval: expected (Conv2d, BatchNorm2d), got ({type(conv).__name__}, " f"{type(bn).__name__})"
        )
    if conv.training or bn.training:
        raise ValueError(
            "fuse_conv_bn_eval: fusion is only for eval mode (call .eval() first): in training mode "
            "BatchNorm uses the batch's statistics, which no fixed conv can reproduce"
        )
    if bn.running_mean is None:
        raise ValueError("fuse_conv_bn_eval: the BatchNorm2d does not track running stats (track_running_stats=False)")
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"fuse_conv_bn_eval: BatchNorm2d({bn.num_features}) does not follow a conv with "
            f"{conv.out_channels} output channels"
        )
    w, b = fuse_conv_bn_weights(
        conv.weight.data,
        None if conv.bias is None else conv.bias.data,
        bn.running_mean,
        bn.running_var,
        bn.eps,
        None if bn.weight is None else bn.weight.data,
        None if bn.bias is None else bn.bias.data,
    )
    fused = Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        dtype=w.dtype,
    )
    fused.weight = Parameter(w, requires_grad=conv.weight.requires_grad)
    fused.bias = Parameter(b, requires_grad=conv.weight.requires_grad)
    fused.eval()
    return fused


def fold_batchnorm(model: Module) -> Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into it, in place; returns model.

    Pairs are found (1) in ``Sequential`` containers (a Conv2d child immediately followed by a
    BatchNorm2d child) and (2) in modules that declare ``_conv_bn_pairs = (("conv1", "bn1"), ...)``
    (the cnnfast.models blocks whose forward calls ``bn(conv(x))`` on attributes). The conv is
    replaced by the fused one and the BatchNorm2d by ``Identity``, so the state-dict keys of the
    BatchNorm layers disappear: fold a copy used for inference, not the model you train.
    """
    from .container import Sequential

    if model.training:
        raise ValueError("fold_batchnorm: call model.eval() first (folding uses the running statistics)")
    for m in list(model.modules()):
        pairs = list(getattr(m, "_conv_bn_pairs", ()))
        if isinstance(m, Sequential):
            names = [k for k, v in m._modules.items() if v is not None]
            pairs += [
                (a, b)
                for a, b in zip(names, names[1:])
                if type(m._modules[a]) is Conv2d and type(m._modules[b]) is BatchNorm2d
            ]
        for cname, bname in pairs:
            conv, bn = m._modules.get(cname), m._modules.get(bname)
            if type(conv) is Conv2d and type(bn) is BatchNorm2d:
                setattr(m, cname, fuse_conv_bn_eval(conv, bn))
                setattr(m, bname, Identity())
    return model
