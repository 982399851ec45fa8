"""``Sequential`` and ``ModuleList``."""
from __future__ import annotations

import collections
import numbers

from .module import Module

__all__ = ["Sequential", "ModuleList"]


def _index(op, idx, n):
    if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
        raise TypeError(f"{op} indices must be integers or slices, not {type(idx).__name__}")
    if not -n <= idx < n:
        raise IndexError(f"{op} index {idx} is out of range for {n} modules")
    return idx % n


class Sequential(Module):
    """Modules applied one after another: ``Sequential(conv, relu, ...)`` or
    ``Sequential(OrderedDict(name=module, ...))``. Supports indexing, slicing, len, iteration
    and append.

    A ``Conv2d`` directly followed by a ``ReLU`` runs as one fused conv2d+relu kernel call (the
    same result, one pass less over memory); the fusion is skipped when either has forward hooks.
    Given an ndarray (nothing recorded), a ``Conv2d`` followed by an eval-mode ``BatchNorm2d``
    and/or an activation runs as one conv call with the BatchNorm folded into its weights and the
    activation applied to its output (see :func:`cnnfast.nn.fusion.conv_block_eval`).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], collections.OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is not a Module (got {type(m).__name__})")
                self.add_module(str(i), m)

    def _list(self):
        return [m for m in self._modules.values() if m is not None]

    def __len__(self):
        return len(self._list())

    def __iter__(self):
        return iter(self._list())

    def __getitem__(self, idx):
        mods = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(collections.OrderedDict(mods[idx]))
        return mods[_index("Sequential", idx, len(mods))][1]

    def __setitem__(self, idx, module):
        keys = list(self._modules)
        setattr(self, keys[_index("Sequential", idx, len(keys))], module)

    def __delitem__(self, idx):
        items = list(self._modules.items())
        n = len(items)
        drop = set(range(n)[idx]) if isinstance(idx, slice) else {_index("Sequential", idx, n)}
        numbered = all(k.isdigit() for k, _ in items)
        for k, _ in items:
            self._modules.pop(k)
            self.__dict__.pop(k, None)
        kept = [(k, m) for j, (k, m) in enumerate(items) if j not in drop]
        for i, (k, m) in enumerate(kept):  # renumber 0..n-1 as torch does (named entries keep their names)
            self.add_module(str(i) if numbered else k, m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def forward(self, input):
        from .. import functional as F
        from ..autograd.tensor import Tensor
        from .activation import ReLU
        from .conv import Conv2d
        from ._eval_fusion import conv_block_eval

        mods = self._list()
        n = len(mods)
        i = 0
        while i < n:
            m = mods[i]
            if type(m) is Conv2d and not m._forward_hooks and not isinstance(input, Tensor):
                input, used = conv_block_eval(mods, i, input)
                i += used
                continue
            if (type(m) is Conv2d and i + 1 < n and type(mods[i + 1]) is ReLU
                    and not m._forward_hooks and not mods[i + 1]._forward_hooks):
                input = m._conv(input, F.conv2d_relu)
                i += 2
                continue
            input = m(input)
            i += 1
        return input


class ModuleList(Module):
    """A list of Modules whose parameters are registered (``torch.nn.ModuleList``)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[_index("ModuleList", idx, len(mods))]

    def __setitem__(self, idx, module):
        keys = list(self._modules)
        setattr(self, keys[_index("ModuleList", idx, len(keys))], module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container; iterate over it in your own forward")
