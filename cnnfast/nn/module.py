"""``Module`` (the base of every layer) and ``Parameter`` (a Tensor a Module learns)."""

from __future__ import annotations

import collections
import collections.abc
from collections.abc import Iterator, Mapping
import itertools
from typing import IO, TYPE_CHECKING, Any, Callable, Literal, TypeVar

import numpy as np

from ..autograd.tensor import Tensor

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, DTypeLike, Shape
    from .summary import ModelSummary

__all__ = ["Module", "Parameter"]


class Parameter(Tensor):
    """A Tensor that is a learnable part of a Module: assigning one to a Module attribute registers
    it, so it shows up in ``parameters()`` and ``state_dict()``. ``requires_grad`` defaults to True."""

    __slots__ = ()

    def __init__(self, data: ArrayLike | Tensor, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            data = data.data
        data = np.asarray(data)
        if data.dtype.kind != "f":
            data = data.astype(np.float32)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])  # type: ignore[name-match]

_M = TypeVar("_M", bound="Module")

# A counter bumped by every change to any module's attributes, children, parameters, buffers,
# forward hooks or training mode (and by Sequential's item deletion): a plan derived from a
# module tree's structure (Sequential's eval-mode depthwise chains, nn/_eval_fusion.py) stays valid
# while it is unchanged. Process-wide and only ever incremented.
_structure_epoch = [0]


