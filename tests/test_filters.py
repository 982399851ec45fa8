"""cnnfast.filters vs a NumPy loop reference (always) and scipy.ndimage (when installed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnfast.filters as F
from cnnfast.datasets import sample_image

MODES = ["constant", "reflect", "mirror", "nearest", "wrap"]
NP_PAD = {"constant": "constant", "reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}


def ref_correlate(image, kernel, mode="constant", cval=0.0, stride=1):
    """The definition, written out: pad (np.pad), then a loop over the kernel taps. (H, W) float64."""
    x = np.asarray(image, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    kh, kw = k.shape
    h, w = x.shape
    pads = ((kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2))
    x = np.pad(x, pads, constant_values=cval) if mode == "constant" else np.pad(x, pads, mode=NP_PAD[mode])
    out = np.zeros((h, w))
    for a in range(kh):
        for b in range(kw):
            out += k[a, b] * x[a : a + h, b : b + w]
    s = (stride, stride) if np.isscalar(stride) else stride
    return out[:: s[0], :: s[1]]


def ref_layout(image, kernel, **kw):
    """Apply ref_correlate per channel for (H, W), (H, W, C) and (N, H, W, C)."""
    x = np.asarray(image)
    if x.ndim == 2:
        return ref_correlate(x, kernel, **kw)
    if x.ndim == 3:
        return np.stack([ref_correlate(x[..., c], kernel, **kw) for c in range(x.shape[2])], axis=-1)
    return np.stack([ref_layout(im, kernel, **kw) for im in x])


try:
    import scipy.ndimage as ndi
except ImportError:  # the scipy comparisons skip; the NumPy reference ones still run
    ndi = None

TOL = {np.uint8: 1e-5, np.float32: 1e-5, np.float64: 1e-12}


def _image(rng, shape, dtype):
    if dtype == np.uint8:
        return rng.integers(0, 256, shape).astype(np.uint8)
    return rng.random(shape).astype(dtype)


# ------------------------------------------------------------------------------------------------
# correctness
# ------------------------------------------------------------------------------------------------


def test_lecture_example():
    img = np.array([[4, 2, 0, 0], [3, 2, 3, 8], [2, 1, 8, 5], [4, 6, 8, 2]])
    k = np.arange(1, 10).reshape(3, 3)
    out = F.correlate(img, k)  # zero padding: the lecture's 2x2 "valid" result is the interior
    np.testing.assert_array_equal(out[1:3, 1:3], [[142, 189], [225, 230]])
    assert out.shape == (4, 4) and out.dtype == np.float32
    # corner: only the 2x2 bottom-right of the kernel overlaps the image
    assert out[0, 0] == 4 * 5 + 2 * 6 + 3 * 8 + 2 * 9


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(9, 11), (7, 8, 3), (2, 6, 5, 2)], ids=["HW", "HWC", "NHWC"])
@pytest.mark.parametrize("ksize", [(3, 3), (4, 2), (1, 5)], ids=["3x3", "4x2", "1x5"])
def test_correlate_vs_numpy_reference(mode, dtype, shape, ksize, rng):
    img = _image(rng, shape, dtype)
    k = rng.standard_normal(ksize)
    out = F.correlate(img, k, mode=mode, cval=0.5)
    assert out.dtype == (np.float64 if dtype == np.float64 else np.float32)
    assert out.shape == img.shape
    scale = 255.0 if dtype == np.uint8 else 1.0
    np.testing.assert_allclose(
        out, ref_layout(img, k, mode=mode, cval=0.5), rtol=TOL[dtype], atol=TOL[dtype] * scale * np.abs(k).sum()
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["HW", "HWC", "NHWC"])
@pytest.mark.parametrize("ksize", [(3, 3), (5, 5), (2, 4), (6, 1)], ids=["3x3", "5x5", "2x4", "6x1"])
def test_correlate_vs_scipy(mode, dtype, layout, ksize, rng):
    if ndi is None:
        pytest.skip("scipy is not installed")
    shape = {"HW": (10, 13), "HWC": (9, 7, 3), "NHWC": (2, 8, 6, 3)}[layout]
    img = _image(rng, shape, dtype)
    k = rng.standard_normal(ksize)
    # scipy keeps the input dtype (uint8 would wrap), so it gets a float64 copy
    k_nd = k.reshape(ksize + (1,) * (img.ndim - 2)) if layout != "NHWC" else k.reshape((1,) + ksize + (1,))
    expected = ndi.correlate(img.astype(np.float64), k_nd, mode=mode, cval=3.0)
    out = F.correlate(img, k, mode=mode, cval=3.0)
    scale = 255.0 if dtype == np.uint8 else 1.0
    np.testing.assert_allclose(out, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale * np.abs(k).sum())


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    kh=st.integers(1, 7),
    kw=st.integers(1, 7),
    mode=st.sampled_from(MODES),
    sh=st.integers(1, 3),
    sw=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_correlate_small_images_any_kernel_vs_scipy(h, w, kh, kw, mode, sh, sw, seed):
    """Kernels larger than the image: repeated reflection/wrap must still match np.pad and scipy."""
    r = np.random.default_rng(seed)
    img, k = r.random((h, w)), r.standard_normal((kh, kw))
    out = F.correlate(img, k, mode=mode, cval=-1.5, stride=(sh, sw))
    np.testing.assert_allclose(out, ref_correlate(img, k, mode, -1.5, (sh, sw)), rtol=1e-12, atol=1e-12)
    if ndi is not None:
        expected = ndi.correlate(img, k, mode=mode, cval=-1.5)[::sh, ::sw]
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stride", [2, 3, (2, 1)])
def test_stride_samples_the_full_result(mode, stride, rng):
    img = _image(rng, (11, 10, 3), np.float32)
    k = rng.standard_normal((3, 3))
    s = (stride, stride) if isinstance(stride, int) else stride
    full = F.correlate(img, k, mode=mode)
    out = F.correlate(img, k, mode=mode, stride=stride)
    np.testing.assert_allclose(out, full[:: s[0], :: s[1]], rtol=1e-6, atol=1e-6)
    # separable filters apply the stride inside their passes
    np.testing.assert_allclose(
        F.gaussian_blur(img, 1.0, mode=mode, stride=stride),
        F.gaussian_blur(img, 1.0, mode=mode)[:: s[0], :: s[1]],
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ksize", [(3, 3), (2, 2), (4, 3), (1, 4)], ids=["3x3", "2x2", "4x3", "1x4"])
@pytest.mark.parametrize("stride", [1, 2])
def test_convolve_is_correlate_with_the_flipped_kernel(mode, ksize, stride, rng):
    """convolve == scipy.ndimage.convolve, including where even-sized flipped kernels are centred."""
    img = _image(rng, (9, 10, 2), np.float64)
    k = rng.standard_normal(ksize)
    got = F.convolve(img, k, mode=mode, stride=stride)
    assert got.shape == (-(-9 // stride), -(-10 // stride), 2)
    # independent of scipy: the definition, out[i] = sum_a k[a] * padded[i - a + k//2]
    kh, kw = ksize
    want = np.zeros((9, 10, 2))
    for a in range(kh):
        for b in range(kw):
            one = np.zeros((2 * kh - 1, 2 * kw - 1))  # a single tap at offset (kh//2 - a, kw//2 - b)
            one[kh - 1 + kh // 2 - a, kw - 1 + kw // 2 - b] = 1.0
            want += k[a, b] * ref_layout(img, one, mode=mode)
    np.testing.assert_allclose(got, want[::stride, ::stride], rtol=1e-12, atol=1e-12)
    if ndi is not None:
        for ch in range(2):
            np.testing.assert_allclose(
                got[..., ch], ndi.convolve(img[..., ch], k, mode=mode)[::stride, ::stride], rtol=1e-12, atol=1e-12
            )
    if ksize == (3, 3):
        sym = k + k[::-1, ::-1]  # point-symmetric: convolution and correlation agree
        np.testing.assert_allclose(F.convolve(img, sym, mode=mode), F.correlate(img, sym, mode=mode), rtol=1e-12)


def test_channels_first_matches_channels_last(rng):
    img = _image(rng, (2, 8, 9, 3), np.float64)
    k = rng.standard_normal((3, 2))
    nchw = np.ascontiguousarray(img.transpose(0, 3, 1, 2))
    out = F.correlate(nchw, k, mode="reflect", channels_first=True)
    np.testing.assert_allclose(out.transpose(0, 2, 3, 1), F.correlate(img, k, mode="reflect"), rtol=1e-13)
    np.testing.assert_allclose(F.sobel(nchw[0], channels_first=True).transpose(1, 2, 0), F.sobel(img[0]), rtol=1e-13)


def test_non_contiguous_and_int_inputs(rng):
    img = _image(rng, (12, 14, 4), np.uint8)
    view = img[::2, 1::2, ::2]  # strided view, 2 channels
    k = F.kernels.box(3)
    np.testing.assert_allclose(F.correlate(view, k), ref_layout(view, k), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(F.correlate(img.astype(np.int16), k), F.correlate(img, k))
    assert F.correlate(img.astype(bool), k).dtype == np.float32


def test_correlate_separable_equals_outer_product(rng):
    img = _image(rng, (9, 10, 2), np.float64)
    kr, kc = rng.standard_normal(5), rng.standard_normal(4)
    for mode in MODES:
        np.testing.assert_allclose(
            F.correlate_separable(img, kr, kc, mode=mode, cval=2.0),
            F.correlate(img, np.outer(kr, kc), mode=mode, cval=2.0),
            rtol=1e-12,
            atol=1e-12,
        )
    np.testing.assert_allclose(F.correlate_separable(img, [2.0], kc), F.correlate(img, 2 * kc[None]), rtol=1e-13)
    np.testing.assert_allclose(F.correlate_separable(img, kr, [3.0]), F.correlate(img, 3 * kr[:, None]), rtol=1e-13)


def test_empty_image_gives_empty_result():
    assert F.correlate(np.zeros((0, 5)), np.ones((3, 3))).shape == (0, 5)
    assert F.sobel(np.zeros((0, 4, 4, 3), np.uint8), stride=2).shape == (0, 2, 2, 3)


# ------------------------------------------------------------------------------------------------
# named filters vs scipy
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_named_filters_vs_scipy(mode, dtype, rng):
    if ndi is None:
        pytest.skip("scipy is not installed")
    img = _image(rng, (12, 15, 3), dtype)
    f = img.astype(np.float64)
    per_channel = lambda fn: np.stack([fn(f[..., c]) for c in range(3)], axis=-1)  # noqa: E731
    tol = dict(rtol=1e-5, atol=1e-3 if dtype == np.uint8 else 1e-5)
    kw = dict(mode=mode, cval=1.0)
    for axis in (0, 1):
        np.testing.assert_allclose(
            F.sobel(img, axis, mode=mode), per_channel(lambda a: ndi.sobel(a, axis, mode=mode)), **tol
        )
        np.testing.assert_allclose(
            F.prewitt(img, axis, mode=mode), per_channel(lambda a: ndi.prewitt(a, axis, mode=mode)), **tol
        )
    np.testing.assert_allclose(F.laplace(img, **kw), per_channel(lambda a: ndi.laplace(a, **kw)), **tol)
    for size in (3, 4, (2, 5)):
        s = (size, size) if isinstance(size, int) else size
        np.testing.assert_allclose(F.box_blur(img, size, **kw), ndi.uniform_filter(f, s + (1,), **kw), **tol)
    for sigma, truncate in ((1.0, 4.0), (0.7, 2.0), ((1.5, 0.0), 4.0)):
        s = (sigma, sigma) if np.isscalar(sigma) else sigma
        np.testing.assert_allclose(
            F.gaussian_blur(img, sigma, truncate=truncate, **kw),
            ndi.gaussian_filter(f, s + (0,), truncate=truncate, **kw),
            **tol,
        )


def test_sobel_magnitude_direction_and_kernels(rng):
    img = _image(rng, (10, 12), np.float64)
    gx = F.correlate(img, F.kernels.sobel_x(), mode="reflect")
    gy = F.correlate(img, F.kernels.sobel_y(), mode="reflect")
    np.testing.assert_allclose(F.sobel(img, axis=1), gx, rtol=1e-13)
    np.testing.assert_allclose(F.sobel(img, axis=-2), gy, rtol=1e-13)
    np.testing.assert_allclose(F.sobel(img), np.hypot(gx, gy), rtol=1e-13)
    np.testing.assert_allclose(F.sobel_direction(img), np.arctan2(gy, gx), rtol=1e-13)
    # a horizontal ramp brightening to the right: d/dx > 0 (8 = 1+2+1 times the slope 2), d/dy = 0
    ramp = np.tile(np.arange(6.0), (5, 1))
    np.testing.assert_allclose(F.sobel(ramp, axis=1, mode="nearest")[:, 1:-1], 8.0)
    np.testing.assert_allclose(F.sobel(ramp, axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(F.sobel_direction(ramp, mode="nearest")[:, 1:-1], 0.0, atol=1e-12)


def test_kernel_constructors():
    k = F.kernels
    np.testing.assert_array_equal(k.sobel_x(), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(k.sobel_y(), k.sobel_x().T)
    np.testing.assert_array_equal(k.sharpen(), [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    assert k.box(5).sum() == pytest.approx(1.0) and k.box(4).shape == (4, 4)
    g = k.gaussian(1.0)
    assert g.shape == (9, 9) and g.sum() == pytest.approx(1.0) and g.argmax() == 40
    assert k.gaussian(2.0, size=5).shape == (5, 5)
    assert k.gaussian_1d(0.0).tolist() == [1.0]
    ident = k.identity(5)
    img = np.random.default_rng(0).random((6, 7))
    np.testing.assert_allclose(F.correlate(img, ident), img, rtol=1e-6)
    assert k.sobel_x() is not k.sobel_x()  # fresh arrays: editing one never changes the filters
    # sharpen = identity - laplace, emboss keeps the mean of a flat image
    flat = np.full((5, 5), 7.0)
    np.testing.assert_allclose(F.sharpen(flat), 7.0)
    np.testing.assert_allclose(F.emboss(flat), 7.0)


def test_to_uint8():
    a = np.array([-3.2, 0.4, 0.6, 254.6, 300.0])
    np.testing.assert_array_equal(F.to_uint8(a), [0, 0, 1, 255, 255])
    assert F.to_uint8(a).dtype == np.uint8
    with pytest.raises(ValueError, match=r"outside \[0, 255\]"):
        F.to_uint8(a, clip=False)
    np.testing.assert_array_equal(F.to_uint8(np.array([10.0, 20.0]), clip=False), [10, 20])
    np.testing.assert_array_equal(F.to_uint8(np.array([-1.0, 0.0, 1.0]), rescale=True), [0, 128, 255])
    np.testing.assert_array_equal(F.to_uint8(np.full(3, 5.0), rescale=True), [0, 0, 0])
    with pytest.raises(ValueError, match="NaN"):
        F.to_uint8(np.array([np.nan]))
    img = sample_image("camera")
    np.testing.assert_array_equal(F.to_uint8(F.correlate(img, F.kernels.identity())), img)


def test_blur_on_sample_images_keeps_mean():
    for name, shape in (("camera", (512, 512)), ("astronaut", (256, 256, 3))):
        img = sample_image(name)
        assert img.shape == shape and img.dtype == np.uint8 and img.std() > 10
        out = F.box_blur(img, 5)
        assert out.shape == shape
        assert abs(out.mean() - img.mean()) < 0.5  # 'reflect' borders keep the mean (almost exactly)
        assert out.std() < img.std()  # and blurring smooths


def test_sample_image_errors_and_copies():
    with pytest.raises(ValueError, match="astronaut, camera"):
        sample_image("lena")
    a = sample_image("camera")
    a[:] = 0
    assert sample_image("camera").std() > 0  # each call gives a fresh array


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: F.correlate(np.zeros(5), np.ones((3, 3))), ValueError, r"grayscale \(H, W\).*shape \(5,\)"),
        (lambda: F.correlate(np.zeros((1, 2, 3, 4, 5)), np.ones((3, 3))), ValueError, "got an array of shape"),
        (lambda: F.correlate(np.zeros((4, 4)), np.ones((3, 3, 1))), ValueError, r"kernel must be 2-D.*\(3, 3, 1\)"),
        (lambda: F.correlate(np.zeros((4, 4)), np.ones(3)), ValueError, "kernel must be 2-D"),
        (lambda: F.correlate(np.zeros((4, 4)), np.zeros((0, 3))), ValueError, "must not be empty"),
        (lambda: F.correlate(np.zeros((4, 4)), [[1, np.nan]]), ValueError, "NaN or infinity"),
        (lambda: F.correlate(np.zeros((4, 4)), [[1, np.inf]]), ValueError, "NaN or infinity"),
        (
            lambda: F.correlate(np.zeros((4, 4)), np.ones((3, 3)), mode="same"),
            ValueError,
            "unknown mode 'same'; valid modes are 'constant', 'reflect', 'mirror', 'nearest', 'wrap'",
        ),
        (lambda: F.correlate(np.zeros((4, 4)), np.ones((3, 3)), stride=0), ValueError, "stride must be >= 1"),
        (lambda: F.correlate(np.zeros((4, 4)), np.ones((3, 3)), stride=1.5), TypeError, "stride"),
        (lambda: F.correlate(np.zeros((4, 4)), np.ones((3, 3)), cval="0"), TypeError, "cval"),
        (lambda: F.correlate(np.array([["a", "b"]]), np.ones((3, 3))), TypeError, "real numeric image"),
        (lambda: F.correlate(np.zeros((4, 4), complex), np.ones((3, 3))), TypeError, "complex"),
        (lambda: F.correlate("image", np.ones((3, 3))), TypeError, "expected an image array"),
        (lambda: F.correlate(np.zeros((4, 4)), [["x"]]), TypeError, "real numeric kernel"),
        (lambda: F.sobel(np.zeros((4, 4)), axis=2), ValueError, "axis must be None"),
        (lambda: F.box_blur(np.zeros((4, 4)), 0), ValueError, "size must be >= 1"),
        (lambda: F.gaussian_blur(np.zeros((4, 4)), -1.0), ValueError, "sigma must be a finite number >= 0"),
        (lambda: F.gaussian_blur(np.zeros((4, 4)), (1.0, 2.0, 3.0)), ValueError, "sigma must be a number or a pair"),
        (lambda: F.kernels.gaussian(1.0, size=4), ValueError, "positive odd int"),
        (lambda: F.kernels.identity(2), ValueError, "positive odd int"),
        (lambda: F.correlate_separable(np.zeros((4, 4)), np.ones((2, 2)), np.ones(3)), ValueError, "1-D kernels"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
