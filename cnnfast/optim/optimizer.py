"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and (de)serialisation.

Parameters are objects with ``.data`` (an ndarray, updated in place) and ``.grad`` (None, an
ndarray, or a Tensor whose ``.data`` is one), i.e. ``cnnfast.nn.Parameter``. Subclasses implement
``step()`` with whole-array NumPy operations (no per-element Python loops).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    from .._typing import Array
    from ..autograd.tensor import Tensor

#: What an optimizer takes: parameters (Tensors with an ndarray ``.data``), or parameter groups
#: (dicts with ``'params'`` and per-group hyper-parameters).
Params = Union[Iterable["Tensor"], Iterable[dict[str, Any]]]

__all__ = ["Optimizer", "required"]


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


#: Marks a hyper-parameter without a default (e.g. SGD's ``lr``), as ``torch.optim.optimizer.required``.
required: Any = _Required()  # Any: the default of parameters typed float


class _ParamState(dict[int, dict[str, Any]]):
    """``optimizer.state[param]``, keyed by the parameter's identity (Tensors need not be hashable)."""

    def __init__(self) -> None:
        super().__init__()
        self._params: dict[int, Any] = {}

    def __getitem__(self, p: object) -> dict[str, Any]:
        if id(p) not in self._params:
            self._params[id(p)] = p
            super().__setitem__(id(p), {})
        return super().__getitem__(id(p))

    def __setitem__(self, p: object, value: dict[str, Any]) -> None:
        self._params[id(p)] = p
        super().__setitem__(id(p), value)

    def __contains__(self, p: object) -> bool:
        return super().__contains__(id(p))

    def get(self, p: object, default: Any = None) -> Any:
        return super().get(id(p), default)

    def clear(self) -> None:
        super().clear()
        self._params.clear()


def _grad_array(p: Tensor) -> Array | None:
    """The gradient of ``p`` as an ndarray, or None."""
    g = p.grad
    if g is None or isinstance(g, np.ndarray):
        return g
    return g.data


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``, ``params`` an iterable of parameters or of dicts
    (parameter groups, each with ``'params'`` and optional per-group hyper-parameters)."""

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state = _ParamState()
        self.param_groups: list[dict[str, Any]] = []
        if hasattr(params, "data") and isinstance(params.data, np.ndarray):
            raise TypeError(
                f"params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group ``{'params': [...], **hyper-parameters}``; missing ones come from defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        params = [params] if hasattr(params, "data") else list(params)
        for p in params:
            if not isinstance(getattr(p, "data", None), np.ndarray):
                raise TypeError(
                    f"optimizer can only optimize Tensors/Parameters (objects with an ndarray .data), "
                    f"but one of the params is {type(p).__name__}"
                )
            if not np.issubdtype(p.data.dtype, np.floating):
                raise TypeError(f"optimizer can only optimize floating-point parameters, got dtype {p.data.dtype}")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients: to None (default, as PyTorch), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    _grad_array(p)[...] = 0  # type: ignore[index]  # p.grad is not None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        raise NotImplementedError

    def _params_with_grad(self, group: dict[str, Any]) -> list[tuple[Tensor, Array]]:
        """(param, grad ndarray) for the group's parameters that have a gradient, shapes checked."""
        out = []
        for p in group["params"]:
            g = _grad_array(p)
            if g is None:
                continue
            if g.shape != p.data.shape:
                raise ValueError(
                    f"{type(self).__name__}.step: gradient of shape {g.shape} does not match its "
                    f"parameter of shape {p.data.shape}"
                )
            out.append((p, g))
        return out

    # -- serialisation (PyTorch's layout: parameters referred to by their index over all groups) --
    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [index, ...]}]}``.

        Arrays are copies, so the result is a snapshot."""
        index, groups, n = {}, [], 0
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = list(range(n, n + len(g["params"])))
            for i, p in zip(packed["params"], g["params"]):
                index[id(p)] = i
            n += len(g["params"])
            groups.append(packed)
        state = {}
        for pid, s in dict.items(self.state):
            if pid in index:
                state[index[pid]] = {
                    k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for k, v in s.items()
                }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict()`` (same parameter layout)."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved)} parameter groups, but the optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (s, g) in enumerate(zip(saved, self.param_groups)):
            if len(s["params"]) != len(g["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group {i} of size {len(s['params'])} that "
                    f"doesn't match the size of the optimizer's group ({len(g['params'])})"
                )
        id_map: dict[int, Tensor] = {}
        for s, g in zip(saved, self.param_groups):
            id_map.update(zip(s["params"], g["params"]))
        self.state.clear()
        for key, st in state_dict["state"].items():
            key = int(key)
            if key not in id_map:
                raise ValueError(f"loaded state dict has state for parameter index {key}, which does not exist")
            p = id_map[key]
            new = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray) and k != "step":
                    if v.shape != p.data.shape:
                        raise ValueError(
                            f"loaded state {k!r} for parameter {key} has shape {v.shape}, " f"expected {p.data.shape}"
                        )
                    v = v.astype(p.data.dtype, copy=True)
                new[k] = v
            self.state[p] = new
        for s, g in zip(saved, self.param_groups):
            for k, v in s.items():
                if k != "params":
                    g[k] = v

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {g[k]}" for k in sorted(g) if k != "params"]
        return "\n".join(lines) + "\n)"
