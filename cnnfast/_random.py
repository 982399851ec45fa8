"""The default random generator behind layer initialisation and dropout (``cnnfast.manual_seed``)."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["manual_seed", "default_generator", "_get_generator"]

_default = None  # created on first use: importing numpy.random costs ~14 ms of `import cnnfast`


def _default_rng() -> np.random.Generator:
    global _default
    if _default is None:
        _default = np.random.default_rng()
    return _default


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed cnnfast's default generator (used when no ``generator=`` is passed); returns it.

    After ``cnnfast.manual_seed(0)``, building the same model and running the same dropout calls
    gives the same numbers. NumPy's global ``np.random`` state is not touched.
    """
    global _default
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"manual_seed: seed must be an int, got {seed!r}")
    _default = np.random.default_rng(int(seed))
    return _default


def default_generator() -> np.random.Generator:
    """The current default generator."""
    return _default_rng()


def _get_generator(generator: np.random.Generator | int | None, op: str = "") -> np.random.Generator:
    """``None`` -> the default generator; an int -> a fresh seeded one; a Generator as is."""
    if generator is None:
        return _default_rng()
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"{op + ': ' if op else ''}generator must be None, an int seed or a numpy.random.Generator, "
        f"got {type(generator).__name__}"
    )
