"""``Function``: a forward/backward pair recorded on the tape.

The backward engine that sweeps the tape is in ``tensor.py`` (``Tensor.backward``); ``backward``
is re-exported here under its old name.
"""

from __future__ import annotations

from typing import Any

from .grad_mode import _state
from .tensor import Tensor
from .tensor import _backward as backward

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

    saved_tensors: tuple[Any, ...] = ()
    _freed = False
    #: Whether each positional argument of forward needs a gradient (set by apply).
    needs_input_grad: tuple[bool, ...]
    #: The arguments of forward, Tensors and constants (set by apply when the call is recorded).
    parents: tuple[Any, ...]

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._apply_ctx(args, kwargs)[0]

    @classmethod
    def _apply_ctx(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Tensor, Function]:
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
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Any, grad_output: Any) -> Any:
        raise NotImplementedError

    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"
