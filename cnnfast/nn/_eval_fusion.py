"""Inference on ndarrays: Conv2d -> eval BatchNorm2d -> activation in one conv call where possible.

Sequential.forward (nn/container.py) and the attribute-call blocks of cnnfast.models use this; it
imports no container, so the layers point one way (container -> here; fusion.py re-exports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import weakref

import numpy as np

from .. import _core
from .._ndarray.misc import _leaky_relu
from .._ndarray.pointwise import _gelu, _hardsigmoid, _hardswish, _relu6, _silu
from ..autograd.tensor import Tensor
from .activation import LeakyReLU, ReLU
from .conv import Conv2d
from .linear import Identity
from .module import _structure_epoch
from .normalization import BatchNorm2d
from .pointwise import GELU, Hardsigmoid, Hardswish, ReLU6, SiLU

if TYPE_CHECKING:
    from .module import Module

# ------------------------------------------------------------------------------------------------
# Inference on ndarrays: Conv2d -> eval BatchNorm2d -> activation in one conv call where possible.
# Sequential.forward calls conv_block_eval for a Conv2d child given an ndarray (nothing recorded).


# the activation modules conv_bn_act_forward applies, by type (looked up on every block)
_ACTS: dict[type, str] = {
    ReLU: "relu",
    ReLU6: "relu6",
    Hardswish: "hardswish",
    Hardsigmoid: "hardsigmoid",
    SiLU: "silu",
    GELU: "gelu",  # approximate='none' only (_act_of)
    LeakyReLU: "leaky",  # its slope: _act_params
}
# each activation as _core.conv_bn_act_forward's (act, (a, b, lo, hi)); float64 SiLU runs in NumPy
# after it (the C++ kernel's float64 SiLU is scalar, NumPy's exp is not: _ndarray/pointwise._silu)
_FUSED_ACTS: dict[str | None, tuple[str, tuple[float, ...]]] = {
    None: ("none", ()),
    "relu": ("relu", ()),
    "relu6": ("clamp", (1.0, 0.0, 0.0, 6.0)),
    "hardswish": ("hardswish", (1 / 6, 0.5, 0.0, 1.0)),
    "hardsigmoid": ("clamp", (1 / 6, 0.5, 0.0, 1.0)),
    "silu": ("silu", ()),
    "gelu": ("gelu", ()),
    "leaky": ("leaky", (0.01,)),  # (the module's negative_slope replaces it: _act_params)
}


def _act_params(act: str | None, m: Any) -> tuple[str, tuple[float, ...]]:
    """``_FUSED_ACTS[act]`` with module ``m``'s own constants (LeakyReLU's slope)."""
    if act == "leaky":
        return "leaky", (float(m.negative_slope),)
    return _FUSED_ACTS[act]


def _act_of(m: Any) -> str | None:
    """The fused activation name of module ``m`` (None if it is not one, or has hooks)."""
    act = _ACTS.get(type(m))
    if act is None or m._forward_hooks or (act == "gelu" and m.approximate != "none"):
        return None
    return act


def _bn_tuple(bn: Any) -> tuple[Any, ...] | None:
    """An eval BatchNorm2d as the C++ fused steps take it: (running_mean, running_var, weight or None,
    bias or None, eps); None for no BatchNorm."""
    if bn is None:
        return None
    return (
        bn.running_mean,
        bn.running_var,
        None if bn.weight is None else bn.weight.data,
        None if bn.bias is None else bn.bias.data,
        float(bn.eps),
    )


def _eval_bn(m: Any, conv: Any) -> bool:
    """``m`` is an eval-mode BatchNorm2d with running statistics, no hooks, for ``conv``'s output."""
    return (
        type(m) is BatchNorm2d
        and not m.training
        and m.running_mean is not None
        and not m._forward_hooks
        and m.num_features == conv.out_channels
    )


def _skip_identity(mods: Sequence[Module], j: int) -> int:
    """The first index from ``j`` on that is not an Identity without hooks (a no-op: what
    ``fold_batchnorm`` leaves where a BatchNorm2d was)."""
    while j < len(mods) and type(mods[j]) is Identity and not mods[j]._forward_hooks:
        j += 1
    return j


