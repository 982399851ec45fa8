"""``Tensor``: a NumPy array plus what autograd needs (``grad``, ``requires_grad``, ``grad_fn``)."""

from __future__ import annotations

from collections.abc import Iterator
import builtins
from typing import TYPE_CHECKING, Any, Union, overload

import numpy as np

from .._ndarray.misc import _flat_shape
from .grad_mode import _state

if TYPE_CHECKING:
    # Not cnnfast._typing, which sits above this module (its aliases name Tensor).
    from numpy.typing import ArrayLike, DTypeLike, NDArray

    Array = NDArray[Any]
    TensorLike = Union[ArrayLike, "Tensor"]
    # A Function (autograd/function.py, which imports this module, so it is not imported here).
    Function = Any

__all__ = ["Tensor"]

# An axis argument: None (all), an int, or several.
_Axis = Union[int, "tuple[int, ...]", "list[int]", None]


@overload
def _axis(axis: int | None, dim: int | None, op: str) -> int | None: ...
@overload
def _axis(axis: _Axis, dim: _Axis, op: str) -> int | tuple[int, ...] | None: ...
def _axis(axis: _Axis, dim: _Axis, op: str) -> int | tuple[int, ...] | None:
    """Accept NumPy's ``axis`` or PyTorch's ``dim`` (not both)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: pass axis= or dim=, not both")
        axis = dim
    if isinstance(axis, list):
        axis = tuple(axis)
    return axis


def _keep(keepdims: bool, keepdim: bool) -> bool:
    return bool(keepdims or keepdim)


class Tensor:
    """An n-dimensional array recorded for automatic differentiation.

    ``Tensor(data, requires_grad=False, dtype=None)`` wraps ``data`` without copying when it is
    already an ndarray: ``t.data`` *is* that array (edit it in place to change the tensor without
    recording). Python floats/lists become float32 (PyTorch's default); ndarrays keep their dtype,
    except that a tensor requiring grad must be floating point, so integer/bool data is converted
    to float32. ``t.grad`` is None until ``backward()`` fills it with an ndarray of ``t.shape``.

    Arithmetic (``+ - * / @ **``, reflected, broadcasting), reductions, reshaping, indexing and the
    elementwise functions return Tensors; ndarrays and numbers mixed in are constants. As in
    PyTorch, ``.grad`` is kept for leaves only (tensors created by the user), unless
    :meth:`retain_grad` is called on an intermediate result.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retains_grad", "__weakref__")
    data: Array
    grad: Array | None
    requires_grad: bool
    _ctx: Function | None
    _retains_grad: bool
    _cnnfast_tensor = True
    # Make ``ndarray + Tensor`` call Tensor.__radd__ instead of converting the Tensor to an array.
    __array_ufunc__ = None

    def __init__(self, data: TensorLike, requires_grad: bool = False, dtype: DTypeLike | None = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        from_python = not isinstance(data, np.ndarray)
        arr = np.asarray(data, dtype=dtype)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"Tensor: expected real numeric data, got dtype {arr.dtype}")
        if dtype is None and from_python and arr.dtype == np.float64 and not isinstance(data, np.generic):
            arr = arr.astype(np.float32)
        if requires_grad and (arr.dtype.kind != "f" or arr.dtype.itemsize < 4):
            if dtype is not None:
                raise TypeError(f"Tensor: only float32/float64 tensors can require grad, got dtype {arr.dtype}")
            arr = arr.astype(np.float32)
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._retains_grad = False

    @classmethod
    def _make(cls, data: ArrayLike, ctx: Function | None) -> Tensor:
        """Fast internal constructor for op results (no checks, no conversion)."""
        t = object.__new__(Tensor)
        t.data = data if type(data) is np.ndarray else np.asarray(data)
        t.grad = None
        t.requires_grad = ctx is not None
        t._ctx = ctx
        t._retains_grad = False
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def T(self) -> Tensor:
        return self.transpose()

    @property
    def grad_fn(self) -> Function | None:
        """The Function that produced this tensor (None for leaves)."""
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> Array:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> Array:
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(
                f"item: only a tensor with one element can be converted to a Python scalar, " f"got shape {self.shape}"
            )
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of a single element can be converted to an index, got {self.dtype}")
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = []
        if self.data.dtype != np.float32:
            extra.append(f"dtype={self.data.dtype}")
        if self._ctx is not None:
            extra.append(f"grad_fn={self._ctx!r}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "Tensor(" + body + "".join(", " + e for e in extra) + ")"

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient: TensorLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate gradients of this tensor into the ``.grad`` of the leaves it depends on.

        ``gradient`` is d(loss)/d(self); it may be omitted only for a one-element tensor.
        """
        _backward(self, gradient, retain_graph)

    def detach(self) -> Tensor:
        """A new leaf Tensor sharing this data, cut off from the graph."""
        return Tensor._make(self.data, None)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only floating point tensors can require gradients, got {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False): only leaves can stop requiring grad; use detach() here")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` for this non-leaf tensor during backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a Tensor that has requires_grad=False")
        self._retains_grad = True
        return self

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self.data[...] = 0
        return self

    def fill_(self, value: float) -> Tensor:
        self._check_inplace("fill_")
        self.data[...] = value
        return self

    def copy_(self, src: TensorLike) -> Tensor:
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else np.asarray(src)
        try:
            np.copyto(self.data, np.broadcast_to(src, self.data.shape), casting="same_kind")
        except ValueError:
            raise ValueError(f"copy_: source of shape {src.shape} cannot be broadcast to {self.shape}") from None
        return self

    def clone(self) -> Tensor:
        return _ops.Clone.apply(self)

    def _check_inplace(self, op: str) -> None:
        if self.requires_grad and _state.enabled:
            what = "a leaf Tensor that requires grad" if self._ctx is None else "a Tensor recorded for autograd"
            raise RuntimeError(
                f"{op}: in-place operation on {what}; wrap the update in cnnfast.no_grad() or "
                f"use the out-of-place form"
            )

    # ------------------------------------------------------------------ dtype
    def astype(self, dtype: DTypeLike) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self
        return _ops.Cast.apply(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: TensorLike) -> Tensor:
        return _ops.Add.apply(self, other)

    def __radd__(self, other: TensorLike) -> Tensor:
        return _ops.Add.apply(other, self)

    def __sub__(self, other: TensorLike) -> Tensor:
        return _ops.Sub.apply(self, other)

    def __rsub__(self, other: TensorLike) -> Tensor:
        return _ops.Sub.apply(other, self)

    def __mul__(self, other: TensorLike) -> Tensor:
        return _ops.Mul.apply(self, other)

    def __rmul__(self, other: TensorLike) -> Tensor:
        return _ops.Mul.apply(other, self)

    def __truediv__(self, other: TensorLike) -> Tensor:
        return _ops.Div.apply(self, other)

    def __rtruediv__(self, other: TensorLike) -> Tensor:
        return _ops.Div.apply(other, self)

    def __pow__(self, other: TensorLike) -> Tensor:
        return _ops.Pow.apply(self, other)

    def __rpow__(self, other: TensorLike) -> Tensor:
        return _ops.Pow.apply(other, self)

    def __matmul__(self, other: TensorLike) -> Tensor:
        return _ops.MatMul.apply(self, other)

    def __rmatmul__(self, other: TensorLike) -> Tensor:
        return _ops.MatMul.apply(other, self)

    def __neg__(self) -> Tensor:
        return _ops.Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def _inplace(self, op: str, other: TensorLike, ufunc: np.ufunc) -> Tensor:
        self._check_inplace(op)
        ufunc(self.data, other.data if isinstance(other, Tensor) else other, out=self.data)
        return self

    def __iadd__(self, other: TensorLike) -> Tensor:
        return self._inplace("+=", other, np.add)

    def __isub__(self, other: TensorLike) -> Tensor:
        return self._inplace("-=", other, np.subtract)

    def __imul__(self, other: TensorLike) -> Tensor:
        return self._inplace("*=", other, np.multiply)

    def __itruediv__(self, other: TensorLike) -> Tensor:
        return self._inplace("/=", other, np.true_divide)

    def add_(self, other: TensorLike, alpha: builtins.float = 1) -> Tensor:
        scaled: Any = other.data if isinstance(other, Tensor) else other
        return self._inplace("add_", other if alpha == 1 else scaled * alpha, np.add)

    def mul_(self, other: TensorLike) -> Tensor:
        return self._inplace("mul_", other, np.multiply)

    # comparisons: not differentiable, return bool Tensors
    def _cmp(self, other: object, ufunc: np.ufunc) -> Tensor:
        return Tensor._make(ufunc(self.data, other.data if isinstance(other, Tensor) else other), None)

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]
        return self._cmp(other, np.equal)

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]
        return self._cmp(other, np.not_equal)

    def __lt__(self, other: TensorLike) -> Tensor:
        return self._cmp(other, np.less)

    def __le__(self, other: TensorLike) -> Tensor:
        return self._cmp(other, np.less_equal)

    def __gt__(self, other: TensorLike) -> Tensor:
        return self._cmp(other, np.greater)

    def __ge__(self, other: TensorLike) -> Tensor:
        return self._cmp(other, np.greater_equal)

    # ------------------------------------------------------------------ reductions
    def sum(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None, keepdim: bool = False) -> Tensor:
        return _ops.Sum.apply(self, axis=_axis(axis, dim, "sum"), keepdims=_keep(keepdims, keepdim))

    def mean(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None, keepdim: bool = False) -> Tensor:
        return _ops.Mean.apply(self, axis=_axis(axis, dim, "mean"), keepdims=_keep(keepdims, keepdim))

    def max(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None, keepdim: bool = False) -> Tensor:
        """Maximum over ``axis`` (values only). The gradient is shared equally between tied maxima."""
        return _ops.Max.apply(self, axis=_axis(axis, dim, "max"), keepdims=_keep(keepdims, keepdim), sign=1)

    def min(self, axis: _Axis = None, keepdims: bool = False, *, dim: _Axis = None, keepdim: bool = False) -> Tensor:
        return _ops.Max.apply(self, axis=_axis(axis, dim, "min"), keepdims=_keep(keepdims, keepdim), sign=-1)

    def argmax(
        self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None, keepdim: bool = False
    ) -> Tensor:
        return Tensor._make(
            np.argmax(self.data, axis=_axis(axis, dim, "argmax"), keepdims=_keep(keepdims, keepdim)), None
        )

    def argmin(
        self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None, keepdim: bool = False
    ) -> Tensor:
        return Tensor._make(
            np.argmin(self.data, axis=_axis(axis, dim, "argmin"), keepdims=_keep(keepdims, keepdim)), None
        )

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return self.reshape(_flat_shape(self.shape, start_dim, end_dim))

    def squeeze(self, axis: _Axis = None, *, dim: _Axis = None) -> Tensor:
        """Remove size-1 axes (all of them, or ``axis`` if it has size 1, as torch)."""
        axis = _axis(axis, dim, "squeeze")
        if axis is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            axes = {a % self.data.ndim for a in (axis if isinstance(axis, tuple) else (axis,))}
            shape = tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1))
        return self.reshape(shape)

    def unsqueeze(self, dim: int) -> Tensor:
        nd = self.data.ndim + 1
        if not -nd <= dim < nd:
            raise IndexError(f"unsqueeze: dim {dim} out of range for a tensor of {self.data.ndim} dimensions")
        dim %= nd
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def transpose(self, *axes: Any) -> Tensor:
        """No argument reverses the axes (NumPy, ``.T``); ``transpose(d0, d1)`` swaps two axes (PyTorch);
        a longer tuple is a full permutation (NumPy)."""
        n = self.data.ndim
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            perm = tuple(range(n - 1, -1, -1))
        elif len(axes) == 2:
            if not all(-n <= a < n for a in axes):
                raise IndexError(f"transpose: dims {axes} out of range for a tensor of {n} dimensions")
            d0, d1 = (a % n for a in axes)
            swapped = list(range(n))
            swapped[d0], swapped[d1] = swapped[d1], swapped[d0]
            perm = tuple(swapped)
        else:
            perm = tuple(axes)
        return _ops.Permute.apply(self, perm=perm)

    def permute(self, *dims: Any) -> Tensor:
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return _ops.Permute.apply(self, perm=tuple(dims))

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.GetItem.apply(self, index=index)

    def __setitem__(self, index: Any, value: TensorLike) -> None:
        self._check_inplace("__setitem__")
        if isinstance(index, Tensor):
            index = index.data
        self.data[index] = value.data if isinstance(value, Tensor) else value

    # ------------------------------------------------------------------ elementwise
    def exp(self) -> Tensor:
        return _ops.Exp.apply(self)

    def log(self) -> Tensor:
        return _ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _ops.Sqrt.apply(self)

    def tanh(self) -> Tensor:
        return _ops.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return _ops.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return _ops.relu(self)

    def abs(self) -> Tensor:
        return _ops.Abs.apply(self)

    def __abs__(self) -> Tensor:
        return _ops.Abs.apply(self)

    def clip(self, min: TensorLike | None = None, max: TensorLike | None = None) -> Tensor:
        if min is None and max is None:
            raise ValueError("clip: at least one of min and max must be given")
        return _ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def pow(self, exponent: TensorLike) -> Tensor:
        return _ops.Pow.apply(self, exponent)

    def matmul(self, other: TensorLike) -> Tensor:
        return _ops.MatMul.apply(self, other)

    def softmax(self, dim: int) -> Tensor:
        return _ops.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim: int) -> Tensor:
        return _ops.LogSoftmax.apply(self, dim=dim)


# ---------------------------------------------------------------------------- the backward engine
# micrograd's: one topological sort of the graph below the output, then one reverse sweep calling
# each node's ``backward`` and accumulating the input gradients with ``+``.


def _topo_order(root: Tensor) -> list[Tensor]:
    """Nodes that require grad below ``root``, inputs before outputs (iterative DFS post-order)."""
    order = []
    visited = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None:
            for p in ctx.parents:
                if isinstance(p, Tensor) and p.requires_grad and id(p) not in visited:
                    stack.append((p, False))
    return order


def _accumulate_leaf(node: Tensor, g: np.ndarray) -> None:
    if node.grad is None:
        # A private copy: g may alias another node's gradient or the caller's array.
        node.grad = np.array(g, dtype=node.data.dtype, copy=True)
    else:
        node.grad += g


def _backward(root: Tensor, gradient: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward: the tensor does not require grad and has no grad_fn "
            "(create leaves with requires_grad=True, and do not call backward inside no_grad)"
        )
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs; got a Tensor "
                f"of shape {root.shape}, so pass gradient= (an array of that shape)"
            )
        gradient = np.ones_like(root.data)
    else:
        if isinstance(gradient, Tensor):
            gradient = gradient.data
        gradient = np.asarray(gradient, dtype=root.data.dtype)
        if gradient.shape != root.shape:
            raise RuntimeError(
                f"backward: gradient of shape {gradient.shape} does not match the tensor's " f"shape {root.shape}"
            )
    order = _topo_order(root)
    grads = {id(root): gradient}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        ctx = node._ctx
        if ctx is None or node._retains_grad:
            _accumulate_leaf(node, g)
        if ctx is None:
            continue
        if ctx._freed:
            raise RuntimeError(
                f"backward: trying to backward through {ctx.name()} a second time; its saved "
                "arrays were freed after the first backward (pass retain_graph=True to keep them)"
            )
        in_grads = type(ctx).backward(ctx, g)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        for p, gp in zip(ctx.parents, in_grads):
            if gp is None or not isinstance(p, Tensor) or not p.requires_grad:
                continue
            if gp.shape != p.data.shape:
                raise RuntimeError(
                    f"backward: {ctx.name()} returned a gradient of shape {gp.shape} for an input "
                    f"of shape {p.data.shape}"
                )
            k = id(p)
            prev = grads.get(k)
            grads[k] = gp if prev is None else prev + gp
        if not retain_graph:
            parents, needs = ctx.parents, ctx.needs_input_grad
            ctx.__dict__.clear()  # free the saved arrays now, not when the graph is collected
            ctx.parents, ctx.needs_input_grad, ctx._freed = parents, needs, True


# ---------------------------------------------------------------------------- the operations
# Tensor's methods run the Functions of autograd/ops.py, which is built on Tensor (it imports this
# module), so this module cannot import it: ops.py hands itself over with _bind_ops when it is
# imported, which importing cnnfast.autograd (the package of this module) always does. The import
# graph stays one-way: tensor <- function <- ops.
_ops: Any = None


def _bind_ops(ops_module: Any) -> None:
    global _ops
    _ops = ops_module
