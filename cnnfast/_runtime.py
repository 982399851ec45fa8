"""Runtime introspection and thread control: show_runtime(), get/set_num_threads(), ISA control."""
from __future__ import annotations

import sys

from . import _core

__all__ = ["show_runtime", "runtime_info", "get_num_threads", "set_num_threads", "get_isa", "set_isa", "available_isas",
           "empty_cache", "set_cache_limit", "cache_info"]


def get_num_threads() -> int:
    """Number of threads cnnfast kernels use (OMP_NUM_THREADS / CNNFAST_NUM_THREADS / set_num_threads)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads every cnnfast kernel uses, process-wide. ``n`` must be >= 1."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: expected a positive int, got {n!r}")
    _core.set_num_threads(n)


def get_isa() -> str:
    """The kernel path in use: 'ref', 'avx2' or 'avx512'."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Force a kernel path ('ref', 'avx2', 'avx512'), like the CNNFAST_ISA environment variable."""
    _core.set_isa(name)


def available_isas() -> list[str]:
    """ISAs compiled into this build and supported by this CPU (always includes 'ref')."""
    return list(_core.runtime_info()["available_isas"])


def runtime_info() -> dict:
    """Dict with compiled/available/selected ISAs, CPU features, OpenMP status and threads."""
    return dict(_core.runtime_info())


def show_runtime(file=None) -> None:
    """Print what cnnfast was built with and what it selected on this machine."""
    from . import __version__

    info = runtime_info()
    out = file or sys.stdout
    feats = ", ".join(k for k, v in info["cpu_features"].items() if v) or "none"
    lines = [
        f"cnnfast {__version__}",
        f"  compiled ISAs : {', '.join(info['compiled_isas'])}",
        f"  CPU features  : {feats}",
        f"  available ISAs: {', '.join(info['available_isas'])}",
        f"  selected ISA  : {info['selected_isa']}  (override with CNNFAST_ISA=ref|avx2|avx512)",
        f"  OpenMP        : {'yes (' + str(info['openmp_version']) + ')' if info['openmp'] else 'NO (single-threaded build)'}",
        f"  threads       : {info['num_threads']}",
        "  kernels       : " + ", ".join(f"{k}={v}" for k, v in info["kernels"].items()),
    ]
    if info.get("sanitized"):
        lines.append("  build         : AddressSanitizer + UBSan")
    print("\n".join(lines), file=out)


def empty_cache() -> int:
    """Release the cached output buffers (large outputs are reused across calls to avoid page
    faults); returns the number of bytes freed."""
    return int(_core.empty_cache())


def set_cache_limit(nbytes: int) -> None:
    """Bound the bytes of freed output buffers kept for reuse (default 256 MiB, env CNNFAST_CACHE_MB; 0 disables)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"set_cache_limit: expected a non-negative int number of bytes, got {nbytes!r}")
    _core.set_cache_limit(nbytes)


def cache_info() -> dict:
    """Statistics of the output-buffer cache (cached bytes, limit, hits, misses, ...)."""
    return dict(_core.cache_info())
