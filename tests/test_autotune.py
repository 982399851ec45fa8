"""The conv2d autotuner (csrc/dispatch/autotune.h): on the first call of a new configuration it
times every kernel of the selected ISA that can compute it -- also those the thresholds skip --
caches the fastest and runs it on later calls.

Which kernel wins depends on the machine and its load, so the tests never assert a winner: they
assert that the tuning call and later calls are correct for every pass (bwd_weight's grad_bias
included, so running several candidates into one buffer must not double-count), that the cache
records a winner among the timed candidates, that a cached configuration is not re-timed, that
the key separates threads and ISAs, that off restores the ordered list, the environment
variable, and concurrent first calls. Every kernel is also checked on its own with thresholds
relaxed (the configurations only the tuner gives it), since any of them may win somewhere.

Tolerances are derived from the sums computed: |got - want| <= tol * sum |terms| elementwise
(the same convolution of |x| and |w|), with tol = 1e-4 for float32 (Winograd's transforms round
more than a direct sum) and 1e-11 for float64.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import cnnfast
from cnnfast import _core
import reference as ref
from isa_util import using_isa

SIMD = [isa for isa in ("avx2", "avx512") if isa in cnnfast.available_isas()]
needs_simd = pytest.mark.skipif(not SIMD, reason="no SIMD ISA on this CPU/build: nothing to tune")


@pytest.fixture(autouse=True)
def tuner_on():
    """Autotune on, an empty cache and no pinned kernel for each test; restore afterwards."""
    prev = cnnfast.get_autotune()
    cnnfast.set_autotune(True)
    cnnfast.clear_autotune_cache()
    yield
    _core._pin_conv2d_kernel(None)
    cnnfast.set_autotune(prev)
    cnnfast.clear_autotune_cache()


def _tol(dtype):
    return 1e-4 if dtype == np.float32 else 1e-11


def _assert_close(got, want, scale, dtype, what):
    err = np.abs(got.astype(np.float64) - want)
    bound = _tol(dtype) * scale + 1e-30
    worst = np.unravel_index(np.argmax(err / bound), err.shape) if err.size else ()
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    assert np.all(err <= bound), (
        f"{what}: error {err[worst]:.3g} at {worst} exceeds {bound[worst]:.3g} "
        f"(tol {_tol(dtype)} x sum |terms| {scale[worst]:.3g})"
    )


class Case:
    """One conv2d configuration with its float64 oracle (tests/reference.py) for every pass."""

    def __init__(self, rng, x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, dtype=np.float32):
        self.dtype = dtype
        self.x = rng.standard_normal(x_shape).astype(dtype)
        self.w = rng.standard_normal(w_shape).astype(dtype)
        self.b = rng.standard_normal(w_shape[0]).astype(dtype)
        self.args = (ref._pair(stride), ref._pair(padding), ref._pair(dilation), groups)
        x64, w64 = self.x.astype(np.float64), self.w.astype(np.float64)
        self.y = ref.conv2d(x64, w64, self.b.astype(np.float64), *self.args)
        self.gy = rng.standard_normal(self.y.shape).astype(dtype)
        gy64 = self.gy.astype(np.float64)
        self.gx, self.gw, self.gb = ref.conv2d_backward(gy64, x64, w64, *self.args)
        ax, aw, agy = np.abs(x64), np.abs(w64), np.abs(gy64)
        self.y_scale = ref.conv2d(ax, aw, np.abs(self.b.astype(np.float64)), *self.args)
        self.gx_scale, self.gw_scale, self.gb_scale = ref.conv2d_backward(agy, ax, aw, *self.args)

    def fwd(self):
        return _core.conv2d_forward(self.x, self.w, self.b, *self.args, False)

    def bwd_input(self):
        return _core.conv2d_backward_input(list(self.x.shape), self.gy, self.w, *self.args)

    def bwd_weight(self):
        return _core.conv2d_backward_weight(self.x, list(self.w.shape), self.gy, *self.args, True)

    def run(self, pass_):
        return getattr(self, pass_)()

    def check(self, pass_, out, what=""):
        what = f"{pass_} {self.x.shape} {self.w.shape} {self.args} {what}"
        if pass_ == "fwd":
            _assert_close(out, self.y, self.y_scale, self.dtype, what)
        elif pass_ == "bwd_input":
            _assert_close(out, self.gx, self.gx_scale, self.dtype, what)
        else:
            gw, gb = out
            _assert_close(gw, self.gw, self.gw_scale, self.dtype, what + " grad_weight")
            _assert_close(gb, self.gb, self.gb_scale, self.dtype, what + " grad_bias")


PASSES = ["fwd", "bwd_input", "bwd_weight"]
# Above the tuning threshold (2**20 multiply-adds), with several candidates on AVX2/AVX-512:
# 3x3 stride 1 (dense, Winograd, GEMM), depthwise (direct, GEMM), a strided 5x5.
TUNED = [
    dict(x_shape=(2, 32, 18, 18), w_shape=(32, 32, 3, 3), padding=1),
    dict(x_shape=(4, 64, 32, 32), w_shape=(64, 1, 3, 3), padding=1, groups=64),
    dict(x_shape=(2, 16, 21, 21), w_shape=(48, 16, 5, 5), stride=2, padding=2),
    # 8 M multiply-adds and 4 images or more are screened on 1/8 of the images first (buffers
    # are prefixes of the real ones).
    dict(x_shape=(8, 16, 24, 24), w_shape=(32, 16, 3, 3), padding=1),
    dict(x_shape=(4, 64, 24, 24), w_shape=(64, 16, 3, 3), padding=1, groups=4),
]


def _entries(pass_=None):
    return [e for e in cnnfast.autotune_cache() if pass_ is None or e["pass"] == pass_]


@needs_simd
@pytest.mark.parametrize("isa_name", SIMD)
@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("cfg", TUNED, ids=["3x3", "depthwise", "5x5s2", "screened-8", "screened-grouped-4"])
def test_tuning_call_and_cached_calls_are_correct(rng, isa_name, pass_, cfg):
    case = Case(rng, **cfg)
    with using_isa(isa_name):
        before = _core._autotune_counters()
        first = case.run(pass_)
        mid = _core._autotune_counters()
        second = case.run(pass_)
        after = _core._autotune_counters()
    case.check(pass_, first, "(tuning call)")
    case.check(pass_, second, "(cached winner)")
    (e,) = _entries(pass_)
    assert e["isa"] == isa_name and e["input"] == cfg["x_shape"] and e["weight"] == cfg["w_shape"]
    assert e["winner"] in e["times_ms"] and (e["heuristic"] is None or e["heuristic"] in e["times_ms"])
    assert e["winner"].startswith(f"conv2d_{pass_}_f32_{isa_name}")
    assert all(t > 0 for t in e["times_ms"].values()) and e["first_call_ms"] > 0
    macs = np.prod(e["output"]) * np.prod(e["weight"][1:])
    assert (e["screened"] > 0) == (macs >= 8 << 20 and cfg["x_shape"][0] >= 4)
    assert mid["tunings"] == before["tunings"] + 1
    # The second call is a cache hit: no tuning, no timed run; the tuning call returned the winner's output.
    assert after["tunings"] == mid["tunings"] and after["timed_runs"] == mid["timed_runs"]
    assert after["hits"] == mid["hits"] + 1
    assert cnnfast.runtime_info()["last_kernels"][f"conv2d_{pass_}_f32"] == e["winner"]
    for a, b in zip(first if pass_ == "bwd_weight" else [first], second if pass_ == "bwd_weight" else [second]):
        np.testing.assert_array_equal(a, b)


@needs_simd
def test_bwd_weight_with_bias_on_the_tuning_call_does_not_double_count(rng):
    # Every candidate writes grad_weight and grad_bias into the same buffers in turn: they must
    # overwrite, not accumulate. Several configurations, float32 and float64.
    for dtype in (np.float32, np.float64):
        for cfg in TUNED:
            case = Case(rng, dtype=dtype, **cfg)
            cnnfast.clear_autotune_cache()
            gw, gb = case.bwd_weight()
            case.check("bwd_weight", (gw, gb), f"{np.dtype(dtype).name} tuning call")
            (e,) = _entries("bwd_weight")
            assert len(e["times_ms"]) >= 1


@needs_simd
def test_switching_off_restores_the_ordered_list(rng):
    case = Case(rng, **TUNED[0])
    case.fwd()
    (e,) = _entries()
    cnnfast.set_autotune(False)
    assert cnnfast.get_autotune() is False and cnnfast.runtime_info()["autotune"] is False
    before = _core._autotune_counters()
    y = case.fwd()
    after = _core._autotune_counters()
    case.check("fwd", y, "(autotune off)")
    assert after["hits"] == before["hits"] and after["tunings"] == before["tunings"]
    assert after["untuned"] == before["untuned"] + 1
    assert cnnfast.runtime_info()["last_kernels"]["conv2d_fwd_f32"] == e["heuristic"]
    # A new shape while off is not tuned either.
    Case(rng, (2, 32, 20, 20), (32, 32, 3, 3), padding=1).fwd()
    assert len(_entries()) == 1


@needs_simd
def test_thread_count_and_isa_changes_retune(rng):
    case = Case(rng, **TUNED[0])
    threads = cnnfast.get_num_threads()
    try:
        with using_isa(SIMD[-1]):
            case.check("fwd", case.fwd())
            cnnfast.set_num_threads(1 if threads > 1 else 2)
            case.check("fwd", case.fwd())
            cnnfast.set_num_threads(threads)
            case.fwd()  # cached
        if len(SIMD) > 1:
            with using_isa(SIMD[0]):
                case.check("fwd", case.fwd())
    finally:
        cnnfast.set_num_threads(threads)
    keys = {(e["isa"], e["threads"]) for e in _entries()}
    expected = {(SIMD[-1], threads), (SIMD[-1], 1 if threads > 1 else 2)} | (
        {(SIMD[0], threads)} if len(SIMD) > 1 else set()
    )
    assert keys == expected


@needs_simd
def test_winograd_switch_is_part_of_the_key(rng):
    case = Case(rng, **TUNED[0])
    case.fwd()
    prev = cnnfast.get_winograd()
    try:
        cnnfast.set_winograd(False)
        case.check("fwd", case.fwd())
        off = [e for e in _entries() if not e["winograd"]]
        assert len(off) == 1 and not any("winograd" in k for k in off[0]["times_ms"])
    finally:
        cnnfast.set_winograd(prev)
    assert len(_entries()) == 2


@needs_simd
def test_small_problems_and_ref_are_not_tuned(rng):
    small = Case(rng, (1, 4, 8, 8), (8, 4, 3, 3), padding=1)  # 18 k multiply-adds
    small.check("fwd", small.fwd())
    big = Case(rng, **TUNED[0])
    with using_isa("ref"):
        big.check("fwd", big.fwd())
    assert _entries() == []


@needs_simd
def test_clear_autotune_cache_forgets(rng):
    case = Case(rng, **TUNED[0])
    case.fwd()
    assert len(_entries()) == 1 and cnnfast.runtime_info()["autotune_entries"] == 1
    cnnfast.clear_autotune_cache()
    assert _entries() == []
    before = _core._autotune_counters()["tunings"]
    case.fwd()
    assert _core._autotune_counters()["tunings"] == before + 1


@needs_simd
def test_concurrent_first_calls_of_one_new_shape(rng):
    case = Case(rng, (4, 32, 18, 18), (48, 32, 3, 3), padding=1)
    barrier = threading.Barrier(2)
    results, errors = [None, None], []

    def run(i):
        try:
            barrier.wait()
            results[i] = [case.fwd() for _ in range(3)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for rs in results:
        for y in rs:
            case.check("fwd", y, "(concurrent)")
    assert len(_entries()) == 1  # tuned once: the other thread ran the ordered list meanwhile


def test_set_autotune_rejects_non_bool():
    with pytest.raises(TypeError, match="set_autotune"):
        cnnfast.set_autotune(1)


def _python(code, **env):
    e = dict(os.environ)
    e.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=e, cwd=os.path.dirname(__file__)
    )


def test_environment_variable():
    code = "import cnnfast; print(cnnfast.get_autotune())"
    assert _python(code, CNNFAST_AUTOTUNE="0").stdout.strip() == "False"
    assert _python(code, CNNFAST_AUTOTUNE="1").stdout.strip() == "True"
    r = _python(code, CNNFAST_AUTOTUNE="yes")
    assert r.returncode != 0 and "CNNFAST_AUTOTUNE must be 0 or 1, got 'yes'" in r.stderr


# Every kernel on its own, with the thresholds relaxed: configurations only the tuner gives it.
RELAXED = [
    dict(x_shape=(2, 16, 12, 12), w_shape=(48, 16, 3, 3), padding=1),  # dense: K > 32
    dict(x_shape=(1, 72, 10, 9), w_shape=(16, 72, 3, 3), padding=1),  # dense: C*R*S > 512; Winograd
    dict(x_shape=(1, 8, 9, 11), w_shape=(4, 8, 3, 3), padding=1),  # Winograd: Cin < 16, Cout < 8
    dict(x_shape=(1, 24, 5, 6), w_shape=(40, 24, 3, 3), padding=2),  # Winograd: few tiles
    dict(x_shape=(2, 40, 14, 13), w_shape=(4, 40, 3, 3), padding=1),  # bwd_input "full": K < 8
    dict(x_shape=(2, 12, 15, 16), w_shape=(40, 12, 5, 3), stride=(2, 1), padding=(2, 1)),  # bwd_input col2im, sh 2
    dict(x_shape=(1, 6, 70, 66), w_shape=(36, 6, 3, 3), padding=1),  # plane > 64 KiB
    dict(x_shape=(2, 9, 13, 12), w_shape=(33, 9, 3, 3), dilation=2, padding=2, stride=2),
    dict(x_shape=(2, 32, 9, 9), w_shape=(32, 1, 3, 3), padding=1, groups=32),  # depthwise
    dict(x_shape=(2, 16, 10, 10), w_shape=(32, 4, 3, 3), padding=1, groups=4),  # grouped
]


def _kernels(isa_name, pass_, dtype):
    return [
        f"{op}_{d}_{dt}_{i}{v}"
        for op, d, dt, i, v in _core._kernel_list()
        if op == "conv2d" and d == pass_ and dt == dtype and i == isa_name
    ]


@needs_simd
@pytest.mark.parametrize("isa_name", SIMD)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("pass_", PASSES)
def test_every_kernel_with_thresholds_relaxed(rng, isa_name, dtype, pass_):
    dt = "f32" if dtype == np.float32 else "f64"
    names = _kernels(isa_name, pass_, dt)
    assert names
    with using_isa(isa_name):
        for cfg in RELAXED:
            case = Case(rng, dtype=dtype, **cfg)
            for name in names:
                _core._pin_conv2d_kernel(name)
                try:
                    out = case.run(pass_)
                finally:
                    _core._pin_conv2d_kernel(None)
                case.check(
                    pass_, out, f"pinned {name} ran {cnnfast.runtime_info()['last_kernels'][f'conv2d_{pass_}_{dt}']}"
                )


def test_pin_rejects_unknown_kernel():
    with pytest.raises(ValueError, match="no conv2d kernel named 'conv2d_fwd_f32_nope'"):
        _core._pin_conv2d_kernel("conv2d_fwd_f32_nope")


def test_show_runtime_mentions_autotune(capsys):
    cnnfast.show_runtime()
    assert "autotune      : on, " in capsys.readouterr().out
