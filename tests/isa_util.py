"""Running a call on one ISA's kernels (shared by the kernel tests)."""

from __future__ import annotations

import contextlib

import cnnfast


@contextlib.contextmanager
def using_isa(name: str):
    """Select the kernels of ISA `name` for the block, then restore the previous selection."""
    prev = cnnfast.get_isa()
    cnnfast.set_isa(name)
    try:
        yield
    finally:
        cnnfast.set_isa(prev)


def on_ref(fn, *args, **kw):
    """fn(*args, **kw) computed by the scalar reference kernels."""
    with using_isa("ref"):
        return fn(*args, **kw)
