"""relu kernels on every compiled ISA against the scalar `_ref` twin and tests/reference.py, plus
the output-buffer cache the ops layer allocates large outputs from (common/allocator.h)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import cnnfast
import reference as ref
from cnnfast import _core
from isa_util import on_ref

DTYPES = [np.float32, np.float64]
# around the vector widths and the 4x unroll (4, 8, 16 lanes; 16..64 per unrolled step), the
# 64-element parallel unit, and one size above the 8 MiB streaming-store threshold (float32)
SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1000, 40_001, 2_100_003]


def special_values(rng, n, dtype):
    x = rng.standard_normal(n).astype(dtype)
    if n >= 8:
        x[rng.integers(0, n, max(1, n // 7))] = 0.0
        x[rng.integers(0, n, max(1, n // 9))] = -0.0
        x[rng.integers(0, n, max(1, n // 11))] = np.nan
        x[rng.integers(0, n, max(1, n // 13))] = -np.inf
    return x


def assert_same(a, b):
    """Bitwise equal, except that every NaN matches every NaN (the sign of zero must match)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    m = ~np.isnan(a)
    np.testing.assert_array_equal(a[m], b[m])
    np.testing.assert_array_equal(np.signbit(a[m]), np.signbit(b[m]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_fast_matches_ref(isa, rng, dtype, n):
    x = special_values(rng, n, dtype)
    gy = rng.standard_normal(n).astype(dtype)
    y = cnnfast.relu(x)
    assert_same(y, on_ref(cnnfast.relu, x))
    assert_same(y, ref.relu(x))
    gx = cnnfast.relu_backward(gy, x)
    assert_same(gx, on_ref(cnnfast.relu_backward, gy, x))
    assert_same(gx, ref.relu_backward(gy, x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [1, 3])
def test_misaligned_buffers(isa, rng, dtype, offset):
    # views starting mid-vector: the streaming path peels a scalar head until the output aligns
    n = 2_100_003 if dtype == np.float32 else 1_100_003
    buf = special_values(rng, n + offset, dtype)
    x = buf[offset:]
    out = np.empty(n + 2, dtype)[2:]
    got = cnnfast.relu(x, out=out)
    assert got is out
    assert_same(out, ref.relu(x))
    gy = rng.standard_normal(n + offset).astype(dtype)[offset:]
    assert_same(cnnfast.relu_backward(gy, x, out=out), ref.relu_backward(gy, x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(isa, dtype):
    x = np.array([np.nan, -0.0, 0.0, -np.inf, np.inf, -1e-30, 1e-30, -2.0, 3.0] * 3, dtype)
    y = cnnfast.relu(x)
    assert np.isnan(y[0])  # NaN stays NaN
    assert y[1] == 0 and np.signbit(y[1])  # -0.0 kept as is (x < 0 is false), as the reference
    np.testing.assert_array_equal(y[2:9], np.array([0, 0, np.inf, 0, 1e-30, 0, 3.0], dtype))
    gy = np.full_like(x, 5.0)
    gx = cnnfast.relu_backward(gy, x)
    # gradient 0 at x <= 0 (exactly 0 and -0.0 included, as torch.relu); NaN x passes it through
    np.testing.assert_array_equal(gx[:9], np.array([5, 0, 0, 0, 5, 0, 5, 0, 5], dtype))


def test_matches_torch(isa, rng):
    torch = pytest.importorskip("torch")
    x = special_values(rng, 1001, np.float32)
    gy = rng.standard_normal(1001).astype(np.float32)
    yt = torch.relu(torch.from_numpy(x)).numpy()
    y = cnnfast.relu(x)
    np.testing.assert_array_equal(y, yt)  # value-equal (the sign of a zero result may differ)
    gxt = torch.ops.aten.threshold_backward(torch.from_numpy(gy), torch.from_numpy(x), 0).numpy()
    np.testing.assert_array_equal(cnnfast.relu_backward(gy, x), gxt)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_and_out(isa, rng, dtype):
    x = special_values(rng, 5000, dtype).reshape(50, 100)
    expect = ref.relu(x)
    out = np.empty_like(x)
    assert cnnfast.relu(x, out=out) is out
    assert_same(out, expect)
    xc = x.copy()
    assert cnnfast.relu_(xc) is xc
    assert_same(xc, expect)
    xc = x.copy()
    assert cnnfast.relu(xc, inplace=True) is xc
    assert_same(xc, expect)
    # backward in place over grad_output
    gy = rng.standard_normal(x.shape).astype(dtype)
    expect_g = ref.relu_backward(gy, x)
    assert cnnfast.relu_backward(gy, x, out=gy) is gy
    assert_same(gy, expect_g)


@pytest.mark.parametrize("fn", ["relu", "relu_backward"])
def test_out_errors(fn):
    x = np.ones((4, 6), np.float32)
    call = (
        (lambda out: cnnfast.relu(x, out=out)) if fn == "relu" else (lambda out: cnnfast.relu_backward(x, x, out=out))
    )
    with pytest.raises(ValueError, match="dtype"):
        call(np.empty((4, 6), np.float64))
    with pytest.raises(ValueError, match=r"size \(4, 5\)"):
        call(np.empty((4, 5), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        call(np.empty((6, 4), np.float32).T)
    ro = np.empty((4, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        call(ro)


def test_inplace_needs_contiguous_writeable():
    x = np.ones((6, 4), np.float32)
    with pytest.raises(ValueError, match="inplace"):
        cnnfast.relu_(x.T)
    with pytest.raises(ValueError, match="inplace"):
        cnnfast.relu_(np.ones(4, np.int32))


def test_thread_count_independent(isa, rng):
    x = special_values(rng, 300_001, np.float32)
    gy = rng.standard_normal(x.size).astype(np.float32)
    prev = cnnfast.get_num_threads()
    try:
        res = []
        for nt in (1, 2, 3):
            cnnfast.set_num_threads(nt)
            res.append((cnnfast.relu(x), cnnfast.relu_backward(gy, x)))
    finally:
        cnnfast.set_num_threads(prev)
    for y, gx in res[1:]:
        assert_same(y, res[0][0])
        assert_same(gx, res[0][1])


# --- the output-buffer cache (csrc/common/allocator.h) ---------------------------------------


def data_ptr(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def cache():
    """A fresh, enabled cache; restores the previous bound afterwards."""
    gc.collect()
    _core.empty_cache()
    prev = _core.set_cache_limit(64 << 20)
    yield _core
    _core.set_cache_limit(prev)
    _core.empty_cache()


def test_cache_reuses_freed_outputs(isa, rng, cache):
    x = rng.standard_normal(1 << 19).astype(np.float32)  # 2 MiB: above the cache threshold (128 KiB)
    y = cnnfast.relu(x)
    p = data_ptr(y)
    assert p % (2 << 20) == 0  # fresh large blocks are 2 MiB aligned (transparent huge pages)
    del y
    info = cache.cache_info()
    assert info["cached_blocks"] == 1 and info["cached_bytes"] >= x.nbytes
    x2 = -x
    y2 = cnnfast.relu(x2)  # same size class: gets the freed block back ...
    assert data_ptr(y2) == p
    assert cache.cache_info()["hits"] == info["hits"] + 1
    assert_same(y2, ref.relu(x2))  # ... and fully overwrites what it held
    y3 = cnnfast.relu(x)  # y2 still alive: a different block
    assert data_ptr(y3) != p
    assert_same(y3, ref.relu(x))
    assert_same(y2, ref.relu(x2))


def test_cached_arrays_outlive_their_inputs(rng, cache):
    ys = [cnnfast.relu(rng.standard_normal(300_000)) for _ in range(3)]  # inputs die at once
    keep = [y.copy() for y in ys]
    view = ys[0][10:20]
    del ys[0]
    gc.collect()
    for _ in range(3):  # churn the cache: must not hand out memory a view still uses
        z = cnnfast.relu(rng.standard_normal(300_000))
        del z
    np.testing.assert_array_equal(view, keep[0][10:20])
    for y, k in zip(ys, keep[1:]):
        np.testing.assert_array_equal(y, k)


def test_cache_bound_and_empty(rng, cache):
    x = rng.standard_normal(1 << 19).astype(np.float32)
    ys = [cnnfast.relu(x) for _ in range(4)]
    del ys
    assert cache.cache_info()["cached_blocks"] == 4
    cache.set_cache_limit(5 << 20)  # room for two 2 MiB blocks: the oldest are unmapped
    assert cache.cache_info()["cached_blocks"] == 2
    assert cache.empty_cache() >= 2 * x.nbytes
    assert cache.cache_info()["cached_bytes"] == 0
    cache.set_cache_limit(0)  # disabled: freed blocks go straight back to the OS
    y = cnnfast.relu(x)
    del y
    assert cache.cache_info()["cached_blocks"] == 0
    small = cnnfast.relu(x[:1000])  # below the threshold: NumPy's own allocation
    assert small.base is None


def test_backward_outputs_from_cache_are_zeroed(rng, cache):
    # max_pool2d backward writes gx with a scatter; a reused gx block must be cleared first
    x = rng.standard_normal((2, 8, 128, 128)).astype(np.float32)  # gx = 1 MiB
    gx = cnnfast.relu_backward(np.full_like(x, 7.0), np.ones_like(x))  # fills a block with 7s
    del gx
    y, idx = cnnfast.max_pool2d(x, 2, 2, return_indices=True)
    g = cnnfast.max_pool2d_backward(np.ones_like(y), x, idx, 2, 2)
    assert g.sum() == y.size and set(np.unique(g)) == {0.0, 1.0}
