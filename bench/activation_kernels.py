"""cnnfast's C++ pointwise activations and small-batch matrix-vector product against what they
replace, per shape: A/B in one process, alternating rounds, medians (cnnfast only; no other
framework). The measurement behind _ndarray/pointwise.py's use of _core.pointwise_forward and the
matrix-vector thresholds (_gemm._MATVEC_MAX_M, the eval paths' _MATVEC_MAX_N):

    python bench/activation_kernels.py                # the CPU's best ISA
    CNNFAST_ISA=avx2 python bench/activation_kernels.py
    python bench/activation_kernels.py --dtype float64 --no-linear

activations: the C++ kernel into a preallocated output vs the NumPy formula (one temporary, 3-4 passes;
for gelu and erf the exact erf, math.erf once per element, which is what they ran before the kernel).
linear: _core.linear_forward vs the conv2d GEMM, for ``a (m, k) @ b (n, k)^T`` (a Linear layer at
batch m; a 1x1 conv on a 1x1 plane).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cnnfast
from cnnfast import _core
from cnnfast._ndarray import misc as _misc
from cnnfast._ndarray import pointwise as P

ACT_SHAPES = [(1, 16, 112, 112), (1, 128, 56, 56), (1, 512, 14, 14), (16, 64, 56, 56), (1, 480, 1, 1)]
# (m, n, k): Linear(k, n) at batch m; 1x1 conv k -> n on a 1x1 plane at batch m
LINEAR_SHAPES = [
    (m, n, k) for (n, k) in ((1280, 512), (1000, 1280), (120, 400), (128, 512), (512, 128)) for m in (1, 2, 4, 8, 16)
]


def _ab(fa, fb, rounds, reps):
    ta, tb = [], []
    for _ in range(rounds):
        for f, t in ((fa, ta), (fb, tb)):
            s = time.perf_counter()
            for _ in range(reps):
                f()
            t.append((time.perf_counter() - s) / reps)
    return float(np.median(ta)), float(np.median(tb))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--no-linear", action="store_true", help="the activations only")
    args = p.parse_args(argv)
    dt = np.dtype(args.dtype).type
    info = cnnfast.runtime_info()
    print(f"ISA {info.get('selected_isa', _core.get_isa())}, {_core.get_num_threads()} threads")
    rng = np.random.default_rng(0)
    print(f"\n{args.dtype}\n\n| activation | shape | C++ (us) | NumPy formula (us) | speed-up |\n|---|---|---|---|---|")
    for name, kern, ref in (
        ("hardswish", P._hardswish, P._hardswish_np),
        ("hardsigmoid", P._hardsigmoid, P._hardsigmoid_np),
        ("relu6", P._relu6, P._relu6_np),
        ("silu", lambda x, out: _core.pointwise_forward(x, "silu", out=out), P._silu_np),
        ("sigmoid", lambda x, out: _core.pointwise_forward(x, "sigmoid", out=out), _misc._sigmoid_np),
        (
            "leaky_relu",
            lambda x, out: _core.pointwise_forward(x, "leaky", 0.1, out=out),
            lambda x: _misc._leaky_relu_np(x, 0.1),
        ),
        ("gelu", P._gelu, P._gelu_np),
        ("erf", lambda x, out: _core.pointwise_forward(x, "erf", out=out), P._erf_np),
    ):
        for shape in ACT_SHAPES:
            if name in ("gelu", "erf") and np.prod(shape) > 500_000:
                continue  # (math.erf per element: ~50 ns each)
            x = rng.uniform(-5, 5, shape).astype(dt)
            y = np.empty_like(x)  # out of place: repeated in-place passes would drift into subnormals
            reps = max(1, 200000 // x.size)
            a, b = _ab(lambda x=x, y=y, kern=kern: kern(x, out=y), lambda x=x, ref=ref: ref(x), args.rounds, reps)
            print(f"| {name} | {'x'.join(map(str, shape))} | {a * 1e6:.1f} | {b * 1e6:.1f} | {b / a:.2f}x |")
    if args.no_linear:
        return
    print("\n| m | n | k | linear_forward (us) | conv2d GEMM (us) | speed-up |\n|---|---|---|---|---|---|")
    one, zero = (1, 1), (0, 0)
    for m, n, k in LINEAR_SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((n, k)).astype(np.float32)
        xs, ws = a.reshape(m, k, 1, 1), b.reshape(n, k, 1, 1)
        reps = max(1, 2000000 // (m * n * k))
        t1, t2 = _ab(
            lambda a=a, b=b: _core.linear_forward(a, b),
            lambda xs=xs, ws=ws: _core.conv2d_forward(xs, ws, None, one, zero, one, 1, False),
            args.rounds,
            reps,
        )
        print(f"| {m} | {n} | {k} | {t1 * 1e6:.1f} | {t2 * 1e6:.1f} | {t2 / t1:.2f}x |")


if __name__ == "__main__":
    main()
