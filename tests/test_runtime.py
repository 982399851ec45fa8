"""Runtime: ISA selection (CNNFAST_ISA), show_runtime, threads (OMP_NUM_THREADS, the thread pool), GIL release,
and being a good guest in the host process (environment, OpenMP runtimes, PyTorch, fork)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import cnnfast
import reference as ref


def _run(code, **env):
    e = dict(os.environ)
    for k in ("CNNFAST_ISA", "CNNFAST_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        e.pop(k, None)
    e.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=e, cwd=os.path.dirname(__file__)
    )


def test_cnnfast_isa_env_forces_a_path():
    r = _run("import cnnfast; print(cnnfast.get_isa())", CNNFAST_ISA="ref")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ref"


def test_cnnfast_isa_env_unknown_value_lists_valid_ones():
    r = _run("import cnnfast", CNNFAST_ISA="neon9")
    assert r.returncode != 0
    assert "unknown ISA 'neon9'; valid values are ref, avx2, avx512" in r.stderr


def test_unsupported_isa_is_refused():
    info = cnnfast.runtime_info()
    missing = [i for i in info["compiled_isas"] if i not in info["available_isas"]]
    if not missing:
        pytest.skip("this CPU supports every compiled ISA")
    with pytest.raises(ValueError, match=f"this CPU does not support '{missing[0]}'"):
        cnnfast.set_isa(missing[0])
    r = _run("import cnnfast", CNNFAST_ISA=missing[0])
    assert r.returncode != 0 and "does not support" in r.stderr


def test_default_isa_is_the_best_available():
    r = _run("import cnnfast; print(cnnfast.get_isa())")
    assert r.stdout.strip() == cnnfast.runtime_info()["available_isas"][-1]


def test_show_runtime_reports_everything():
    buf = io.StringIO()
    cnnfast.show_runtime(file=buf)
    text = buf.getvalue()
    for needle in ["compiled ISAs", "selected ISA", "threading", "threads", "conv2d_fwd_f32", "CPU features"]:
        assert needle in text
    assert cnnfast.get_isa() in text


def test_thread_environment_variables():
    assert _run("import cnnfast; print(cnnfast.get_num_threads())", OMP_NUM_THREADS="1").stdout.strip() == "1"
    assert _run("import cnnfast; print(cnnfast.get_num_threads())", CNNFAST_NUM_THREADS="3").stdout.strip() == "3"
    bad = _run("import cnnfast", CNNFAST_NUM_THREADS="zero")
    assert bad.returncode != 0 and "CNNFAST_NUM_THREADS must be a positive integer, got 'zero'" in bad.stderr


def test_threadpoolctl_blas_limits_do_not_touch_cnnfast_threads():
    """cnnfast loads no OpenMP runtime, so BLAS/OpenMP caps set through threadpoolctl leave it alone;
    cnnfast.set_num_threads is its one knob (besides CNNFAST_NUM_THREADS / OMP_NUM_THREADS at import)."""
    pytest.importorskip("threadpoolctl")
    code = (
        "import cnnfast, threadpoolctl\n"
        "assert not [p for p in threadpoolctl.threadpool_info() if p['user_api'] == 'openmp'], threadpoolctl.threadpool_info()\n"
        "with threadpoolctl.threadpool_limits(1):\n"
        "    print(cnnfast.get_num_threads())\n"
    )
    r = _run(code, OMP_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2"]


def test_set_num_threads_roundtrip_and_results_independent_of_threads(rng):
    prev = cnnfast.get_num_threads()
    x = rng.standard_normal((3, 8, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    try:
        outs = []
        for n in (1, 2, 3):
            cnnfast.set_num_threads(n)
            assert cnnfast.get_num_threads() == n
            y = cnnfast.conv2d(x, w, padding=1)
            gi, gw, gb = cnnfast.conv2d_backward(y, x, w, padding=1)
            p, idx = cnnfast.max_pool2d(y, 3, 2, 1, return_indices=True)
            outs.append((y, gi, gw, gb, p, idx))
    finally:
        cnnfast.set_num_threads(prev)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_python_threads_get_single_thread_answers(rng):
    """Several Python threads calling kernels concurrently give the sequential answers."""
    xs = [rng.standard_normal((2, 4, 16, 16)).astype(np.float32) for _ in range(6)]
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)

    def work(x):
        y = cnnfast.conv2d_relu(x, w, padding=1)
        p, idx = cnnfast.max_pool2d(y, 2, return_indices=True)
        gi, gw, _ = cnnfast.conv2d_backward(cnnfast.max_pool2d_backward(p, y, idx, 2), x, w, padding=1)
        return y, p, gi, gw

    expected = [work(x) for x in xs]
    results = [None] * len(xs)
    errors = []

    def run(i):
        try:
            for _ in range(3):
                results[i] = work(xs[i])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, expected):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_kernels_release_the_gil(rng):
    """While one thread is inside a long kernel, another Python thread keeps running."""
    x = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)
    w = rng.standard_normal((32, 16, 5, 5)).astype(np.float32)
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        progress = []
        for _ in range(3):
            c0 = counter[0]
            cnnfast.conv2d(x, w, padding=2)  # tens of milliseconds of C++ on any path
            progress.append(counter[0] - c0)
    finally:
        stop.set()
        t.join()
    # Holding the GIL would freeze the spinner for the whole call (a handful of increments at most).
    assert max(progress) > 1000, progress
    np.testing.assert_allclose(
        cnnfast.conv2d(x[:1], w, padding=2), ref.conv2d(x[:1], w, padding=2), rtol=1e-3, atol=1e-3
    )


def test_output_buffer_cache_controls(rng):
    x = rng.standard_normal((4, 64, 64, 64)).astype(np.float32)  # 4 MiB: cached size class
    prev = cnnfast.cache_info()["limit"]
    try:
        cnnfast.set_cache_limit(64 << 20)
        cnnfast.empty_cache()
        del_me = cnnfast.relu(x)
        del del_me  # the block goes back to the cache ...
        assert cnnfast.cache_info()["cached_bytes"] >= x.nbytes
        hits = cnnfast.cache_info()["hits"]
        y = cnnfast.relu(x)  # ... and is handed out again, fully overwritten
        assert cnnfast.cache_info()["hits"] == hits + 1
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        del y
        assert cnnfast.empty_cache() >= x.nbytes
        assert cnnfast.cache_info()["cached_bytes"] == 0
        with pytest.raises(ValueError, match="non-negative int"):
            cnnfast.set_cache_limit(-1)
    finally:
        cnnfast.set_cache_limit(prev)


@pytest.mark.parametrize(
    "shape, cached",
    [
        ((64, 6, 24, 24), True),  # 884 KB: LeNet activations
        ((64, 16, 8, 8), True),  # 256 KB
        ((64, 16, 4, 4), False),
    ],
)  # 64 KB: left to malloc
def test_mid_sized_outputs_are_cached_too(rng, shape, cached):
    """Training-step activations (128 KiB .. 1 MiB) are reused instead of page-faulted in again."""
    x = rng.standard_normal(shape).astype(np.float32)
    prev = cnnfast.cache_info()["limit"]
    try:
        cnnfast.set_cache_limit(64 << 20)
        cnnfast.empty_cache()
        del_me = cnnfast.relu(x)
        del del_me
        assert (cnnfast.cache_info()["cached_bytes"] >= x.nbytes) == cached
        hits = cnnfast.cache_info()["hits"]
        y = cnnfast.relu(x)
        assert cnnfast.cache_info()["hits"] == hits + cached
        np.testing.assert_array_equal(y, np.maximum(x, 0))
    finally:
        cnnfast.set_cache_limit(prev)


def test_empty_cache_releases_kernel_scratch(rng):
    """Kernel scratch (here the Winograd kernel's transformed tiles) goes back on empty_cache, and
    the next call allocates it again and gets the same answer."""
    x = rng.standard_normal((2, 64, 20, 20)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    cnnfast.empty_cache()  # start with no cached output buffers: what is freed below is scratch
    y1 = cnnfast.conv2d(x, w, padding=1)
    freed = cnnfast.empty_cache()
    assert freed >= 36 * 64 * 16 * 4, freed  # at least one block of transformed input tiles
    assert cnnfast.empty_cache() == 0  # nothing left to free
    np.testing.assert_array_equal(cnnfast.conv2d(x, w, padding=1), y1)


def test_empty_cache_keeps_scratch_of_a_running_kernel(rng):
    """empty_cache from one thread while another runs kernels: no crash, answers unchanged."""
    x = rng.standard_normal((4, 64, 28, 28)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    want = cnnfast.conv2d(x, w, padding=1)
    stop, results = threading.Event(), []

    def work():
        while not stop.is_set():
            results.append(np.array_equal(cnnfast.conv2d(x, w, padding=1), want))

    t = threading.Thread(target=work)
    t.start()
    try:
        for _ in range(200):
            cnnfast.empty_cache()
    finally:
        stop.set()
        t.join()
    assert results and all(results)


_FIRST_USE = (
    "import numpy as np\n"
    "x = np.random.default_rng(0).standard_normal((4, 8, 32, 32)).astype(np.float32)\n"
    "w = np.random.default_rng(1).standard_normal((16, 8, 3, 3)).astype(np.float32)\n"
    "y = cnnfast.conv2d(x, w, padding=1); cnnfast.conv2d_backward(y, x, w, padding=1)\n"
    "cnnfast.max_pool2d(cnnfast.relu(y), 2)\n"
)


def test_import_and_first_use_leave_the_environment_alone():
    code = (
        "import os\nbefore = dict(os.environ)\nimport cnnfast\n" + _FIRST_USE + "after = dict(os.environ)\n"
        "print(sorted(set(before.items()) ^ set(after.items())))\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_no_openmp_runtime_is_loaded():
    """Threads come from cnnfast's own pool: no libgomp/libomp to clash with PyTorch's bundled copy."""
    code = (
        "import cnnfast\n" + _FIRST_USE + "libs = {l.split()[-1] for l in open('/proc/self/maps') if l.count('/')}\n"
        "print([l for l in libs if any(k in l.rsplit('/', 1)[-1] for k in ('libgomp', 'libomp', 'libiomp'))])\n"
        "print(cnnfast.runtime_info()['pool_workers_started'])\n"
    )
    r = _run(code, CNNFAST_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    libs, workers = r.stdout.split("\n")[:2]
    assert libs == "[]"
    assert workers == "1"  # two threads: the caller and one pool worker


def test_idle_workers_sleep():
    """After a kernel the pool spins ~100 us, then sleeps: an idle process burns no CPU."""
    code = (
        "import time, cnnfast\n"
        + _FIRST_USE
        + "time.sleep(0.05)\nc0 = time.process_time(); time.sleep(0.5); print(time.process_time() - c0)\n"
    )
    r = _run(code, CNNFAST_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) < 0.1, f"{r.stdout} s of CPU time in 0.5 s of idling: the workers spin"


def test_pytorch_imported_first_and_used_in_between():
    """torch's wheel ships its own libgomp.so.1; cnnfast does not use it and both give right answers."""
    pytest.importorskip("torch")
    code = (
        "import torch, numpy as np\n"
        "torch.set_num_threads(2)\n"
        "t = torch.nn.functional.conv2d(torch.ones(2, 3, 16, 16), torch.ones(4, 3, 3, 3))\n"
        "import cnnfast\ncnnfast.set_num_threads(2)\n" + _FIRST_USE + "for _ in range(3):\n"
        "    yt = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()\n"
        "    yc = cnnfast.conv2d(x, w, padding=1)\n"
        "    assert np.allclose(yt, yc, rtol=1e-4, atol=1e-3), abs(yt - yc).max()\n"
        "print(cnnfast.runtime_info()['pool_workers_started'], torch.get_num_threads())\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "2"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_kernels_work_in_a_forked_child():
    """A child forked after the pool started has no workers of its own: it starts a fresh pool."""
    import multiprocessing as mp

    code = (
        "import multiprocessing as mp, numpy as np, cnnfast\ncnnfast.set_num_threads(2)\n"
        + _FIRST_USE
        + "def child(q):\n"
        "    q.put(float(np.abs(cnnfast.conv2d(x, w, padding=1) - y).max()))\n"
        "ctx = mp.get_context('fork'); q = ctx.Queue(); p = ctx.Process(target=child, args=(q,))\n"
        "p.start(); print(q.get(timeout=60)); p.join(60); print(p.exitcode)\n"
    )
    assert mp is not None
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0.0", "0"]


def test_concurrent_callers_share_the_pool(rng):
    """Kernels called from several Python threads at once (GIL released): a caller that finds the pool
    busy runs its region on its own thread; every result is right."""
    x = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    want = cnnfast.conv2d(x, w, padding=1)
    errors = []

    def work():
        for _ in range(20):
            got = cnnfast.conv2d(x, w, padding=1)
            if not np.array_equal(got, want):
                errors.append(float(np.abs(got - want).max()))

    prev = cnnfast.get_num_threads()
    cnnfast.set_num_threads(2)
    try:
        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        cnnfast.set_num_threads(prev)
    assert errors == []


def test_an_unbuilt_source_tree_says_how_to_build_it(tmp_path):
    """A checkout imported without its compiled module (Python run in the repository root before
    any build) fails with a message that says how to build it, and loads no other copy's _core."""
    import importlib.machinery
    import shutil

    src = os.path.dirname(os.path.abspath(cnnfast.__file__))
    shutil.copytree(
        src,
        tmp_path / "cnnfast",
        ignore=shutil.ignore_patterns("__pycache__", *("*" + s for s in importlib.machinery.EXTENSION_SUFFIXES)),
    )
    # -S: no site-packages, so neither an installed cnnfast nor an editable install's import hook is found.
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import cnnfast"
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: cnnfast: the compiled kernels (cnnfast._core) are not in "), r.stderr
    assert "pip install -e ." in last, r.stderr


@pytest.mark.parametrize(
    "var,value,expected",
    [
        ("CNNFAST_ISA", "auto", "CNNFAST_ISA: unknown ISA 'auto'; valid values are ref, avx2, avx512"),
        ("CNNFAST_NUM_THREADS", "0", "CNNFAST_NUM_THREADS must be a positive integer, got '0'"),
        (
            "CNNFAST_CACHE_MB",
            "lots",
            "CNNFAST_CACHE_MB must be a non-negative integer (MiB; 0 disables the cache), got 'lots'",
        ),
        ("CNNFAST_WINOGRAD", "yes", "CNNFAST_WINOGRAD must be 0 or 1, got 'yes'"),
        ("CNNFAST_AUTOTUNE", "on", "CNNFAST_AUTOTUNE must be 0 or 1, got 'on'"),
    ],
)
def test_bad_environment_settings_say_exactly_what_is_wrong(var, value, expected):
    r = _run("import cnnfast", **{var: value})
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last == f"ValueError: {expected}", r.stderr
    assert "compiled kernels" not in r.stderr


def test_cache_limit_from_the_environment():
    r = _run("import cnnfast; print(cnnfast.cache_info()['limit'])", CNNFAST_CACHE_MB="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(3 << 20)


def test_autotune_is_off_by_default_and_reported(capsys):
    """Off unless CNNFAST_AUTOTUNE=1 (see csrc/dispatch/autotune.cpp for why); runtime_info and
    show_runtime say so."""
    r = _run(
        "import cnnfast; i = cnnfast.runtime_info(); print(i['autotune'], i['autotune_entries'], "
        "cnnfast.get_autotune())",
        CNNFAST_AUTOTUNE="",
    )
    assert r.stdout.split() == ["False", "0", "False"], r.stderr
    cnnfast.show_runtime()
    assert "autotune      :" in capsys.readouterr().out
