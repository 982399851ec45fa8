"""The benchmark suite's shapes, inputs, oracles and helpers, shared by the bench_*.py files,
bench/_memprobe.py and bench/compare.py.

Everything a benchmark needs to assert its answer lives here: deterministic inputs per case,
a float64 oracle from tests/reference.py computed once per case and cached, and the stated
tolerances. Nothing here imports torch, nor cnnfast at import time (bench/fair.py's driver reads the shape
tables without loading any framework): the variants import their framework themselves.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCH_DIR.parent / "tests"
if str(TESTS_DIR) not in sys.path:  # pytest's pythonpath setting does this too; _memprobe.py does not
    sys.path.insert(0, str(TESTS_DIR))

import reference  # noqa: E402  (tests/reference.py: the NumPy oracle shared with the tests)

DEFAULT_THREADS = 2  # the dev machine has 2 cores; every comparison runs both frameworks at this cap

# float32 results are compared with the float64 oracle as max|out - ref| <= TOL * max|ref|. Rounding
# in float32 gives ~1e-6 here even for the 50k-term sums of the N=16 weight gradients; 5e-4 also
# admits Winograd-style transforms (~1e-4), while an indexing bug gives errors of order 1.
CONV_TOL = 5e-4
# Max-pool picks elements (exact); its backward sums up to 4 overlapping window gradients per
# input pixel, in an order that may differ from np.add.at.
POOL_BWD_RTOL = 1e-6


# ----------------------------------------------------------------------------------------------
# conv2d
@dataclasses.dataclass(frozen=True)
class ConvCase:
    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int  # square kernel R x R
    stride: int = 1
    pad: int = 0
    groups: int = 1

    @property
    def OH(self) -> int:
        return reference.conv_out_size(self.H, self.R, self.stride, self.pad, 1)

    @property
    def OW(self) -> int:
        return reference.conv_out_size(self.W, self.R, self.stride, self.pad, 1)

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 of one pass; forward, backward-input and backward-weight are equal."""
        return 2 * self.N * self.K * self.OH * self.OW * (self.C // self.groups) * self.R * self.R

    @property
    def x_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def w_shape(self):
        return (self.K, self.C // self.groups, self.R, self.R)

    @property
    def y_shape(self):
        return (self.N, self.K, self.OH, self.OW)

    @property
    def label(self) -> str:
        s = f"{self.N}x{self.C}x{self.H}x{self.W} -> {self.K}, {self.R}x{self.R}"
        if self.stride != 1:
            s += f" s{self.stride}"
        if self.pad:
            s += f" p{self.pad}"
        return s


def _resnet(n: int) -> list[ConvCase]:
    return [
        ConvCase(f"resnet_stem_n{n}", n, 3, 224, 224, 64, 7, 2, 3),
        ConvCase(f"resnet_3x3_64x56_n{n}", n, 64, 56, 56, 64, 3, 1, 1),
        ConvCase(f"resnet_3x3_128x28_n{n}", n, 128, 28, 28, 128, 3, 1, 1),
        ConvCase(f"resnet_3x3_256x14_n{n}", n, 256, 14, 14, 256, 3, 1, 1),
        ConvCase(f"resnet_3x3_512x7_n{n}", n, 512, 7, 7, 512, 3, 1, 1),
        ConvCase(f"resnet_down3x3_64x56_n{n}", n, 64, 56, 56, 128, 3, 2, 1),
        ConvCase(f"resnet_down1x1_64x56_n{n}", n, 64, 56, 56, 128, 1, 2, 0),
    ]


CONV_CASES: list[ConvCase] = [
    ConvCase("lenet_c1_n64", 64, 1, 28, 28, 6, 5),
    ConvCase("lenet_c2_n64", 64, 6, 12, 12, 16, 5),
    *_resnet(1),
    *_resnet(16),
    ConvCase("pointwise_256x14_n16", 16, 256, 14, 14, 256, 1),
]
CONV_BY_NAME = {c.name: c for c in CONV_CASES}
CONV_PASSES = ("forward", "backward_input", "backward_weight")

# The NumPy reference (im2col + einsum, float32) is timed only up to this many flops per pass:
# above it one call takes seconds on 2 cores, and the N=1 twin of each case already shows how
# NumPy compares. In smoke mode (--benchmark-disable) the lower cap keeps CI under ~3 minutes.
NUMPY_MAX_FLOPS = 1.0e9
NUMPY_MAX_FLOPS_SMOKE = 0.3e9


def rng_for(name: str) -> np.random.Generator:
    """A generator seeded from the case name: the same inputs in every process (see _memprobe)."""
    return np.random.default_rng(sum(ord(ch) * 131**i for i, ch in enumerate(name)) % (2**32))


def conv_inputs(case: ConvCase) -> dict:
    """float32 x, w (scaled by 1/sqrt(fan_in) so outputs are O(1)), b and grad_output gy."""
    rng = rng_for(case.name)
    fan_in = case.C // case.groups * case.R * case.R
    return {
        "x": rng.standard_normal(case.x_shape, dtype=np.float32),
        "w": (rng.standard_normal(case.w_shape, dtype=np.float32) / np.float32(math.sqrt(fan_in))),
        "b": rng.standard_normal(case.K, dtype=np.float32),
        "gy": rng.standard_normal(case.y_shape, dtype=np.float32),
    }


class _OneCaseCache:
    """Keeps the inputs and oracle results of the most recent case only (the big cases hold
    hundreds of MB); the benchmarks are ordered case by case, so each oracle is computed once."""

    def __init__(self):
        self.key = None
        self.data: dict = {}

    def get(self, key, make):
        if key != self.key:
            self.key, self.data = None, {}  # free the previous case before building the next
            self.data = make()
            self.key = key
        return self.data


_conv_cache = _OneCaseCache()


def conv_data(case: ConvCase) -> dict:
    """Inputs plus lazily computed float64 oracles: data['y'], data['gx'], data['gw'], data['gb']."""
    return _conv_cache.get(("conv", case.name), lambda: conv_inputs(case))


def conv_oracle(case: ConvCase, what: str) -> np.ndarray:
    d = conv_data(case)
    if what not in d:
        x, w, b, gy = (d[k].astype(np.float64) for k in ("x", "w", "b", "gy"))
        if what == "y":
            d["y"] = reference.conv2d(x, w, b, case.stride, case.pad, 1, case.groups)
        else:
            d["gx"], d["gw"], d["gb"] = reference.conv2d_backward(gy, x, w, case.stride, case.pad, 1, case.groups)
    return d[what]


def assert_close(name: str, out, ref: np.ndarray, tol: float = CONV_TOL) -> None:
    out = np.asarray(out)
    assert out.shape == ref.shape, f"{name}: shape {out.shape} != reference {ref.shape}"
    assert out.dtype == np.float32, f"{name}: dtype {out.dtype}, expected float32"
    scale = float(np.max(np.abs(ref))) or 1.0
    err = float(np.max(np.abs(out.astype(np.float64) - ref)))
    assert err <= tol * scale, f"{name}: max abs error {err:.3g} > {tol:g} * max|ref| ({scale:.3g})"


# NumPy variants of the two backward passes, each computing only its own gradient (the oracle
# reference.conv2d_backward computes all three): im2col windows + einsum, as tests/reference.py.
def numpy_conv2d_input(gy, w, x_shape, stride, pad, groups=1):
    N, C, H, W = x_shape
    K, Cg, R, S = w.shape
    OH, OW = gy.shape[2:]
    Kg = K // groups
    gxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), gy.dtype)
    for g in range(groups):
        cs, ks = slice(g * Cg, (g + 1) * Cg), slice(g * Kg, (g + 1) * Kg)
        cols = np.einsum("kcrs,nkij->ncrsij", w[ks], gy[:, ks], optimize=True)
        for r in range(R):
            for s in range(S):
                gxp[:, cs, r : r + stride * OH : stride, s : s + stride * OW : stride] += cols[:, :, r, s]
    return np.ascontiguousarray(gxp[:, :, pad : pad + H, pad : pad + W])


