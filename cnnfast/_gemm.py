"""Matrix products on cnnfast's own GEMM kernels (NumPy-level, the bottom layer beside ``_core``).

The Linear layers' matrix products run here rather than in NumPy's BLAS so that a training step
does all of its arithmetic on one thread pool. NumPy's OpenBLAS keeps its own threads, which
busy-wait for a long time after each call; on a 2-core machine they took the cores from the conv
kernels and from PyTorch's threads in the same process (issue 9: a LeNet-5 step 2.9 -> 4.3 ms, and
PyTorch's step slowed 1.6-10x when it ran next to cnnfast). ``A @ B`` is exactly a 1x1 convolution
of the "image" B, shape (1, K, N, 1), by the filters A, shape (M, K, 1, 1): output (1, M, N, 1),
which the conv2d dispatch serves with its packed GEMM microkernels.

The transposed products map onto the conv2d gradients the same way, without a transposed copy:
``A @ B.T`` (both row-major, contracted over their last axis) is the weight gradient of a 1x1
convolution whose spatial axis is that last axis, and ``A.T @ B`` (contracted over their first
axis) is the input gradient of a 1x1 convolution whose filters are A. On LeNet-5's Linear
shapes these are as fast or faster than ``mm`` with a transposed copy (up to 8x at batch 1, and
for 10 outputs; ``python bench/linear_gemm.py``).
"""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["mm", "mm_nt", "mm_tn"]

_ONE = (1, 1)
# mm_nt with at most this many rows in a runs as matrix-vector products (_core.linear_forward):
# the GEMM packs b for a single column there; measured with bench/activation_kernels.py
_MATVEC_MAX_M = 4
_ZERO = (0, 0)


def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D float32/float64 arrays of the same dtype; returns a new C-contiguous array."""
    m, k = a.shape
    k2, n = b.shape
    assert k == k2 and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    if m == 0 or n == 0 or k == 0 or a.dtype not in (np.float32, np.float64):
        return np.matmul(a, b)
    w = np.ascontiguousarray(a).reshape(m, k, 1, 1)
    x = np.ascontiguousarray(b).reshape(1, k, n, 1)
    return _core.conv2d_forward(x, w, None, _ONE, _ZERO, _ONE, 1, False).reshape(m, n)


def _generic(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or 0 in a.shape or 0 in b.shape


def mm_nt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for 2-D ``a`` (m, k) and ``b`` (n, k); returns a new C-contiguous (m, n) array."""
    m, k = a.shape
    n, k2 = b.shape
    assert k == k2, (a.shape, b.shape)
    if _generic(a, b):
        return np.matmul(a, b.T)
    if m <= _MATVEC_MAX_M:  # a Linear layer at a small batch: matrix-vector products, b read once
        return _core.linear_forward(a, b)
    x = np.ascontiguousarray(b).reshape(1, n, k, 1)
    gy = np.ascontiguousarray(a).reshape(1, m, k, 1)
    return _core.conv2d_backward_weight(x, [m, n, 1, 1], gy, _ONE, _ZERO, _ONE, 1, False)[0].reshape(m, n)


def mm_tn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a.T @ b`` for 2-D ``a`` (k, m) and ``b`` (k, n); returns a new C-contiguous (m, n) array."""
    k, m = a.shape
    k2, n = b.shape
    assert k == k2, (a.shape, b.shape)
    if _generic(a, b):
        return np.matmul(a.T, b)
    gy = np.ascontiguousarray(b).reshape(1, k, n, 1)
    w = np.ascontiguousarray(a).reshape(k, m, 1, 1)
    return _core.conv2d_backward_input([1, m, n, 1], gy, w, _ONE, _ZERO, _ONE, 1).reshape(m, n)
