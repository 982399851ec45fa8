"""Which conv2d weight-gradient kernel is faster, per shape: the autotuner times every kernel able
to compute the layer (heuristics relaxed) and this prints their times. It is the measurement behind
the direct-kernel limits kSmallCBwdWeightMaxK (csrc/kernels/conv2d/conv2d_small_c.h: 32 output
channels on AVX-512, 33 on AVX2) and is_wide_plane_bwd_weight (conv2d_plane.h). One process,
cnnfast only; run it per ISA:

    python bench/conv_weight_grad_choice.py                 # the CPU's best ISA
    CNNFAST_ISA=avx2 python bench/conv_weight_grad_choice.py

On a busy machine (wall times of the autotuner swing 2-3x) compare builds instead with --cpu-time:
the default dispatch's thread CPU time on 1 thread, minimum of --repeats calls; run it under each
build (PYTHONPATH=checkout-A, then B) and compare the lines. --forward times conv2d forward instead.
"""

from __future__ import annotations

import argparse
import re
import time
from functools import partial

import numpy as np

import cnnfast

# name: (input shape, weight shape, stride, padding)
CASES = {
    "resnet_stem_n1": ((1, 3, 224, 224), (64, 3, 7, 7), 2, 3),
    "resnet_stem_n16": ((16, 3, 224, 224), (64, 3, 7, 7), 2, 3),
    "cifar_stem_3to64": ((64, 3, 32, 32), (64, 3, 3, 3), 1, 1),
    "alexnet_c1": ((4, 3, 224, 224), (64, 3, 11, 11), 4, 2),
    "mbv2_stem": ((8, 3, 224, 224), (32, 3, 3, 3), 2, 1),
    "mbv2_stem_n1": ((1, 3, 224, 224), (32, 3, 3, 3), 2, 1),
    "vgg_c1_n1": ((1, 3, 224, 224), (64, 3, 3, 3), 1, 1),
    "c3_k48_64px": ((8, 3, 64, 64), (48, 3, 3, 3), 1, 1),
    "c3_k96_32px": ((16, 3, 32, 32), (96, 3, 3, 3), 1, 1),
    "c1_k64_28px": ((64, 1, 28, 28), (64, 1, 3, 3), 1, 1),
    "c3_k128_5x5_s2": ((8, 3, 128, 128), (128, 3, 5, 5), 2, 2),
    "c4_k64_7x7_n4": ((4, 4, 112, 112), (64, 4, 7, 7), 2, 3),
    "lenet_c1": ((64, 1, 28, 28), (6, 1, 5, 5), 1, 0),
    "lenet_cifar_c1": ((64, 3, 32, 32), (6, 3, 5, 5), 1, 0),
    "c3_k16_5x5": ((32, 3, 64, 64), (16, 3, 5, 5), 1, 2),
    "c3_k24_3x3": ((16, 3, 64, 64), (24, 3, 3, 3), 1, 1),
    "c1_k32_5x5": ((16, 1, 64, 64), (32, 1, 5, 5), 1, 2),
    "c16_k16_32px": ((64, 16, 32, 32), (16, 16, 3, 3), 1, 1),
    "c8_k16_56px": ((16, 8, 56, 56), (16, 8, 3, 3), 1, 1),
    "c32_k8_56px": ((8, 32, 56, 56), (8, 32, 3, 3), 1, 1),
    "c16_k32_64px": ((8, 16, 64, 64), (32, 16, 3, 3), 1, 1),
    "c32_k32_28px": ((16, 32, 28, 28), (32, 32, 3, 3), 1, 1),
    "pw_32to16_112px": ((8, 32, 112, 112), (16, 32, 1, 1), 1, 0),
    "pw_64to16_56px": ((8, 64, 56, 56), (16, 64, 1, 1), 1, 0),
    "issue_3x3_32x64": ((8, 32, 64, 64), (32, 32, 3, 3), 1, 1),
    "cifar_3x3_16x32": ((64, 16, 32, 32), (16, 16, 3, 3), 1, 1),
}


def cpu_time(args):
    """Default dispatch, 1 thread: min thread CPU time of args.repeats calls per case."""
    cnnfast.set_num_threads(1)
    rng = np.random.default_rng(0)
    what = "forward" if args.forward else "bwd_weight"
    print(f"ISA {cnnfast.get_isa()}, 1 thread, {what}: ms thread CPU time, min of {args.repeats} calls")
    for name, (xs, ws, s, pad) in CASES.items():
        if args.only and not re.search(args.only, name):
            continue
        x = rng.standard_normal(xs, dtype=np.float32)
        if args.forward:
            w = rng.standard_normal(ws, dtype=np.float32)
            call, key = partial(cnnfast.conv2d, x, w, None, s, pad), "conv2d_fwd_f32"
        else:
            g = rng.standard_normal(cnnfast.conv2d_output_shape(xs, ws, s, pad), dtype=np.float32)
            call, key = partial(cnnfast.conv2d_weight, x, ws, g, stride=s, padding=pad), "conv2d_bwd_weight_f32"
        call()
        best = float("inf")
        for _ in range(args.repeats):
            t = time.thread_time()
            call()
            best = min(best, time.thread_time() - t)
        print(f"{name:18} {best * 1e3:8.3f}   {cnnfast.runtime_info()['last_kernels'][key]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="tunings per case (each one times every kernel)")
    p.add_argument("--cpu-time", action="store_true", help="time the default dispatch only (see above)")
    p.add_argument("--forward", action="store_true", help="with --cpu-time: conv2d forward")
    p.add_argument("--only", metavar="REGEX", help="cases whose name matches")
    args = p.parse_args(argv)
    if args.cpu_time:
        cpu_time(args)
        return
    cnnfast.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    prev = cnnfast.get_autotune()
    cnnfast.set_autotune(True)
    try:
        print(f"ISA {cnnfast.get_isa()}, {args.threads} threads; ms per call, median of {args.repeats} tunings")
        for name, (xs, ws, s, pad) in CASES.items():
            if args.only and not re.search(args.only, name):
                continue
            x = rng.standard_normal(xs, dtype=np.float32)
            g = rng.standard_normal(cnnfast.conv2d_output_shape(xs, ws, s, pad), dtype=np.float32)
            times = {}
            for _ in range(args.repeats):
                cnnfast.clear_autotune_cache()
                cnnfast.conv2d_weight(x, ws, g, stride=s, padding=pad)
                (e,) = [e for e in cnnfast.autotune_cache() if e["pass"] == "bwd_weight"]
                for k, v in e["times_ms"].items():
                    times.setdefault(k, []).append(v)
            med = {
                k.rsplit("_", 1)[-1] if k.endswith("_dense") else "gemm": float(np.median(v)) for k, v in times.items()
            }
            cnnfast.set_autotune(False)
            cnnfast.conv2d_weight(x, ws, g, stride=s, padding=pad)
            chosen = cnnfast.runtime_info()["last_kernels"]["conv2d_bwd_weight_f32"]
            cnnfast.set_autotune(True)
            cols = "  ".join(f"{k} {v:7.3f}" for k, v in sorted(med.items()))
            print(f"{name:18} {cols}   default: {'dense' if chosen.endswith('_dense') else 'gemm'}")
    finally:
        cnnfast.set_autotune(prev)
        cnnfast.clear_autotune_cache()


if __name__ == "__main__":
    main()
