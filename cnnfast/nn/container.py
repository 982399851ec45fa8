"""``Sequential`` and ``ModuleList``."""

from __future__ import annotations

import collections
import numbers
from collections.abc import Iterable, Iterator
from typing import Any, overload

from numpy import ndarray as _ndarray

from .. import functional as _F
from ..autograd.grad_mode import is_grad_enabled as _grad_enabled
from ..autograd.tensor import Tensor as _Tensor
from ..functional.pooling import _pool_args
from .activation import ReLU as _ReLU
from .conv import Conv2d as _Conv2d
from ._eval_fusion import conv_block_eval, dw_chain_eval
from .module import Module, _structure_epoch
from .pooling import MaxPool2d as _MaxPool2d

__all__ = ["Sequential", "ModuleList"]


def _index(op: str, idx: int, n: int) -> int:
    if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
        raise TypeError(f"{op} indices must be integers or slices, not {type(idx).__name__}")
    if not -n <= idx < n:
        raise IndexError(f"{op} index {idx} is out of range for {n} modules")
    return idx % n


def _recording(input: object) -> bool:
    """True when a Tensor input is being recorded for backward (the fused conv+relu+pool node
    saves what backward needs; without recording the separate ndarray kernels are cheaper)."""
    return isinstance(input, _Tensor) and _grad_enabled()


def _plain_pool(m: Module) -> bool:
    """A MaxPool2d that the fused node can stand in for: no hooks, no indices returned, symmetric
    padding."""
    return (
        type(m) is _MaxPool2d
        and not m._forward_hooks
        and not m.return_indices
        and not (isinstance(m.padding, (tuple, list)) and len(m.padding) == 4)
    )


def _conv_relu_pool(conv: _Conv2d, pool: Module, input: _Tensor) -> _Tensor:
    """``pool(relu(conv(input)))`` recorded as one autograd node (see ops.Conv2dReLUMaxPool2d)."""
    from ..autograd import ops as _ag

    pool_args = _pool_args("max_pool2d", pool.kernel_size, pool.stride, pool.padding, pool.dilation) + (
        bool(pool.ceil_mode),
    )
    return _ag.conv2d_relu_max_pool2d(
        input, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups, pool_args
    )


class Sequential(Module):
    """Modules applied one after another: ``Sequential(conv, relu, ...)`` or
    ``Sequential(OrderedDict(name=module, ...))``. Supports indexing, slicing, len, iteration
    and append.

    A ``Conv2d`` directly followed by a ``ReLU`` runs as one fused conv2d+relu kernel call (the
    same result, one pass less over memory); while recording for backward, a ``MaxPool2d`` right
    after them joins the same autograd node, whose backward applies relu's mask to the pooled
    gradient. The fusions are skipped when any of the modules has forward hooks.
    Given an ndarray (nothing recorded), a ``Conv2d`` followed by an eval-mode ``BatchNorm2d``
    and/or an activation runs as one conv call with the BatchNorm folded into its weights and the
    activation applied to its output (see :func:`cnnfast.nn.fusion.conv_block_eval`).
    """

    def __init__(self, *modules: Module | collections.OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], collections.OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, mod in enumerate(modules):
                if not isinstance(mod, Module):
                    raise TypeError(f"Sequential: argument {i} is not a Module (got {type(mod).__name__})")
                self.add_module(str(i), mod)

    def _list(self) -> list[Module]:
        return [m for m in self._modules.values() if m is not None]

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self) -> Iterator[Module]:
        return iter(self._list())

    @overload
    def __getitem__(self, idx: int) -> Module: ...
    @overload
    def __getitem__(self, idx: slice) -> Sequential: ...
    def __getitem__(self, idx: int | slice) -> Module | Sequential:
        mods: list[tuple[str, Any]] = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(collections.OrderedDict(mods[idx]))
        return mods[_index("Sequential", idx, len(mods))][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        keys = list(self._modules)
        setattr(self, keys[_index("Sequential", idx, len(keys))], module)

    def __delitem__(self, idx: int | slice) -> None:
        items = list(self._modules.items())
        n = len(items)
        drop = set(range(n)[idx]) if isinstance(idx, slice) else {_index("Sequential", idx, n)}
        numbered = all(k.isdigit() for k, _ in items)
        _structure_epoch[0] += 1
        for k, _ in items:
            self._modules.pop(k)
            self.__dict__.pop(k, None)
        kept = [(k, m) for j, (k, m) in enumerate(items) if j not in drop]
        for i, (k, m) in enumerate(kept):  # renumber 0..n-1 as torch does (named entries keep their names)
            self.add_module(str(i) if numbered else k, m)

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for m in modules:
            self.append(m)
        return self

    def forward(self, input: Any) -> Any:
        """``input`` through each module in turn (an ndarray stays an ndarray, a Tensor a Tensor, for
        cnnfast's layers)."""
        mods = self._list()
        n = len(mods)
        i = 0
        while i < n:
            m = mods[i]
            if type(input) is _ndarray and (type(m) is _Conv2d or isinstance(m, Sequential)) and not m._forward_hooks:
                r = dw_chain_eval(mods, i, input, Sequential, self)
                if r is not None:
                    input, used = r
                    i += used
                    continue
            if type(m) is _Conv2d and not m._forward_hooks and not isinstance(input, _Tensor):
                input, used = conv_block_eval(mods, i, input)
                i += used
                continue
            if (
                type(m) is _Conv2d
                and i + 1 < n
                and type(mods[i + 1]) is _ReLU
                and not m._forward_hooks
                and not mods[i + 1]._forward_hooks
            ):
                if i + 2 < n and _recording(input) and _plain_pool(mods[i + 2]):
                    input = _conv_relu_pool(m, mods[i + 2], input)
                    i += 3
                    continue
                input = m._conv(input, _F.conv2d_relu)
                i += 2
                continue
            input = m(input)
            i += 1
        return input


class ModuleList(Module):
    """A list of Modules whose parameters are registered (``torch.nn.ModuleList``)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())  # type: ignore[arg-type]  # no None in a ModuleList

    @overload
    def __getitem__(self, idx: int) -> Module: ...
    @overload
    def __getitem__(self, idx: slice) -> ModuleList: ...
    def __getitem__(self, idx: int | slice) -> Module | ModuleList:
        mods: list[Any] = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[_index("ModuleList", idx, len(mods))]

    def __setitem__(self, idx: int, module: Module) -> None:
        keys = list(self._modules)
        setattr(self, keys[_index("ModuleList", idx, len(keys))], module)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList is a container; iterate over it in your own forward")
