"""Folding an eval-mode BatchNorm2d into the convolution before it (inference only).

``bn(conv(x)) = gamma * (W*x + b - mean) / sqrt(var + eps) + beta`` is itself a convolution, with
``W' = W * s`` (``s = gamma / sqrt(var + eps)`` per output channel) and ``b' = (b - mean) * s + beta``,
so an inference network runs one kernel per conv and no BatchNorm pass at all. The names follow
``torch.nn.utils.fusion``.
"""
from __future__ import annotations

import numpy as np

from .conv import Conv2d
from .linear import Identity
from .module import Module, Parameter
from .normalization import BatchNorm2d

__all__ = ["fuse_conv_bn_weights", "fuse_conv_bn_eval", "fold_batchnorm", "conv_block_eval", "conv_bn_act"]


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """The folded ``(weight, bias)`` arrays (in ``conv_w``'s dtype; computed in float64).

    ``conv_b``, ``bn_w`` and ``bn_b`` may be None (no bias, ``affine=False``)."""
    conv_w = np.asarray(conv_w)
    c = conv_w.shape[0]
    for name, a in (("running_mean", bn_rm), ("running_var", bn_rv), ("conv bias", conv_b), ("bn weight", bn_w),
                    ("bn bias", bn_b)):
        if a is not None and np.shape(a) != (c,):
            raise ValueError(f"fuse_conv_bn_weights: {name} of size {np.shape(a)} does not match the conv's "
                             f"{c} output channels (weight of size {conv_w.shape})")
    f64 = lambda a, fill: np.full(c, fill, np.float64) if a is None else np.asarray(a, np.float64)  # noqa: E731
    scale = f64(bn_w, 1.0) / np.sqrt(f64(bn_rv, 1.0) + bn_eps)
    w = conv_w.astype(np.float64) * scale.reshape((c,) + (1,) * (conv_w.ndim - 1))
    b = (f64(conv_b, 0.0) - f64(bn_rm, 0.0)) * scale + f64(bn_b, 0.0)
    return w.astype(conv_w.dtype), b.astype(conv_w.dtype)


def fuse_conv_bn_eval(conv, bn):
    """A new Conv2d computing ``bn(conv(x))`` of the eval-mode ``bn`` (which must track running stats)."""
    if not isinstance(conv, Conv2d) or not isinstance(bn, BatchNorm2d):
        raise TypeError(f"fuse_conv_bn_eval: expected (Conv2d, BatchNorm2d), got ({type(conv).__name__}, "
                        f"{type(bn).__name__})")
    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn_eval: fusion is only for eval mode (call .eval() first): in training mode "
                         "BatchNorm uses the batch's statistics, which no fixed conv can reproduce")
    if bn.running_mean is None:
        raise ValueError("fuse_conv_bn_eval: the BatchNorm2d does not track running stats (track_running_stats=False)")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"fuse_conv_bn_eval: BatchNorm2d({bn.num_features}) does not follow a conv with "
                         f"{conv.out_channels} output channels")
    w, b = fuse_conv_bn_weights(conv.weight.data, None if conv.bias is None else conv.bias.data, bn.running_mean,
                                bn.running_var, bn.eps, None if bn.weight is None else bn.weight.data,
                                None if bn.bias is None else bn.bias.data)
    fused = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                   conv.groups, bias=True, dtype=w.dtype)
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
            pairs += [(a, b) for a, b in zip(names, names[1:])
                      if type(m._modules[a]) is Conv2d and type(m._modules[b]) is BatchNorm2d]
        for cname, bname in pairs:
            conv, bn = m._modules.get(cname), m._modules.get(bname)
            if type(conv) is Conv2d and type(bn) is BatchNorm2d:
                setattr(m, cname, fuse_conv_bn_eval(conv, bn))
                setattr(m, bname, Identity())
    return model


# ------------------------------------------------------------------------------------------------
# Inference on ndarrays: Conv2d -> eval BatchNorm2d -> activation in one conv call where possible.
# Sequential.forward calls conv_block_eval for a Conv2d child given an ndarray (nothing recorded).


def _act_kinds():
    from .activation import ReLU
    from .pointwise import Hardsigmoid, Hardswish, ReLU6, SiLU

    return {ReLU: "relu", ReLU6: "relu6", Hardswish: "hardswish", Hardsigmoid: "hardsigmoid", SiLU: "silu"}


