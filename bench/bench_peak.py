"""Machine peaks and import time: the denominators and the fixed targets of the report.

- FMA peak: independent FMA chains on 1 and 2 threads (csrc/bench/fma_peak_*.cpp), GFLOP/s in
  extra_info["gflops"] (best round: on a shared machine, noise only ever lowers it).
- Memory bandwidth: STREAM copy/scale/triad over 128 MB arrays (csrc/bench/bandwidth.cpp), GB/s
  in extra_info, best of the rounds.
- Import time: `python -c "import cnnfast"` in a fresh interpreter, median of several runs
  (target < 0.15 s), next to `import numpy` (which cnnfast imports) and `import torch`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import cnnfast
from cnnfast import _core

PEAK_SECONDS = 0.3  # per FMA round: long enough for the clock to ramp, short enough for 5 rounds
BANDWIDTH_MB = 128  # per array; 3 arrays = 384 MB, far beyond the 32 MB L3
IMPORT_ROUNDS = 7


def _fma_isa():
    for isa in ("avx512", "avx2"):
        if isa in cnnfast.available_isas():
            return isa
    pytest.skip(f"no FMA microbenchmark for this CPU (available ISAs: {cnnfast.available_isas()})")


# Measured at the start and again at the end of the run (conftest orders them): the report uses
# the best, so a burst of load from other processes during one of them does not skew "% of peak".
WHEN = [pytest.param("start", id="start"), pytest.param("end", id="end")]


@pytest.mark.parametrize("when", WHEN)
@pytest.mark.parametrize("peak_threads", [1, 2], ids=lambda t: f"peak_threads={t}")
def test_fma_peak(benchmark, smoke, peak_threads, when):
    isa = _fma_isa()
    seen = []
    benchmark.group = "peak-fma"
    benchmark.pedantic(
        lambda: seen.append(_core._bench_fma_peak(isa, peak_threads, PEAK_SECONDS)),
        rounds=1 if smoke else 5,
        iterations=1,
    )
    benchmark.extra_info.update(
        op="peak",
        pass_="fma",
        case=f"threads={peak_threads}",
        impl="cnnfast",
        threads=peak_threads,
        isa=isa,
        when=when,
        gflops=max(seen),
        gflops_rounds=seen,
    )
    assert max(seen) > 0, seen


@pytest.mark.parametrize("when", WHEN)
def test_bandwidth(benchmark, smoke, threads, when):
    seen = []
    benchmark.group = "peak-bandwidth"
    benchmark.pedantic(
        lambda: seen.append(_core._bench_bandwidth(threads, BANDWIDTH_MB, 3)), rounds=1 if smoke else 3, iterations=1
    )
    best = {k: max(r[k] for r in seen) for k in seen[0]}
    benchmark.extra_info.update(
        op="peak",
        pass_="bandwidth",
        case=f"threads={threads}",
        impl="cnnfast",
        threads=threads,
        when=when,
        megabytes=BANDWIDTH_MB,
        **{f"{k}_gbs": v for k, v in best.items()},
    )
    assert all(v > 0 for v in best.values()), best


def _import_command(tmp: Path, module: str):
    """argv, env for a fresh interpreter that imports `module` the way a wheel user would.

    An editable scikit-build-core install re-runs its CMake build check on every import of
    cnnfast (~1 s): a development convenience, not cnnfast's import cost. In that case the
    package (its Python files and the built _core) is staged into a temporary directory and
    imported from there, by an interpreter started with -S (no site processing, so the editable
    hook is not installed) whose PYTHONPATH names the stage and NumPy's site-packages. `import
    numpy` is then timed the same way, so the two stay comparable.
    """
    pkg = Path(cnnfast.__file__).resolve().parent
    core = Path(_core.__file__).resolve()
    env = dict(os.environ)
    if core.parent == pkg or module == "torch":  # a regular install (or torch): the real thing
        return [sys.executable, "-c", f"import {module}"], env
    import numpy

    stage = tmp / "site"
    if not stage.exists():
        shutil.copytree(pkg, stage / "cnnfast", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
        shutil.copy2(core, stage / "cnnfast" / core.name)
    env["PYTHONPATH"] = os.pathsep.join([str(stage), str(Path(numpy.__file__).resolve().parent.parent)])
    return [sys.executable, "-S", "-c", f"import {module}"], env


@pytest.mark.parametrize("impl", ["cnnfast", "numpy", "torch"])
def test_import_time(benchmark, smoke, impl, tmp_path):
    if impl == "torch":
        pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    argv, env = _import_command(tmp_path, impl)
    with tempfile.TemporaryDirectory() as cwd:  # never the repo root, whose cnnfast/ has no _core

        def run():
            proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}"

        benchmark.group = "import"
        benchmark.extra_info.update(
            op="import", pass_="import", case="import", impl=impl, threads=0, command=" ".join(argv[1:])
        )
        # One warm-up run writes the .pyc files and warms the page cache, as any second import would.
        benchmark.pedantic(run, rounds=1 if smoke else IMPORT_ROUNDS, iterations=1, warmup_rounds=0 if smoke else 1)