def numpy_conv2d_weight(x, gy, w_shape, stride, pad, groups=1):
    K, Cg, R, S = w_shape
    OH, OW = gy.shape[2:]
    Kg = K // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = reference._windows(xp, R, S, OH, OW, (stride, stride), (1, 1))
    gw = np.empty(w_shape, x.dtype)
    for g in range(groups):
        cs, ks = slice(g * Cg, (g + 1) * Cg), slice(g * Kg, (g + 1) * Kg)
        gw[ks] = np.einsum("ncrsij,nkij->kcrs", win[:, cs], gy[:, ks], optimize=True)
    return gw, gy.sum(axis=(0, 2, 3))


# ----------------------------------------------------------------------------------------------
# max_pool2d
@dataclasses.dataclass(frozen=True)
class PoolShape:
    name: str
    N: int
    C: int
    H: int
    W: int


@dataclasses.dataclass(frozen=True)
class PoolCfg:
    name: str
    k: int
    s: int
    p: int


POOL_SHAPES = [PoolShape("resnet_16x64x112", 16, 64, 112, 112), PoolShape("lenet_64x6x24", 64, 6, 24, 24)]
POOL_CFGS = [PoolCfg("2x2s2", 2, 2, 0), PoolCfg("3x3s2p1", 3, 2, 1)]
POOL_PASSES = ("forward", "forward_indices", "backward")


def pool_out_shape(shape: PoolShape, cfg: PoolCfg):
    oh = reference.pool_out_size(shape.H, cfg.k, cfg.s, cfg.p, 1, False)
    ow = reference.pool_out_size(shape.W, cfg.k, cfg.s, cfg.p, 1, False)
    return (shape.N, shape.C, oh, ow)


