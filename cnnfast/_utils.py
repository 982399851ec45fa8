"""Argument normalisation shared by cnnfast.functional and cnnfast.nn."""

from __future__ import annotations

import numbers
import operator

from typing import Any

import numpy as np

__all__ = ["_pair", "_is_tensor", "_any_tensor", "_tensor_arg", "_result_dtype", "_as_float"]


def _pair(value: Any, name: str = "value", op: str = "op") -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(2, 3) -> (2, 3)``; rejects non-integers with a clear TypeError."""
    # Fast path for what layers pass on every call (about 36 calls per LeNet-5 training step).
    if type(value) is int:
        return value, value
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            value = (value[0], value[0])
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        items = value
    else:
        items = (value, value)
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        out.append(operator.index(v))
    return out[0], out[1]


def _is_tensor(x: Any) -> bool:
    """True for a cnnfast autograd Tensor (checked without importing the autograd package)."""
    return getattr(type(x), "_cnnfast_tensor", False)


def _any_tensor(*xs: Any) -> bool:
    return any(_is_tensor(x) for x in xs)


def _tensor_arg(x: Any) -> Any:
    """An ndarray/list mixed with Tensors is passed as a constant array."""
    if x is None or _is_tensor(x) or isinstance(x, np.ndarray):
        return x
    return np.asarray(x)


_REAL_KINDS = "biuf"  # bool, signed, unsigned, floating


def _check_real(a: np.ndarray, op: str, name: str) -> None:
    if a.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"{op}: expected a real numeric array for {name}, got dtype {a.dtype}")


def _result_dtype(*arrays: np.ndarray | None) -> np.dtype:
    """cnnfast's casting rule: float64 if any operand is float64 (or wider), otherwise float32.

    float32 inputs compute in float32; integer, bool and float16 inputs are converted to float32.
    """
    for a in arrays:
        if a is not None and a.dtype.kind == "f" and a.dtype.itemsize >= 8:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


_OPTIONAL = frozenset({"bias"})  # arguments that may be None
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _as_float(op: str, **named: Any) -> tuple[Any, ...]:
    """Convert named array-likes to C-contiguous arrays of one float dtype (see _result_dtype).

    Returns the arrays in the order given (an optional argument such as bias may be None). Raises TypeError naming the argument
    for non-numeric input.
    """
    # Fast path for what the layers pass on every call: C-contiguous float32 (or all float64)
    # ndarrays of at least one dimension, returned as they are (what the general path returns too).
    dt = None
    for name, x in named.items():
        if type(x) is np.ndarray:
            xdt = x.dtype
            if (
                (xdt is not _F32 and xdt is not _F64)
                or (dt is not None and xdt is not dt)
                or not x.ndim
                or not x.flags.c_contiguous
            ):
                break
            dt = xdt
        elif x is not None or name not in _OPTIONAL:
            break
    else:
        return tuple(named.values())
    arrays: dict[str, np.ndarray | None] = {}
    for name, x in named.items():
        if x is None and name in _OPTIONAL:
            arrays[name] = None
            continue
        try:
            a = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{op}: {name} could not be converted to an array: {e}") from None
        _check_real(a, op, name)
        arrays[name] = a
    dt = _result_dtype(*arrays.values())
    return tuple(None if a is None else np.ascontiguousarray(a, dtype=dt) for a in arrays.values())
