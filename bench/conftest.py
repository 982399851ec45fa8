"""pytest configuration for the benchmark suite (pytest-benchmark).

Run from the repository root:  pytest bench                      (timed; ~minutes)
                                pytest bench --benchmark-disable  (smoke: every benchmark once)
Every benchmark asserts its answer against the NumPy reference. torch variants skip cleanly when
torch is not installed. Thread caps: --bench-threads=2 (default; comma-separated list allowed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_BENCH_DIR = Path(__file__).resolve().parent
# bench/ is not a package (--import-mode=importlib): make its helper module importable.
for _p in (_BENCH_DIR, _BENCH_DIR.parent / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import cnnfast  # noqa: E402

from _suite import DEFAULT_THREADS  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("cnnfast bench")
    group.addoption(
        "--bench-threads",
        default=str(DEFAULT_THREADS),
        help="comma-separated thread counts to run every benchmark at (default: %(default)s)",
    )
    group.addoption(
        "--bench-no-numpy",
        action="store_true",
        help="skip the NumPy reference variants (they are the slowest part of the suite)",
    )


def _thread_counts(config) -> list[int]:
    raw = config.getoption("--bench-threads")
    try:
        counts = [int(t) for t in raw.split(",") if t.strip()]
    except ValueError:
        raise pytest.UsageError(f"--bench-threads must be comma-separated positive integers, got {raw!r}") from None
    if not counts or min(counts) < 1:
        raise pytest.UsageError(f"--bench-threads must be comma-separated positive integers, got {raw!r}")
    return counts


def pytest_collect_file(file_path, parent):
    """Collect bench/bench_*.py (the root config's python_files only matches test_*.py)."""
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and file_path.parent == _BENCH_DIR
        and not parent.session.isinitpath(file_path)
    ):  # a file named on the command line is collected anyway
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(session, config, items):
    """Machine peaks (the table's denominators) first, their "end" repeats last; import timing
    at the end too. The order of everything else is kept."""

    def rank(item):
        if item.path.name != "bench_peak.py":
            return 1
        return 2 if "[end" in item.name or "end]" in item.name or "import" in item.name else 0

    items.sort(key=rank)


def pytest_generate_tests(metafunc):
    if "threads" in metafunc.fixturenames:
        metafunc.parametrize("threads", _thread_counts(metafunc.config), indirect=True, ids=lambda t: f"threads={t}")


@pytest.fixture
def threads(request):
    """Cap cnnfast, torch (if imported) and NumPy's BLAS to the same thread count for one test."""
    n = request.param
    prev = cnnfast.get_num_threads()
    cnnfast.set_num_threads(n)
    torch = sys.modules.get("torch")
    prev_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only NumPy's BLAS threads are left uncapped
        limits = None
    else:
        limits = threadpool_limits(limits=n, user_api="blas")
    try:
        yield n
    finally:
        if limits is not None:
            limits.restore_original_limits()
        if torch is not None:
            torch.set_num_threads(prev_torch)
        cnnfast.set_num_threads(prev)


@pytest.fixture
def torch_mod(threads):
    """torch, capped to `threads`; the test skips (with the reason) when torch is not installed."""
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield torch
    torch.set_num_threads(prev)


@pytest.fixture
def smoke(request) -> bool:
    """True when benchmarks are disabled (--benchmark-disable): each runs once as a smoke test."""
    return bool(request.config.getoption("benchmark_disable", False))


@pytest.fixture
def numpy_allowed(request):
    if request.config.getoption("--bench-no-numpy"):
        pytest.skip("NumPy variants disabled (--bench-no-numpy)")


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what was measured: cnnfast's build/selection and torch's version, in the JSON."""
    info = cnnfast.runtime_info()
    machine_info["cnnfast"] = {
        "version": cnnfast.__version__,
        "selected_isa": info["selected_isa"],
        "available_isas": info["available_isas"],
        "threading": info["threading"],
        "kernels": info["kernels"],
    }
    machine_info["bench_threads"] = _thread_counts(config)
    try:
        import torch
    except ImportError:
        machine_info["torch"] = None
    else:
        machine_info["torch"] = {"version": torch.__version__}
    machine_info["cpu_count"] = os.cpu_count()


def pytest_report_header(config):
    info = cnnfast.runtime_info()
    return f"cnnfast bench: ISA {info['selected_isa']}, kernels {info['kernels']}, " f"threads {_thread_counts(config)}"