_ACTS = {}


def conv_block_eval(mods, i, x):
    """Run ``mods[i]`` (a Conv2d) on the ndarray ``x`` together with an eval-mode BatchNorm2d and an
    activation (ReLU, ReLU6, Hardswish, Hardsigmoid, SiLU) that directly follow it; returns
    ``(output, number of modules consumed)``. Same results as running them one by one, up to
    float rounding.

    The BatchNorm is folded into the conv's weights on every call (``W * s``, ``(b - mean) * s +
    beta``, in the weights' dtype) when the weights are no larger than the output, which saves a
    pass over the output for a pass over the weights; otherwise it is applied in place to the
    conv's output. Nothing is cached, so weights changed in place (an optimizer step, a
    load_state_dict) are always used. ReLU and ReLU6 run in the conv kernel's epilogue (ReLU6's
    upper clip is one in-place pass); the other activations run on the conv's output.
    """
    from .. import functional as F
    from ..functional import pointwise as P

    if not _ACTS:
        _ACTS.update(_act_kinds())
    conv = mods[i]
    n_used, bn, act = 1, None, None
    nxt = mods[i + 1] if i + 1 < len(mods) else None
    if (type(nxt) is BatchNorm2d and not nxt.training and nxt.running_mean is not None and not nxt._forward_hooks
            and nxt.num_features == conv.out_channels):
        bn, n_used = nxt, 2
        nxt = mods[i + 2] if i + 2 < len(mods) else None
    if nxt is not None and type(nxt) in _ACTS and not nxt._forward_hooks:
        act, n_used = _ACTS[type(nxt)], n_used + 1
    w = conv.weight.data
    b = None if conv.bias is None else conv.bias.data
    fold = False
    if bn is not None:
        dt = w.dtype.type
        scale = dt(1) / np.sqrt(bn.running_var.astype(w.dtype, copy=False) + dt(bn.eps))
        if bn.weight is not None:
            scale = scale * bn.weight.data.astype(w.dtype, copy=False)
        shift = -bn.running_mean.astype(w.dtype, copy=False) * scale
        if bn.bias is not None:
            shift = shift + bn.bias.data.astype(w.dtype, copy=False)
        xs = np.shape(x)
        out_est = (xs[0] if len(xs) == 4 else 1) * w.shape[0] * max(xs[-2] // conv.stride[0], 1) \
            * max(xs[-1] // conv.stride[1], 1)
        fold = w.size <= out_est
        if fold:
            w = w * scale.reshape(-1, 1, 1, 1)
            b = shift if b is None else b.astype(w.dtype, copy=False) * scale + shift
    relu_in_kernel = act in ("relu", "relu6") and (bn is None or fold)
    fn = F.conv2d_relu if relu_in_kernel else F.conv2d
    y = fn(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)
    if bn is not None and not fold:
        shp = (-1, 1, 1) if y.ndim == 3 else (1, -1, 1, 1)
        np.multiply(y, scale.astype(y.dtype, copy=False).reshape(shp), out=y)
        np.add(y, shift.astype(y.dtype, copy=False).reshape(shp), out=y)
    if act == "relu" and not relu_in_kernel:
        F.relu_(y)
    elif act == "relu6":
        if not relu_in_kernel:
            np.maximum(y, y.dtype.type(0), out=y)
        np.minimum(y, y.dtype.type(6), out=y)
    elif act == "hardswish":
        y = P._hardswish(y)
    elif act == "hardsigmoid":
        y = P._hardsigmoid(y)
    elif act == "silu":
        y = P._silu(y)
    return y, n_used


def conv_bn_act(conv, bn, act, x):
    """``act(bn(conv(x)))`` for blocks written as attribute calls (ResNet, GoogLeNet): on an ndarray
    with no forward hooks on the three, one fused call (:func:`conv_block_eval`); otherwise the
    modules one by one (a Tensor is recorded as usual). ``bn`` and ``act`` may be None."""
    from ..autograd.tensor import Tensor

    mods = [m for m in (conv, bn, act) if m is not None]
    if isinstance(x, Tensor) or any(m._forward_hooks for m in mods):
        for m in mods:
            x = m(x)
        return x
    y, used = conv_block_eval(mods, 0, x)
    for m in mods[used:]:
        y = m(y)
    return y