def pool_bytes(shape: PoolShape, cfg: PoolCfg, pass_: str) -> int:
    """Bytes a pass must read and write at least: float32 data, int64 indices."""
    n_in = shape.N * shape.C * shape.H * shape.W
    n_out = math.prod(pool_out_shape(shape, cfg))
    if pass_ == "forward":
        return 4 * n_in + 4 * n_out
    if pass_ == "forward_indices":
        return 4 * n_in + 12 * n_out
    return 12 * n_out + 4 * n_in  # backward: read grad_output + indices, write grad_input


_pool_cache = _OneCaseCache()


def pool_data(shape: PoolShape, cfg: PoolCfg) -> dict:
    """x, gy and the oracle (y, idx, gx), exact float32 (max is exact; one add.at for gx)."""

    def make():
        rng = rng_for(shape.name + cfg.name)
        x = rng.standard_normal((shape.N, shape.C, shape.H, shape.W), dtype=np.float32)
        y, idx = reference.max_pool2d(x, cfg.k, cfg.s, cfg.p)
        gy = rng.standard_normal(y.shape, dtype=np.float32)
        gx = reference.max_pool2d_backward(gy.astype(np.float64), idx, x.shape)
        return {"x": x, "gy": gy, "y": y, "idx": idx, "gx": gx}

    return _pool_cache.get(("pool", shape.name, cfg.name), make)


def numpy_max_pool2d(x, k, s, p, return_indices=False):
    """Vectorised NumPy max-pool: -inf padding + max (or argmax) over strided window views."""
    N, C, H, W = x.shape
    OH = reference.pool_out_size(H, k, s, p, 1, False)
    OW = reference.pool_out_size(W, k, s, p, 1, False)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf) if p else x
    win = reference._windows(xp, k, k, OH, OW, (s, s), (1, 1))  # (N, C, k, k, OH, OW)
    if not return_indices:
        return win.max(axis=(2, 3))
    flat = win.reshape(N, C, k * k, OH, OW)  # copies: k*k times the output
    arg = flat.argmax(axis=2)  # first maximum in scan order, as the kernels
    y = np.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0]
    r, c = np.divmod(arg, k)
    idx = (np.arange(OH)[:, None] * s - p + r) * W + (np.arange(OW) * s - p + c)
    return y, idx


# ----------------------------------------------------------------------------------------------
# relu
RELU_SHAPES = {"resnet_16x64x112": (16, 64, 112, 112)}
_relu_cache = _OneCaseCache()


def relu_data(name: str) -> dict:
    def make():
        rng = rng_for("relu" + name)
        shape = RELU_SHAPES[name]
        x = rng.standard_normal(shape, dtype=np.float32)
        gy = rng.standard_normal(shape, dtype=np.float32)
        return {"x": x, "gy": gy, "y": reference.relu(x), "gx": reference.relu_backward(gy, x)}

    return _relu_cache.get(("relu", name), make)


# ----------------------------------------------------------------------------------------------
# helpers for the benchmarks
def group_name(op: str, pass_: str, case: str, threads: int) -> str:
    """pytest-benchmark group "<op>-<pass>-<case>", suffixed with the thread count if not the default."""
    g = f"{op}-{pass_}-{case}"
    return g if threads == DEFAULT_THREADS else f"{g}@threads={threads}"


def run_benchmark(benchmark, fn, *, op, pass_, case, impl, threads, **info):
    """Time fn() in `benchmark` (after one warm-up call) and return its result for the caller to check.

    The warm-up pays one-time costs the steady state does not have (page faults on fresh
    buffers, oneDNN primitive creation, cnnfast's dispatch table); it is skipped when
    benchmarking is disabled (smoke mode), where fn runs exactly once.
    """
    benchmark.group = group_name(op, pass_, case, threads)
    benchmark.extra_info.update(op=op, pass_=pass_, case=case, impl=impl, threads=threads, **info)
    if not getattr(benchmark, "disabled", False):
        fn()
    out = benchmark(fn)
    if impl == "cnnfast":
        kernel = _last_kernel(op, pass_)
        if kernel:
            benchmark.extra_info["kernel"] = kernel
    return out


_DIRS = {"forward": "fwd", "backward_input": "bwd_input", "backward_weight": "bwd_weight"}


def _last_kernel(op: str, pass_: str):
    """Which cnnfast implementation ran, e.g. 'winograd' for conv2d_fwd_f32_avx2_winograd, 'gemm'
    for the plain AVX2 GEMM kernel (runtime_info()['last_kernels'], where the op reports it)."""
    import cnnfast

    info = getattr(cnnfast, "runtime_info", None)
    last = (info() if info else {}).get("last_kernels") or {}
    name = last.get(f"{op}_{_DIRS.get(pass_, pass_)}_f32")
    if not name:
        return None
    tail = name.split("_f32_", 1)[-1]  # "avx2_winograd", "avx2", "ref"
    isa, _, variant = tail.partition("_")
    return variant or ("gemm" if op == "conv2d" and isa != "ref" else isa)
