"""Winograd weight gradient against the path that runs without it (GEMM or direct), per shape.

The measurement behind the Winograd weight-gradient thresholds (wgrad_pays_off in
csrc/kernels/conv2d/conv2d_winograd_wgrad.h). One process, cnnfast only: each round times
conv2d_weight with set_winograd(True) then set_winograd(False) (alternating, so machine noise hits
both), and the speedup is the median over rounds of (time without / time with Winograd). With the
thresholds as committed, shapes Winograd declines show the same kernel on both sides (ratio ~1);
`--relaxed` pins the Winograd kernel (cnnfast._core._pin_conv2d_kernel: heuristics relaxed) for the
"on" side, so it runs wherever it can and the ratio is the raw one. Run it per ISA:

    python bench/winograd_wgrad_choice.py --relaxed            # the CPU's best ISA
    CNNFAST_ISA=avx2 python bench/winograd_wgrad_choice.py --relaxed
    python bench/winograd_wgrad_choice.py --cases fair          # the bench/fair.py 3x3 cases
"""

from __future__ import annotations

import argparse
import itertools
import re
import time

import numpy as np

import cnnfast
from cnnfast import _core

# The 3x3 stride-1 layers of bench/fair.py's conv suites: name: (N, C, H, W, K, padding).
FAIR = {
    "resnet_3x3_64x56_n1": (1, 64, 56, 56, 64, 1),
    "resnet_3x3_128x28_n1": (1, 128, 28, 28, 128, 1),
    "resnet_3x3_256x14_n1": (1, 256, 14, 14, 256, 1),
    "resnet_3x3_512x7_n1": (1, 512, 7, 7, 512, 1),
    "resnet_3x3_64x56_n16": (16, 64, 56, 56, 64, 1),
    "resnet_3x3_128x28_n16": (16, 128, 28, 28, 128, 1),
    "resnet_3x3_256x14_n16": (16, 256, 14, 14, 256, 1),
    "resnet_3x3_512x7_n16": (16, 512, 7, 7, 512, 1),
    "issue_3x3_32x64_n8": (8, 32, 64, 64, 32, 1),
    "cifar_3x3_16x32_n64": (64, 16, 32, 32, 16, 1),
    "cifar_3x3_64x8_n64": (64, 64, 8, 8, 64, 1),
    "alexnet_c3_n4": (4, 192, 13, 13, 384, 1),
    "vgg_c2_n1": (1, 64, 224, 224, 64, 1),
    "vgg_c3_n1": (1, 64, 112, 112, 128, 1),
    "vgg_c6_n1": (1, 256, 56, 56, 256, 1),
    "vgg_c9_n2": (2, 512, 14, 14, 512, 1),
    "r18_3x3_128x28_n8": (8, 128, 28, 28, 128, 1),
    "r18_3x3_256x14_n4": (4, 256, 14, 14, 256, 1),
    "r18_3x3_512x7_n8": (8, 512, 7, 7, 512, 1),
}


def sweep(max_macs):
    """C = K in 16..512, planes 7..112, batch 1..64, up to max_macs multiply-adds per call."""
    out = {}
    for c, hw, n in itertools.product((16, 32, 64, 128, 256, 512), (7, 14, 28, 56, 112), (1, 4, 16, 64)):
        if 9 * c * c * n * hw * hw <= max_macs:
            out[f"c{c}_{hw}px_n{n}"] = (n, c, hw, hw, c, 1)
    # Unequal channel counts (the 8..16-channel edge, wide K).
    for n, c, hw, k in (
        (16, 8, 28, 64),
        (16, 16, 28, 64),
        (16, 64, 28, 8),
        (16, 64, 28, 16),
        (4, 64, 14, 512),
        (4, 512, 14, 64),
    ):
        out[f"c{c}k{k}_{hw}px_n{n}"] = (n, c, hw, hw, k, 1)
    return out


def _time(f, reps):
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / reps


def measure(shape, rounds, rng, relaxed):
    n, c, h, w, k, pad = shape
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    gy = rng.standard_normal((n, k, h + 2 * pad - 2, w + 2 * pad - 2), dtype=np.float32)

    wino = f"conv2d_bwd_weight_f32_{cnnfast.get_isa()}_winograd"

    def setup(on):
        cnnfast.set_winograd(on)
        _core._pin_conv2d_kernel(wino if on and relaxed else None)

    def call():
        return cnnfast.conv2d_weight(x, (k, c, 3, 3), gy, stride=1, padding=pad)

    names, t = {}, {True: [], False: []}
    for on in (True, False):  # warm-up, kernel names
        setup(on)
        call()
        names[on] = cnnfast.runtime_info()["last_kernels"]["conv2d_bwd_weight_f32"].rsplit("_f32_", 1)[-1]
    setup(True)
    probe = _time(call, 1)
    reps = max(1, int(0.05 / max(probe, 1e-6)))
    for _ in range(rounds):
        for on in (True, False):
            setup(on)
            t[on].append(_time(call, reps))
    setup(True)
    ratios = np.array(t[False]) / np.array(t[True])
    return names, float(np.median(t[True])), float(np.median(t[False])), float(np.median(ratios))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", choices=("sweep", "fair"), default="sweep")
    p.add_argument("--only", metavar="REGEX", help="run only cases whose name matches")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-macs", type=float, default=3e9, help="sweep: skip shapes above this many multiply-adds")
    p.add_argument("--relaxed", action="store_true", help="heuristics relaxed: Winograd runs wherever it can")
    args = p.parse_args(argv)
    cnnfast.set_num_threads(args.threads)
    cases = FAIR if args.cases == "fair" else sweep(args.max_macs)
    if args.only:
        cases = {k: v for k, v in cases.items() if re.search(args.only, k)}
    rng = np.random.default_rng(0)
    prev = cnnfast.get_winograd()
    print(
        f"ISA {cnnfast.get_isa()}, {args.threads} threads, heuristics {'relaxed' if args.relaxed else 'as built'}; "
        f"ms per call (median of {args.rounds} alternating rounds); speedup = median(time off / time on)"
    )
    print(
        f"{'case':24} {'N':>3} {'C':>4} {'HxW':>7} {'K':>4} {'on ms':>8} {'off ms':>8} {'speedup':>8}  kernels on / off"
    )
    try:
        for name, shape in cases.items():
            names, on, off, r = measure(shape, args.rounds, rng, args.relaxed)
            n, c, h, w, k, _ = shape
            print(
                f"{name:24} {n:3} {c:4} {f'{h}x{w}':>7} {k:4} {on * 1e3:8.3f} {off * 1e3:8.3f} {r:7.2f}x  "
                f"{names[True]} / {names[False]}",
                flush=True,
            )
    finally:
        cnnfast.set_winograd(prev)
        _core._pin_conv2d_kernel(None)


if __name__ == "__main__":
    main()