class _RemovableHandle:
    _ids = itertools.count()

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks = hooks
        self.id = next(self._ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)
        _structure_epoch[0] += 1

    def __enter__(self) -> _RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _forward_unimplemented(self: Module, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')


class Module:
    """Base class of layers and models (``torch.nn.Module``).

    Subclasses call ``super().__init__()``, assign Parameters and sub-Modules as attributes, and
    define ``forward``. Calling the module runs ``forward`` (and any forward hooks). Parameters
    are listed in registration order (a layer's weight before its bias).
    """

    # Set in __init__ (through __dict__, before __setattr__ can route assignments).
    _parameters: dict[str, Parameter | None]
    _modules: dict[str, Module | None]
    _buffers: dict[str, np.ndarray | None]
    _non_persistent: set[str]
    _forward_hooks: dict[int, Callable[..., Any]]
    training: bool

    if TYPE_CHECKING:
        # Parameters, buffers and sub-modules registered at run time are attributes too.
        def __getattr__(self, name: str) -> Any: ...

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = {}
        d["_modules"] = {}
        d["_buffers"] = {}
        d["_non_persistent"] = set()
        d["_forward_hooks"] = {}
        d["training"] = True

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        _structure_epoch[0] += 1
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() call "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )
        params, modules, buffers = d["_parameters"], d["_modules"], d["_buffers"]
        if isinstance(value, Parameter):
            modules.pop(name, None)
            buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} " f"(a Parameter or None is required)"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} " f"(a Module or None is required)"
                )
            modules[name] = None
        elif name in buffers:
            buffers[name] = None if value is None else np.asarray(value.data if isinstance(value, Tensor) else value)
            value = buffers[name]
        d[name] = value

    def __delattr__(self, name: str) -> None:
        _structure_epoch[0] += 1
        for reg in (self._parameters, self._modules, self._buffers):
            reg.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        _structure_epoch[0] += 1
        self._parameters[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, array: Any, persistent: bool = True) -> None:
        """A non-learnable array saved in ``state_dict`` (unless ``persistent=False``)."""
        arr = None if array is None else np.asarray(array.data if isinstance(array, Tensor) else array)
        _structure_epoch[0] += 1
        self._buffers[name] = arr
        if not persistent:
            self._non_persistent.add(name)
        self.__dict__[name] = arr

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        _structure_epoch[0] += 1
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set[int] | None = None, prefix: str = "") -> Iterator[tuple[str, Module]]:
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs in registration order, each shared parameter once."""
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield mp + ("." if mp else "") + name, p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Array]]:
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield mp + ("." if mp else "") + name, b

    def buffers(self, recurse: bool = True) -> Iterator[Array]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self: _M, fn: Callable[[Module], object]) -> _M:
        """Call ``fn(module)`` on every submodule (children first) and on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes
    def train(self: _M, mode: bool = True) -> _M:
        """Training mode (dropout active); returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode is expected to be a bool, got {type(mode).__name__}")
        changed = False
        for m in self.modules():
            if m.__dict__["training"] is not mode:
                m.__dict__["training"] = mode
                changed = True
        if changed:  # (``model.eval()`` before every call changes nothing: plans stay valid)
            _structure_epoch[0] += 1
        return self

    def eval(self: _M) -> _M:
        """Evaluation mode (dropout off); same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self: _M, requires_grad: bool = True) -> _M:
        """Freeze (``False``) or unfreeze every parameter; frozen ones get no ``.grad``."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the parameters' gradients (to None by default, as PyTorch; else to zeros)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def astype(self: _M, dtype: DTypeLike) -> _M:
        """Convert every parameter and floating buffer to ``dtype`` in place (drops the grads); returns self."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"astype: parameters must stay floating point, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        for m in self.modules():
            for name, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    m._buffers[name] = m.__dict__[name] = b.astype(dtype)
        return self

    def float(self: _M) -> _M:
        return self.astype(np.float32)

    def double(self: _M) -> _M:
        return self.astype(np.float64)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.data.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ state
    def state_dict(self, keep_vars: bool = False) -> collections.OrderedDict[str, Any]:
        """An ordered dict of name -> array: parameters then buffers, per module, in registration order.

        The arrays are copies (a snapshot: later training does not change them); ``keep_vars=True``
        returns the Parameter objects themselves instead.
        """
        out = collections.OrderedDict()
        for mp, m in self.named_modules():
            pre = mp + ("." if mp else "")
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = p if keep_vars else p.data.copy()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[pre + name] = b if keep_vars else b.copy()
        return out

    def _state_targets(self) -> dict[str, tuple[Module, str, Parameter | None]]:
        targets: dict[str, tuple[Module, str, Parameter | None]] = {}
        for mp, m in self.named_modules():
            pre = mp + ("." if mp else "")
            for name, p in m._parameters.items():
                if p is not None:
                    targets[pre + name] = (m, name, p)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    targets[pre + name] = (m, name, None)
        return targets

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """Copy arrays from ``state_dict`` into the parameters/buffers (in place, keeping their dtype).

        Every key and shape is checked before anything is written, so a failed load leaves the
        model unchanged. ``strict=False`` tolerates missing and unexpected keys (never wrong shapes).
        Returns ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"load_state_dict: expected a dict-like state_dict, got {type(state_dict).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        errors: list[str] = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        plan = []
        for key, (m, name, p) in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            arr = value.data if isinstance(value, Tensor) else value
            try:
                arr = np.asarray(arr)
            except Exception as e:
                errors.append(f"could not convert {key} to an array: {e}")
                continue
            current: Any = p.data if p is not None else m._buffers[name]  # a buffer in targets is not None
            if arr.shape != current.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {arr.shape} from checkpoint, "
                    f"the shape in current model is {current.shape}."
                )
            elif arr.dtype.kind not in "biuf":
                errors.append(f"dtype mismatch for {key}: expected a numeric array, got dtype {arr.dtype}.")
            else:
                plan.append((current, arr))
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for current, arr in plan:
            np.copyto(current, arr, casting="unsafe")
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ calling
    # An attribute, not a method, so that subclasses may define forward with any signature.
    forward: Callable[..., Any] = _forward_unimplemented

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                res = hook(self, args, out)
                if res is not None:
                    out = res
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple[Any, ...], Any], Any]) -> _RemovableHandle:
        """``hook(module, inputs, output)`` runs after each forward; it may return a new output.
        Returns a handle whose ``remove()`` unregisters it."""
        handle = _RemovableHandle(self._forward_hooks)
        _structure_epoch[0] += 1
        self._forward_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ display
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines: list[str] = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self._modules.items():
            mod = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {mod}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                return main + lines[0] + ")"
            return main + "\n  " + "\n  ".join(lines) + "\n)"
        return main + ")"

    def summary(
        self, input_shape: Shape, file: IO[str] | Literal[False] | None = None, dtype: DTypeLike = np.float32
    ) -> ModelSummary:
        """Print a Keras-style table (layer, output shape, parameter count) for an input of
        ``input_shape`` (batch dimension included, e.g. ``(1, 1, 28, 28)``), with totals
        (trainable / frozen parameters) and memory (parameters, activations of one forward pass).

        Returns a :class:`~cnnfast.nn.summary.ModelSummary` (a dict; ``str()`` of it is the table).
        ``file`` is any object with ``write`` (default ``sys.stdout``); ``file=False`` prints nothing.
        """
        from .summary import summary

        return summary(self, input_shape, file=file, dtype=dtype)
