"""Runtime introspection and thread control: show_runtime(), get/set_num_threads(), ISA control."""

from __future__ import annotations

import sys
from typing import TextIO

from . import _core
from ._version import __version__

__all__ = [
    "show_runtime",
    "runtime_info",
    "get_num_threads",
    "set_num_threads",
    "get_isa",
    "set_isa",
    "available_isas",
    "empty_cache",
    "set_cache_limit",
    "cache_info",
    "get_winograd",
    "set_winograd",
    "get_autotune",
    "set_autotune",
    "autotune_cache",
    "clear_autotune_cache",
]


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


def get_winograd() -> bool:
    """Whether the Winograd F(4x4,3x3) conv2d kernels may run (see set_winograd)."""
    return bool(_core.get_winograd())


def set_winograd(enabled: bool) -> None:
    """Allow or forbid the Winograd F(4x4,3x3) kernels for float32 3x3 stride-1 conv2d (forward and
    grad_input), process-wide; like the environment variable CNNFAST_WINOGRAD=0|1. They are faster
    on large layers but round differently (max error 3e-5 to 1.1e-4 * sqrt(C*9) on standard-normal
    data with C input channels, 10-30x the GEMM path's); forbid them where you need the GEMM path's
    accuracy."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_winograd: expected True or False, got {enabled!r}")
    _core.set_winograd(enabled)


def get_autotune() -> bool:
    """Whether conv2d calls are autotuned (see set_autotune)."""
    return bool(_core.get_autotune())


def set_autotune(enabled: bool) -> None:
    """Turn the conv2d autotuner on or off, process-wide; like the environment variable
    CNNFAST_AUTOTUNE=0|1 (read once, at import). Off by default.

    When on, the first call of each new conv2d configuration (pass, dtype, ISA, thread count,
    shapes, stride, padding, dilation, groups, bias, fused ReLU, Winograd switch) times every
    kernel of the selected ISA that can compute it -- also those the built-in thresholds would
    skip -- and later calls of that configuration run the fastest, at the cost of one hash
    lookup. Results are the same convolution up to float rounding whichever kernel wins, and the
    tuning call returns the winner's output. The thresholds' own choice is kept unless another
    kernel is 10% faster.

    First-call cost, with n kernels able to compute the configuration: at most 1.5 n + 4 runs
    of the slowest kernel timed (problems of 8 M multiply-adds and 4 images or more are first
    screened on 1/8 of the images, dropping kernels 4x slower than the best), typically n + 1 or
    n + 2 runs;
    about 20 ms more for problems whose kernels take under 20 ms in all. Problems under 2**20
    multiply-adds and configurations that only one kernel accepts are not re-timed. When off,
    each call runs the first kernel whose thresholds accept (the ordered list)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_autotune: expected True or False, got {enabled!r}")
    _core.set_autotune(enabled)


def autotune_cache() -> list[dict]:
    """The tuned conv2d configurations, one dict each: 'pass', 'dtype', 'isa', 'threads', 'input',
    'weight', 'output', 'stride', 'padding', 'dilation', 'groups', 'bias', 'relu', 'winograd',
    'winner' (the kernel that runs), 'heuristic' (the kernel the thresholds pick; None if it was
    dropped by the screening), 'times_ms' (best full-size time of each candidate), 'relaxed'
    (candidates the thresholds would skip), 'screened' (kernels run on the screening problem, 0
    if not screened), 'rounds', 'first_call_ms' (the whole tuning call)."""
    return [dict(e) for e in _core.autotune_cache()]


def clear_autotune_cache() -> None:
    """Forget every tuned conv2d configuration: the next call of each is tuned again."""
    _core.clear_autotune_cache()


def runtime_info() -> dict:
    """Dict with compiled/available/selected ISAs, CPU features, threading and threads."""
    return dict(_core.runtime_info())


def show_runtime(file: TextIO | None = None) -> None:
    """Print what cnnfast was built with and what it selected on this machine."""
    info = runtime_info()
    out = file or sys.stdout
    feats = ", ".join(k for k, v in info["cpu_features"].items() if v) or "none"
    lines = [
        f"cnnfast {__version__}",
        f"  compiled ISAs : {', '.join(info['compiled_isas'])}",
        f"  CPU features  : {feats}",
        f"  available ISAs: {', '.join(info['available_isas'])}",
        f"  selected ISA  : {info['selected_isa']}  (override with CNNFAST_ISA=ref|avx2|avx512)",
        f"  threading     : {info['threading']}",
        f"  threads       : {info['num_threads']}",
        "  kernels       : " + ", ".join(f"{k}={v}" for k, v in info["kernels"].items()),
        f"  winograd      : {'on' if info['winograd'] else 'off'}  (3x3 stride-1 float32 conv2d; CNNFAST_WINOGRAD=0|1, set_winograd)",
        f"  autotune      : {'on' if info['autotune'] else 'off'}, {info['autotune_entries']} conv2d configurations tuned"
        "  (CNNFAST_AUTOTUNE=0|1, set_autotune, autotune_cache)",
    ]
    last = {k: v for k, v in info["last_kernels"].items() if v}
    if last:
        lines.append("  last used     : " + ", ".join(last.values()))
    if info.get("sanitized"):
        lines.append("  build         : AddressSanitizer + UBSan")
    print("\n".join(lines), file=out)


def empty_cache() -> int:
    """Release the cached output buffers (outputs of 128 KiB or more are reused across calls to
    avoid page faults) and the kernels' per-thread scratch (e.g. Winograd's transformed tiles);
    returns the number of bytes freed. Scratch in use by a kernel running in another thread is
    left alone."""
    return int(_core.empty_cache())


def set_cache_limit(nbytes: int) -> None:
    """Bound the bytes of freed output buffers kept for reuse (default 256 MiB, env CNNFAST_CACHE_MB; 0 disables)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"set_cache_limit: expected a non-negative int number of bytes, got {nbytes!r}")
    _core.set_cache_limit(nbytes)


def cache_info() -> dict:
    """Statistics of the output-buffer cache (cached bytes, limit, hits, misses, ...)."""
    return dict(_core.cache_info())
