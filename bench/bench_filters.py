"""cnnfast.filters vs scipy.ndimage on a 1024x1024 RGB image (float32), side by side.

Run:  pytest bench/bench_filters.py --benchmark-columns=median,iqr,rounds --benchmark-sort=name

Each group ("filters-<filter>-<k>x<k>") holds the cnnfast filter at 1 and 2 threads and the SciPy
function a user would call for the same result (scipy.ndimage is single-threaded). Every benchmark
asserts its answer against the other library's, so a fast wrong answer fails instead of winning.
Compare medians within a group: the ratio is what matters, absolute times are machine noise.

SciPy's n-D filters see the channel axis too, so they are called the way that filters each
channel on its own: a (k, k, 1) kernel for correlate, size/sigma 0 or 1 along the channel axis
for uniform/gaussian, and one call per channel for sobel (whose smoothing would otherwise mix
the channels).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
import cnnfast.filters as F

ndi = pytest.importorskip("scipy.ndimage")

SHAPE = (1024, 1024, 3)
SIZES = (3, 5, 7)
# Both libraries accumulate in float32 (cnnfast) / float64 (scipy) on values in [0, 1).
RTOL, ATOL = 1e-4, 1e-5


def _image():
    return np.random.default_rng(2024).random(SHAPE, dtype=np.float32)


IMAGE = _image()
KERNELS = {k: np.random.default_rng(k).standard_normal((k, k)).astype(np.float32) for k in SIZES}


def _scipy_sobel(img):
    return np.stack([ndi.sobel(img[..., c], axis=1, mode="reflect") for c in range(img.shape[2])], axis=-1)


# (group, cnnfast call, scipy call) per case. gaussian: sigma=1 with truncate=k//2 gives a k-tap
# kernel, so the 3/5/7 sizes line up with the others.
CASES = {}
for k in SIZES:
    w = KERNELS[k]
    CASES[f"filters-correlate-{k}x{k}"] = (
        lambda img, w=w: F.correlate(img, w, mode="reflect"),
        lambda img, w=w: ndi.correlate(img, w[:, :, None], mode="reflect"),
    )
    CASES[f"filters-box-{k}x{k}"] = (
        lambda img, k=k: F.box_blur(img, k),
        lambda img, k=k: ndi.uniform_filter(img, size=(k, k, 1), mode="reflect"),
    )
    CASES[f"filters-gaussian-{k}x{k}"] = (
        lambda img, k=k: F.gaussian_blur(img, 1.0, truncate=k // 2),
        lambda img, k=k: ndi.gaussian_filter(img, sigma=(1.0, 1.0, 0.0), truncate=k // 2, mode="reflect"),
    )
CASES["filters-sobel-3x3"] = (lambda img: F.sobel(img, axis=1), _scipy_sobel)

_RESULTS = {}


def _result(group, lib):
    """Each library's answer, computed once (outside timing) to check the other's against."""
    key = (group, lib)
    if key not in _RESULTS:
        _RESULTS[key] = CASES[group][0 if lib == "cnnfast" else 1](IMAGE)
    return _RESULTS[key]


@pytest.fixture
def threads():
    prev = cnnfast.get_num_threads()
    yield
    cnnfast.set_num_threads(prev)


@pytest.mark.parametrize("group", sorted(CASES))
@pytest.mark.parametrize("n_threads", [1, 2], ids=lambda n: f"threads={n}")
def test_cnnfast(benchmark, group, n_threads, threads):
    cnnfast.set_num_threads(n_threads)
    benchmark.group = group
    out = benchmark(CASES[group][0], IMAGE)
    assert out.shape == SHAPE and out.dtype == np.float32
    np.testing.assert_allclose(out, _result(group, "scipy"), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("group", sorted(CASES))
def test_scipy(benchmark, group):
    benchmark.group = group
    out = benchmark(CASES[group][1], IMAGE)
    np.testing.assert_allclose(_result(group, "cnnfast"), out, rtol=RTOL, atol=ATOL)
