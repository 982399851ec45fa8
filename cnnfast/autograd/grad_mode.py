"""Grad mode: whether operations on Tensors are recorded for backward (thread-local, as in PyTorch)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


class _GradState(threading.local):
    enabled = True


_state = _GradState()


def is_grad_enabled() -> bool:
    """True when operations on Tensors that require grad are being recorded."""
    return _state.enabled


def _with_mode(func: _F, mode: bool) -> _F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        prev = _state.enabled
        _state.enabled = mode
        try:
            return func(*args, **kwargs)
        finally:
            _state.enabled = prev

    return wrapper  # type: ignore[return-value]  # same signature as func


class _GradModeContext:
    """Base for the grad-mode switches: usable as ``with ...:`` and as a decorator."""

    _mode = True

    def __enter__(self) -> _GradModeContext:
        self._prev = _state.enabled
        _state.enabled = self._mode
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        _state.enabled = self._prev
        return False

    def __call__(self, func: _F) -> _F:
        return _with_mode(func, self._mode)


class no_grad(_GradModeContext):
    """Disable graph recording: ``with cnnfast.no_grad(): ...``, ``@cnnfast.no_grad()`` or ``@cnnfast.no_grad``.

    Results computed inside have ``requires_grad=False``; use it for evaluation and for
    in-place parameter updates.
    """

    _mode = False

    def __new__(cls, func: Callable[..., Any] | None = None) -> Any:
        if func is not None:  # bare decorator form: @no_grad
            if not callable(func):
                raise TypeError(f"{cls.__name__}() takes no arguments (got {func!r})")
            return _with_mode(func, cls._mode)
        return super().__new__(cls)

    def __init__(self, func: Callable[..., Any] | None = None) -> None:
        pass


class enable_grad(no_grad):
    """Re-enable graph recording inside a ``no_grad`` block (context manager or decorator)."""

    _mode = True


class set_grad_enabled(_GradModeContext):
    """Set grad mode to ``mode``: takes effect immediately; as a context manager, restores it on exit."""

    def __init__(self, mode: bool) -> None:
        self._mode = bool(mode)
        self._prev = _state.enabled
        _state.enabled = self._mode

    def __enter__(self) -> set_grad_enabled:
        return self
