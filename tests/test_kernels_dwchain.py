"""The one-pass depthwise-separable chain kernels (kernels/dwchain, ``_core.dw_chain_forward``) on
every compiled ISA against a float64 NumPy reference and the scalar ``_ref`` twin; thread-count
independence, declining, errors. Its use by Sequential / ONNX eval programs: test_dw_chain.py."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import _core
from isa_util import on_ref

ACTS = {
    "none": ("none", 1.0, 0.0, 0.0, 0.0),
    "relu": ("relu", 1.0, 0.0, 0.0, 0.0),
    "relu6": ("clamp", 1.0, 0.0, 0.0, 6.0),
    "hardswish": ("hardswish", 1 / 6, 0.5, 0.0, 1.0),
    "hardsigmoid": ("clamp", 1 / 6, 0.5, 0.0, 1.0),
}


def _act64(v, a):
    kind, sa, sb, lo, hi = a
    if kind == "none":
        return v
    if kind == "relu":
        return np.maximum(v, 0)
    t = np.clip(v * sa + sb, lo, hi)
    return v * t if kind == "hardswish" else t


def _fold64(st):
    w, b, bn = (None if a is None else np.asarray(a, np.float64) for a in st[:2]), None, st[2]
    w, b = list(w)
    if bn is not None:
        mean, var, g, beta, eps = bn
        s = (1.0 if g is None else g.astype(np.float64)) / np.sqrt(var.astype(np.float64) + eps)
        w = w * s.reshape(-1, 1, 1, 1)
        b = (0.0 if b is None else b) * s + ((0.0 if beta is None else beta.astype(np.float64)) - mean * s)
    return w, (np.zeros(w.shape[0]) if b is None else b)


def _reference(x, ex, dw, pr, s, p):
    """float64 chain and, per output, a bound on the magnitude of everything summed (the same chain
    on |weights|, |x| and |bias|, each activation's slope bounded by max(1, 2a))."""
    v, m = x.astype(np.float64), np.abs(x.astype(np.float64))

    def pw(v, m, st):
        w, b = _fold64(st)
        w2 = w[:, :, 0, 0]
        out = np.einsum("kc,nchw->nkhw", w2, v) + b.reshape(1, -1, 1, 1)
        mag = np.einsum("kc,nchw->nkhw", np.abs(w2), m) + np.abs(b).reshape(1, -1, 1, 1)
        return _act64(out, st[3:]), mag * max(1.0, 2 * st[4])

    def dwc(v, m, st):
        w, b = _fold64(st)
        R = w.shape[2]
        n, c, h, wd = v.shape
        vp, mp = (np.pad(a, ((0, 0), (0, 0), (p, p), (p, p))) for a in (v, m))
        oh, ow = (h + 2 * p - R) // s + 1, (wd + 2 * p - R) // s + 1
        out = np.zeros((n, c, oh, ow)) + b.reshape(1, -1, 1, 1)
        mag = np.zeros((n, c, oh, ow)) + np.abs(b).reshape(1, -1, 1, 1)
        for r in range(R):
            for q in range(R):
                sl = (slice(None), slice(None), slice(r, r + s * (oh - 1) + 1, s), slice(q, q + s * (ow - 1) + 1, s))
                out += w[:, 0, r, q].reshape(1, -1, 1, 1) * vp[sl]
                mag += np.abs(w[:, 0, r, q]).reshape(1, -1, 1, 1) * mp[sl]
        return _act64(out, st[3:]), mag * max(1.0, 2 * st[4])

    if ex is not None:
        v, m = pw(v, m, ex)
    v, m = dwc(v, m, dw)
    if pr is not None:
        v, m = pw(v, m, pr)
    return v, m


def _stage(rng, o, i, k, act, dtype, bias=True, bn=True):
    w = (rng.standard_normal((o, i, k, k)) / np.sqrt(i * k * k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) * 0.3 if bias else None
    bnt = (
        (
            rng.normal(0, 0.3, o).astype(np.float32),
            rng.uniform(0.5, 2, o).astype(np.float32),
            rng.uniform(0.5, 1.5, o).astype(np.float32),
            rng.normal(0, 0.3, o).astype(np.float32),
            1e-5,
        )
        if bn
        else None
    )
    return (w, b, bnt, *ACTS[act])


# (N, C, E, K, H, W, R, stride, pad, expand act or None, dw act, project act or None)
CASES = [
    (2, 16, 48, 24, 20, 37, 3, 1, 1, "relu6", "relu6", "none"),  # MobileNetV2 body, odd width
    (2, 16, 48, 24, 21, 37, 3, 2, 1, "relu6", "relu6", "none"),  # stride 2, odd height
    (1, 8, 8, 12, 13, 40, 5, 1, 2, None, "hardswish", "hardswish"),  # PP-LCNet: no expand
    (1, 8, 8, 12, 13, 41, 5, 2, 2, None, "hardswish", "hardsigmoid"),
    (3, 5, 20, 20, 9, 35, 7, 1, 3, "hardswish", "relu", None),  # no project
    (3, 5, 20, 20, 9, 40, 7, 2, 3, "relu", "none", None),
    (1, 3, 10, 7, 6, 19, 3, 1, 0, "relu", "relu6", "relu"),  # no padding
    (1, 4, 6, 5, 5, 33, 3, 2, 2, "none", "relu", "relu6"),  # padding R - 1
    (1, 4, 9, 5, 17, 64, 5, 1, 4, "relu6", "relu6", "none"),
    (2, 8, 24, 16, 14, 14, 3, 1, 1, "relu6", "relu6", "none"),  # rows narrower than a vector
    (2, 8, 24, 16, 7, 7, 5, 1, 2, None, "hardswish", "relu"),
    (1, 8, 24, 16, 14, 14, 3, 2, 1, "relu6", "relu6", "none"),  # 14x14 -> 7x7
    (1, 3, 5, 4, 3, 3, 3, 1, 1, "relu", "relu", "none"),
    # planes of at most 4 rows (one block, its zero rows skipped; 1-2 rows: blocks of 2): text-line blocks
    (2, 8, 40, 0, 2, 96, 5, 1, 2, "hardswish", "hardswish", None),  # the rapidocr classifier's 2 x 96
    (1, 6, 22, 9, 3, 50, 5, 1, 2, "relu", "hardswish", "none"),
    (1, 5, 12, 7, 1, 40, 3, 1, 1, "relu6", "relu6", "none"),  # one row
    (1, 4, 10, 5, 2, 33, 7, 1, 3, "relu", "relu6", "hardswish"),  # 7x7 on 2 rows (blocks of 2 rows)
    (2, 4, 9, 0, 4, 23, 7, 1, 3, "none", "relu", None),  # 7x7 on 4 rows
    (1, 4, 8, 6, 3, 30, 3, 1, 0, None, "relu", "relu"),  # no padding: zero rows below only
]


def _run(x, ex, dw, pr, s, p, force=True):
    return _core.dw_chain_forward(x, ex, dw, pr, (s, s), (p, p), force)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_chain_matches_float64_and_ref(isa, rng, dtype, case):
    N, C, E, K, H, W, R, s, p, ea, da, pa = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    ex = _stage(rng, E, C, 1, ea, dtype) if ea else None
    Ed = E if ea else C
    dw = _stage(rng, Ed, 1, R, da, dtype, bias=s == 1, bn=p != 0)
    pr = _stage(rng, K, Ed, 1, pa, dtype, bn=s == 1) if pa else None
    got = _run(x, ex, dw, pr, s, p)
    want, mag = _reference(x, ex, dw, pr, s, p)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 64 * np.finfo(dtype).eps
    np.testing.assert_array_less(np.abs(got - want), tol * mag + 1e-300)
    ref = on_ref(_run, x, ex, dw, pr, s, p)
    np.testing.assert_array_less(np.abs(got.astype(np.float64) - ref), tol * mag + 1e-300)


def test_chain_result_independent_of_threads(rng):
    x = rng.standard_normal((3, 16, 40, 48)).astype(np.float32)
    ex, dw, pr = (
        _stage(rng, 64, 16, 1, "relu6", np.float32),
        _stage(rng, 64, 1, 3, "relu6", np.float32),
        _stage(rng, 24, 64, 1, "none", np.float32),
    )
    prev = cnnfast.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            cnnfast.set_num_threads(t)
            outs.append(_run(x, ex, dw, pr, 1, 1))
    finally:
        cnnfast.set_num_threads(prev)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_chain_declines_small_planes(rng):
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    dw, pr = _stage(rng, 8, 1, 3, "relu", np.float32), _stage(rng, 8, 8, 1, "none", np.float32)
    assert _run(x, None, dw, pr, 1, 1, force=False) is None
    got = _run(x, None, dw, pr, 1, 1, force=True)  # the scalar path runs what the SIMD kernels decline
    want, mag = _reference(x, None, dw, pr, 1, 1)
    np.testing.assert_array_less(np.abs(got - want), 64 * np.finfo(np.float32).eps * mag + 1e-300)


def test_chain_errors(rng):
    x = np.zeros((1, 8, 20, 20), np.float32)
    ex = _stage(rng, 16, 8, 1, "relu", np.float32)
    dw = _stage(rng, 16, 1, 3, "relu", np.float32)
    with pytest.raises(ValueError, match=r"depthwise weight of size \(12, 1, 3, 3\) is not \(16, 1, R, R\)"):
        _run(x, ex, _stage(rng, 12, 1, 3, "relu", np.float32), None, 1, 1)
    with pytest.raises(ValueError, match=r"expand weight of size \(16, 8, 1, 1\) does not take the input's 4"):
        _run(np.zeros((1, 4, 20, 20), np.float32), ex, dw, None, 1, 1)
    with pytest.raises(ValueError, match=r"project weight of size \(5, 7, 1, 1\) does not take the depthwise"):
        _run(x, ex, dw, _stage(rng, 5, 7, 1, "none", np.float32), 1, 1)
    with pytest.raises(ValueError, match="act must be"):
        _run(x, ex, dw[:3] + ("gelu", 1.0, 0.0, 0.0, 0.0), None, 1, 1)
    with pytest.raises(ValueError, match="depthwise weight has dtype float32 but the input has dtype float64"):
        _run(x.astype(np.float64), None, _stage(rng, 8, 1, 3, "relu", np.float32), None, 1, 1)
    with pytest.raises(ValueError, match="input must be 4-D"):
        _run(np.zeros((8, 20, 20), np.float32), None, _stage(rng, 8, 1, 3, "relu", np.float32), None, 1, 1)
    with pytest.raises(ValueError, match="equal on both axes"):
        _core.dw_chain_forward(x, None, _stage(rng, 8, 1, 3, "relu", np.float32), None, (1, 2), (1, 1))