def conv_block_eval(mods: Sequence[Module], i: int, x: Any, residual: Any = None) -> tuple[Any, int]:
    """Run ``mods[i]`` (a Conv2d) on the ndarray ``x`` together with an eval-mode BatchNorm2d and an
    activation (ReLU, ReLU6, Hardswish, Hardsigmoid, SiLU) that directly follow it; returns
    ``(output, number of modules consumed)``. Same results as running them one by one, up to
    float rounding.

    The BatchNorm is folded into the conv's weights on every call (``W * s``, ``(b - mean) * s +
    beta``, in the weights' dtype) when the weights are no larger than the output, which saves a
    pass over the output for a pass over the weights; otherwise it is applied in place to the
    conv's output. Nothing is cached, so weights changed in place (an optimizer step, a
    load_state_dict) are always used. ReLU runs in the conv kernel's epilogue; the other
    activations run in place on the conv's output (C++ kernels). A 4-D float32/float64 ndarray
    with a symmetric padding takes all of it in one C++ call (``_core.conv_bn_act_forward``, which
    also runs a 1x1 conv on a 1x1 plane as matrix-vector products); other inputs go through
    :func:`cnnfast.functional.conv2d` (its casting and checks) and the steps below.
    """
    conv = mods[i]
    bn, act = None, None
    # (Identity modules without hooks between them are passed over: fold_batchnorm's leftovers)
    j = _skip_identity(mods, i + 1)
    nxt = mods[j] if j < len(mods) else None
    if _eval_bn(nxt, conv):
        bn = nxt
        j = _skip_identity(mods, j + 1)
        nxt = mods[j] if j < len(mods) else None
    act = None if nxt is None else _act_of(nxt)
    if act is not None:
        j += 1
    n_used = j - i
    w = conv.weight.data
    b = None if conv.bias is None else conv.bias.data
    pad = conv.padding
    if (
        type(x) is np.ndarray
        and x.ndim == 4
        and x.dtype == w.dtype
        and w.dtype.type in (np.float32, np.float64)
        and (b is None or b.dtype == w.dtype)
        and type(pad) is tuple
        and len(pad) == 2
        and x.shape[1] == w.shape[1] * conv.groups
        and (residual is None or (type(residual) is np.ndarray and residual.dtype == w.dtype))
    ):
        # the whole block in one C++ call (conv -> BatchNorm folded or per channel [-> + residual]
        # -> activation)
        kind, params = _act_params(act, nxt)
        if act == "silu" and w.dtype != np.float32:
            kind = "none"
        bnt = _bn_tuple(bn)
        y = _core.conv_bn_act_forward(
            x, w, b, conv.stride, pad, conv.dilation, conv.groups, False, bnt, kind, *params, residual=residual
        )
        if act == "silu" and kind == "none":
            _silu(y, out=y)
        return y, n_used
    from .. import functional as F

    fold = False
    if bn is not None:
        rv, rm = bn.running_var, bn.running_mean
        assert rv is not None and rm is not None  # bn was picked for tracking running stats
        dt = w.dtype.type
        scale = dt(1) / np.sqrt(rv.astype(w.dtype, copy=False) + dt(bn.eps))
        if bn.weight is not None:
            scale = scale * bn.weight.data.astype(w.dtype, copy=False)
        shift = -rm.astype(w.dtype, copy=False) * scale
        if bn.bias is not None:
            shift = shift + bn.bias.data.astype(w.dtype, copy=False)
        xs = np.shape(x)
        out_est = (
            (xs[0] if len(xs) == 4 else 1)
            * w.shape[0]
            * max(xs[-2] // conv.stride[0], 1)
            * max(xs[-1] // conv.stride[1], 1)
        )
        fold = w.size <= out_est
        if fold:
            w = w * scale.reshape(-1, 1, 1, 1)
            b = shift if b is None else b.astype(w.dtype, copy=False) * scale + shift
    relu_in_kernel = act in ("relu", "relu6") and (bn is None or fold) and residual is None
    fn = F.conv2d_relu if relu_in_kernel else F.conv2d
    y = fn(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)
    if bn is not None and not fold:
        shp = (-1, 1, 1) if y.ndim == 3 else (1, -1, 1, 1)
        np.multiply(y, scale.astype(y.dtype, copy=False).reshape(shp), out=y)
        np.add(y, shift.astype(y.dtype, copy=False).reshape(shp), out=y)
    if residual is not None:
        y = y + residual
    if act == "relu" and not relu_in_kernel:
        F.relu_(y)
    elif act == "relu6":
        _relu6(y, out=y)  # one in-place pass (the lower clip is already done when relu_in_kernel)
    elif act == "hardswish":
        y = _hardswish(y, out=y)
    elif act == "hardsigmoid":
        y = _hardsigmoid(y, out=y)
    elif act == "silu":
        y = _silu(y, out=y)
    elif act == "gelu":
        y = _gelu(y, out=y)
    elif act == "leaky":
        assert nxt is not None  # (act came from it)
        y = _leaky_relu(y, nxt.negative_slope)
    return y, n_used


# ------------------------------------------------------------------------------------------------
# Depthwise-separable chains: [1x1 expand] -> depthwise -> [1x1 project], each Conv2d with an
# eval BatchNorm2d and an activation, in one C++ pass (_core.dw_chain_forward: the expanded tensor
# stays in cache instead of going to memory and back). Sequential.forward tries it at a Conv2d or a
# plain Sequential (Conv2dNormActivation) child given an ndarray.

_CHAIN_ACTS = {"relu", "relu6", "hardswish", "hardsigmoid"}


def _leaves(m: Module, out: list[Module], seq: type[Module]) -> bool:
    """Append ``m``'s modules as Sequential.forward would run them (children of class ``seq``, the
    Sequential -- passed in, so this module imports no container -- flattened where they keep its
    forward); False if one of them has forward hooks."""
    if m._forward_hooks:
        return False
    if type(m) is Identity:  # a no-op (fold_batchnorm's leftover): not a leaf
        return True
    if isinstance(m, seq) and type(m).forward is seq.forward:
        for c in m._modules.values():
            if c is not None and not _leaves(c, out, seq):
                return False
        return True
    out.append(m)
    return True


def _chain_match(leaves: list[Module], j: int) -> tuple[Module, Module | None, str | None, int] | None:
    """The stage at ``leaves[j]`` (a Conv2d, an eval BatchNorm2d, an activation the kernel applies)
    as ``(conv, bn or None, act or None, leaves used)``, or None."""
    conv = leaves[j] if j < len(leaves) else None
    if type(conv) is not Conv2d or conv.dilation != (1, 1) or type(conv.padding) is not tuple:
        return None
    k, bn, act = j + 1, None, None
    nxt = leaves[k] if k < len(leaves) else None
    if (
        type(nxt) is BatchNorm2d
        and not nxt.training
        and nxt.running_mean is not None
        and nxt.num_features == conv.out_channels
    ):
        bn, k = nxt, k + 1
        nxt = leaves[k] if k < len(leaves) else None
    if nxt is not None:
        a = _ACTS.get(type(nxt))
        if a in _CHAIN_ACTS:
            act, k = a, k + 1
    return conv, bn, act, k - j


def _chain_stage(conv: Module, bn: Module | None, act: str | None) -> tuple[Any, ...]:
    """The dw_chain_forward stage tuple of a Conv2d [-> eval BatchNorm2d] [-> activation]."""
    kind, params = _FUSED_ACTS[act]
    bnt = _bn_tuple(bn)
    b = None if conv.bias is None else conv.bias.data
    return (conv.weight.data, b, bnt, kind, *((1.0, 0.0, 0.0, 0.0) if not params else params))


def _is_pointwise(c: Module) -> bool:
    return c.kernel_size == (1, 1) and c.stride == (1, 1) and c.padding == (0, 0) and c.groups == 1


def _is_depthwise(c: Module) -> bool:
    k = c.kernel_size
    return (
        c.groups == c.in_channels == c.out_channels
        and k[0] == k[1]
        and c.stride[0] == c.stride[1]
        and len(c.padding) == 2
        and c.padding[0] == c.padding[1]
    )


# Per Sequential (weakly held): the structure counter its plans were made under, the structural
# plan found at each child index (or None: no chain starts there), and the inputs (index, shape,
# dtype, threads) the kernel declined, with the function that declined. Rebuilt when any module
# changes (nn/module.py's counter); weights are read on every call.
_CHAIN_PLANS: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
_NO_PLAN = object()


def _chain_plan(mods: Sequence[Module], i: int, seq: type[Module]) -> tuple[Any, ...] | None:
    """The chain starting at ``mods[i]`` as ``(stages, d, has_pr, modules used)`` (stages: ``(conv,
    bn or None, act or None)`` each, ``d``: the depthwise stage's index), or None; structure only."""
    leaves: list[Module] = []
    # a chain starts with a 1x1 or a depthwise Conv2d: reject anything else before looking further
    if not _leaves(mods[i], leaves, seq) or not leaves:
        return None
    c = leaves[0]
    if type(c) is not Conv2d or not (_is_pointwise(c) or _is_depthwise(c)):
        return None
    ends: list[int] = [len(leaves)]  # leaves[:ends[t]] are the leaves of mods[i : i + t + 1]
    for t in range(i + 1, min(len(mods), i + 9)):
        if len(leaves) >= 9:
            break
        if not _leaves(mods[t], leaves, seq):
            break
        ends.append(len(leaves))
    stages: list[tuple[Module, Module | None, str | None, int]] = []
    j = 0
    while len(stages) < 3:
        st = _chain_match(leaves, j)
        if st is None:
            break
        stages.append(st)
        j += st[3]
    # [pw] dw [pw]: find the depthwise stage (first or second)
    d = next((t for t in range(min(2, len(stages))) if _is_depthwise(stages[t][0])), None)
    if d is None or (d == 1 and not _is_pointwise(stages[0][0])):
        return None
    has_pr = d + 1 < len(stages) and _is_pointwise(stages[d + 1][0])
    used = stages[: d + 2] if has_pr else stages[: d + 1]
    if len(used) < 2:
        return None
    nleaves = sum(st[3] for st in used)
    if nleaves not in ends:  # the chain must end at a module boundary of mods
        if has_pr and sum(st[3] for st in used[:-1]) in ends and len(used) > 2:
            used = used[:-1]
            has_pr = False
            nleaves = sum(st[3] for st in used)
        else:
            return None
    return tuple((cv, bn, act) for cv, bn, act, _n in used), d, has_pr, ends.index(nleaves) + 1


def dw_chain_eval(
    mods: Sequence[Module], i: int, x: Any, seq: type[Module], owner: Module | None = None
) -> tuple[Any, int] | None:
    """Run ``mods[i:]`` from ``mods[i]`` on as the one-pass chain if they start with [1x1 expand]
    -> depthwise -> [1x1 project] (at least two of the three stages; each Conv2d [-> eval
    BatchNorm2d] [-> ReLU / ReLU6 / Hardswish / Hardsigmoid], no hooks, plain Sequential children
    such as Conv2dNormActivation looked into; ``seq``: the Sequential class) covering whole modules
    of ``mods``; returns ``(output, number of modules consumed)``, or None (the caller runs the
    modules as usual) where the pattern does not match or the kernel declines (small planes, where
    the layer-wise kernels are as fast).
    ``owner``: the Sequential whose children ``mods`` are; given, the pattern found at ``i`` and the
    inputs the kernel declined are remembered for it until any module changes (attributes,
    children, hooks, mode: nn/module.py's structure counter), which at batch 1 saved most of the
    Python time of MobileNetV2's forward. Same results as the modules one by one, up to float
    rounding."""
    if type(x) is not np.ndarray or x.ndim != 4 or x.dtype.type not in (np.float32, np.float64):
        return None
    if owner is None:
        plan = _chain_plan(mods, i, seq)
        declined = None
    else:
        ent = _CHAIN_PLANS.get(owner)
        epoch = _structure_epoch[0]
        if ent is None or ent[0] != epoch:
            ent = _CHAIN_PLANS[owner] = [epoch, {}, {}]
        plans, declined = ent[1], ent[2]
        plan = plans.get(i, _NO_PLAN)
        if plan is _NO_PLAN:
            plan = plans[i] = _chain_plan(mods, i, seq)
    if plan is None:
        return None
    used, d, has_pr, nmods = plan
    dt = x.dtype
    chain_fn = _core.dw_chain_forward
    if declined is not None:
        dkey = (i, x.shape, dt, _core.get_num_threads())
        if declined.get(dkey) is chain_fn:  # (the function that declined: it may be replaced, as in tests)
            return None
    if x.shape[1] != used[0][0].in_channels or any(st[0].weight.data.dtype != dt for st in used):
        return None
    dwc = used[d][0]
    tuples = [_chain_stage(c, bn, act) for c, bn, act in used]
    y = chain_fn(
        x, tuples[0] if d == 1 else None, tuples[d], tuples[d + 1] if has_pr else None, dwc.stride, dwc.padding
    )
    if y is None:
        if declined is not None:
            declined[dkey] = chain_fn
        return None
    return y, nmods


def conv_bn_act(conv: Module, bn: Module | None, act: Module | None, x: Any, residual: Any = None) -> Any:
    """``act(bn(conv(x)) [+ residual])`` for blocks written as attribute calls (ResNet, GoogLeNet): on
    an ndarray with no forward hooks on the three, one fused call (:func:`conv_block_eval`; a ResNet
    block's shortcut added in the same C++ pass as the activation); otherwise the modules one by one
    (a Tensor is recorded as usual). ``bn``, ``act`` and ``residual`` may be None."""
    if type(bn) is Identity and not bn._forward_hooks:  # (a BatchNorm2d fold_batchnorm folded)
        bn = None
    mods = [m for m in (conv, bn, act) if m is not None]
    if (
        isinstance(x, Tensor)
        or isinstance(residual, Tensor)
        or any(m._forward_hooks for m in mods)
        or (residual is not None and bn is not None and not _eval_bn(bn, conv))  # (the sum must follow bn)
    ):
        for m in mods if residual is None or act is None else mods[:-1]:
            x = m(x)
        if residual is not None:
            x = x + residual
            if act is not None:
                x = act(x)
        return x
    y, used = conv_block_eval(mods, 0, x, residual)
    for m in mods[used:]:
        y = m(y)
    return y
