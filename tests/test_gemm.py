"""cnnfast._gemm.mm (the Linear layers' matrix products on cnnfast's own GEMM) against NumPy in float64."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast._gemm import mm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "m,k,n",
    [(1, 1, 1), (64, 400, 120), (64, 120, 84), (7, 13, 5), (33, 17, 65), (3, 1000, 2), (120, 64, 400), (256, 84, 10)],
)
def test_mm_matches_float64_matmul(isa, rng, dtype, m, k, n):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = mm(a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    # Each element sums k products: error bound ~ k * eps * sum|a_i b_i| (a few eps * sqrt(k) in practice).
    bound = 4 * np.finfo(dtype).eps * np.sqrt(k) * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert got.shape == (m, n) and got.dtype == dtype and got.flags.c_contiguous
    assert np.all(np.abs(got - want) <= bound + np.finfo(dtype).tiny), np.max(np.abs(got - want) / (bound + 1e-30))


def test_mm_empty_and_non_contiguous(rng):
    a = rng.standard_normal((5, 0)).astype(np.float32)
    assert np.array_equal(mm(a, np.zeros((0, 3), np.float32)), np.zeros((5, 3), np.float32))
    a = rng.standard_normal((8, 6)).astype(np.float32)[:, ::2]  # non-contiguous view
    b = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(mm(a, b), a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_forward_and_backward_use_the_same_math_as_numpy(rng, dtype):
    x = rng.standard_normal((64, 400)).astype(dtype)
    w = rng.standard_normal((120, 400)).astype(dtype)
    b = rng.standard_normal(120).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cnnfast.linear(x, w, b), x @ w.T + b, **tol)
    xt, wt, bt = (
        cnnfast.Tensor(x, requires_grad=True),
        cnnfast.Tensor(w, requires_grad=True),
        cnnfast.Tensor(b, requires_grad=True),
    )
    g = rng.standard_normal((64, 120)).astype(dtype)
    (cnnfast.linear(xt, wt, bt) * cnnfast.Tensor(g)).sum().backward()
    np.testing.assert_allclose(xt.grad, g @ w, **tol)
    np.testing.assert_allclose(wt.grad, g.T @ x, **tol)
    np.testing.assert_allclose(bt.grad, g.sum(0), **tol)
    assert xt.grad.dtype == wt.grad.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unpickled_arrays_reach_the_kernels(rng, dtype):
    """An unpickled array's dtype is an equal but distinct object (as in Dask's worker processes):
    the C++ boundary must accept it, for mm and for every kernel entry point."""
    import pickle

    a, b = (pickle.loads(pickle.dumps(rng.standard_normal(s).astype(dtype))) for s in ((4, 6), (6, 5)))
    assert a.dtype is not np.dtype(dtype)
    np.testing.assert_allclose(mm(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    x = pickle.loads(pickle.dumps(rng.standard_normal((1, 2, 5, 5)).astype(dtype)))
    w = pickle.loads(pickle.dumps(rng.standard_normal((3, 2, 3, 3)).astype(dtype)))
    out = pickle.loads(pickle.dumps(np.empty((1, 3, 3, 3), dtype)))
    y = cnnfast._core.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, False)
    np.testing.assert_allclose(y, cnnfast.conv2d(np.array(x), np.array(w)), rtol=1e-5, atol=1e-5)
    assert y.dtype == dtype
    assert cnnfast.relu(y, out=out) is out  # an out= array with an unpickled dtype
    np.testing.assert_array_equal(out, np.maximum(y, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(1, 400, 120), (64, 84, 10), (7, 5, 3), (33, 1, 17)])
def test_transposed_products_match_numpy(m, k, n, dtype):
    from cnnfast._gemm import mm_nt, mm_tn

    rng = np.random.default_rng(m * 1000 + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    rtol = 4e-5 if dtype == np.float32 else 4e-12  # of the sum of |terms|
    ab = mm_nt(a, b)
    assert ab.dtype == dtype and ab.shape == (m, n) and ab.flags.c_contiguous
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64).T  # sum of |terms|
    assert np.all(np.abs(ab - a.astype(np.float64) @ b.astype(np.float64).T) <= rtol * scale)
    ac = mm_tn(a, c)
    assert ac.dtype == dtype and ac.shape == (k, n) and ac.flags.c_contiguous
    scale = np.abs(a).astype(np.float64).T @ np.abs(c).astype(np.float64)
    assert np.all(np.abs(ac - a.astype(np.float64).T @ c.astype(np.float64)) <= rtol * scale)
    # mixed dtypes and empty operands fall back to NumPy
    assert mm_nt(a, b.astype(np.float16)).shape == (m, n)
    assert mm_tn(a[:0], c[:0]).shape == (k, n) and not mm_tn(a[:0], c[:0]).any()
