"""``Function`` (a forward/backward pair recorded on the tape) and the backward engine.

The engine is micrograd's: one topological sort of the graph below the output, then one reverse
sweep calling each node's ``backward`` and accumulating the input gradients with ``+``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .grad_mode import _state
from .tensor import Tensor

__all__ = ["Function", "backward"]


class Function:
    """An operation recorded for autograd.

    Subclasses define two static methods working on NumPy arrays::

        class Square(Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, grad_output):
                (x,) = ctx.saved_tensors
                return 2 * x * grad_output

        y = Square.apply(t)

    ``forward`` receives the ``.data`` of Tensor arguments (other arguments unchanged) and returns
    an array; ``backward`` returns one gradient (or None) per positional argument of ``forward``.
    ``ctx.needs_input_grad[i]`` says whether argument ``i`` needs a gradient, so backward can skip
    work. The instance of the subclass is the ``ctx``; it is the output's ``grad_fn``.
    """

    saved_tensors = ()
    _freed = False

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    @classmethod
    def apply(cls, *args, **kwargs):
        return cls._apply_ctx(args, kwargs)[0]

    @classmethod
    def _apply_ctx(cls, args, kwargs):
        """Run forward; returns (output Tensor, ctx). ctx is recorded only if a grad is needed."""
        ctx = cls()
        raw = []
        needs = []
        any_grad = False
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a.data)
                needs.append(a.requires_grad)
                any_grad = any_grad or a.requires_grad
            else:
                raw.append(a)
                needs.append(False)
        record = any_grad and _state.enabled
        ctx.needs_input_grad = tuple(needs) if record else (False,) * len(needs)
        out = cls.forward(ctx, *raw, **kwargs)
        if record:
            ctx.parents = args
            return Tensor._make(out, ctx), ctx
        return Tensor._make(out, None), ctx

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self):
        return f"<{self.name()}>"


def _topo_order(root: Tensor) -> list:
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


def backward(root: Tensor, gradient: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no grad_fn "
                           "(create leaves with requires_grad=True, and do not call backward inside no_grad)")
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs; got a Tensor "
                               f"of shape {root.shape}, so pass gradient= (an array of that shape)")
        gradient = np.ones_like(root.data)
    else:
        if isinstance(gradient, Tensor):
            gradient = gradient.data
        gradient = np.asarray(gradient, dtype=root.data.dtype)
        if gradient.shape != root.shape:
            raise RuntimeError(f"backward: gradient of shape {gradient.shape} does not match the tensor's "
                               f"shape {root.shape}")
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
            raise RuntimeError(f"backward: trying to backward through {ctx.name()} a second time; its saved "
                               "arrays were freed after the first backward (pass retain_graph=True to keep them)")
        in_grads = type(ctx).backward(ctx, g)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        for p, gp in zip(ctx.parents, in_grads):
            if gp is None or not isinstance(p, Tensor) or not p.requires_grad:
                continue
            if gp.shape != p.data.shape:
                raise RuntimeError(f"backward: {ctx.name()} returned a gradient of shape {gp.shape} for an input "
                                   f"of shape {p.data.shape}")
            k = id(p)
            prev = grads.get(k)
            grads[k] = gp if prev is None else prev + gp
        if not retain_graph:
            parents, needs = ctx.parents, ctx.needs_input_grad
            ctx.__dict__.clear()  # free the saved arrays now, not when the graph is collected
            ctx.parents, ctx.needs_input_grad, ctx._freed = parents, needs, True
