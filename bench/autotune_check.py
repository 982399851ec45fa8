"""Does the conv2d autotuner pick at least as well as the built-in thresholds?

For each of ~30 conv layers of real CNNs (kernel 1/3/5/7, stride 1/2, 3 to 512 channels, 7x7 to
224x224 planes, batch 1 to 64, dense, grouped and depthwise) and each pass (forward, grad_input,
grad_weight), this script

  1. runs the call with the autotuner off: the ordered list's choice (the thresholds');
  2. runs it with the autotuner on and an empty cache: the tuning call, whose wall time is the
     first-call cost, reported also in units of the winner's steady time;
  3. if the two picks differ, times both alternately (off, on, on, off, ...) and reports the
     median of the per-pair ratios threshold time / tuned time (> 1: the tuner's pick is faster).
     Identical picks are reported as 1.00 without timing.

Usage (prints a markdown table; a shared machine is noisy, so repeat before believing a ratio):
    CNNFAST_ISA=avx512 python bench/autotune_check.py [--reps 9] [--only SUBSTR]
    CNNFAST_ISA=avx2   python bench/autotune_check.py
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

import cnnfast
from cnnfast import _core

# (id, input NCHW, weight KCRS, stride, padding, groups)
SHAPES = [
    ("lenet-c1 b64", (64, 1, 28, 28), (6, 1, 5, 5), 1, 2, 1),
    ("lenet-c2 b64", (64, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1),
    ("cifar 3->32 5x5 b64", (64, 3, 32, 32), (32, 3, 5, 5), 1, 2, 1),
    ("cifar-resnet 16@32 b64", (64, 16, 32, 32), (16, 16, 3, 3), 1, 1, 1),
    ("cifar-resnet 32@16 b64", (64, 32, 16, 16), (32, 32, 3, 3), 1, 1, 1),
    ("cifar-resnet 64@8 b64", (64, 64, 8, 8), (64, 64, 3, 3), 1, 1, 1),
    ("resnet stem 7x7/2 b1", (1, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1),
    ("resnet 64@56 b1", (1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("resnet 64@56 b16", (16, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("resnet 64->128/2 b1", (1, 64, 56, 56), (128, 64, 3, 3), 2, 1, 1),
    ("resnet 1x1 64->128/2 b1", (1, 64, 56, 56), (128, 64, 1, 1), 2, 0, 1),
    ("resnet 128@28 b1", (1, 128, 28, 28), (128, 128, 3, 3), 1, 1, 1),
    ("resnet 256@14 b1", (1, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1),
    ("resnet 256->512/2 b8", (8, 256, 14, 14), (512, 256, 3, 3), 2, 1, 1),
    ("resnet 512@7 b1", (1, 512, 7, 7), (512, 512, 3, 3), 1, 1, 1),
    ("resnet 512@7 b8", (8, 512, 7, 7), (512, 512, 3, 3), 1, 1, 1),
    ("vgg 3->64@112 b4", (4, 3, 112, 112), (64, 3, 3, 3), 1, 1, 1),
    ("vgg 128@56 b4", (4, 128, 56, 56), (128, 128, 3, 3), 1, 1, 1),
    ("unet 64@112 b1", (1, 64, 112, 112), (64, 64, 3, 3), 1, 1, 1),
    ("3x3 32@64 b8", (8, 32, 64, 64), (32, 32, 3, 3), 1, 1, 1),
    ("5x5 48->64@32 b4", (4, 48, 32, 32), (64, 48, 5, 5), 1, 2, 1),
    ("7x7 64@14 b2", (2, 64, 14, 14), (64, 64, 7, 7), 1, 3, 1),
    ("mobilenet stem 3->32/2 b8", (8, 3, 112, 112), (32, 3, 3, 3), 2, 1, 1),
    ("mobilenet dw 32@112 b1", (1, 32, 112, 112), (32, 1, 3, 3), 1, 1, 32),
    ("mobilenet dw 128@56 b4", (4, 128, 56, 56), (128, 1, 3, 3), 1, 1, 128),
    ("mobilenet dw 256@28/2 b8", (8, 256, 28, 28), (256, 1, 3, 3), 2, 1, 256),
    ("mobilenet dw 512@14 b16", (16, 512, 14, 14), (512, 1, 3, 3), 1, 1, 512),
    ("mobilenet 1x1 32->64@112 b1", (1, 32, 112, 112), (64, 32, 1, 1), 1, 0, 1),
    ("mobilenet 1x1 512@14 b8", (8, 512, 14, 14), (512, 512, 1, 1), 1, 0, 1),
    ("resnet50 1x1 64->256@56 b4", (4, 64, 56, 56), (256, 64, 1, 1), 1, 0, 1),
    ("resnet50 1x1 256->64@56 b4", (4, 256, 56, 56), (64, 256, 1, 1), 1, 0, 1),
    ("resnet50 1x1 512->128@28 b4", (4, 512, 28, 28), (128, 512, 1, 1), 1, 0, 1),
    ("resnet50 1x1 512->128@7 b16", (16, 512, 7, 7), (128, 512, 1, 1), 1, 0, 1),
    ("1x1 256@14 b16", (16, 256, 14, 14), (256, 256, 1, 1), 1, 0, 1),
    ("pp-lcnet 1x1 256@14 b1", (1, 256, 14, 14), (256, 256, 1, 1), 1, 0, 1),
    ("convnext dw 7x7 96@56 b2", (2, 96, 56, 56), (96, 1, 7, 7), 1, 3, 96),
    ("resnext 3x3 128 g32@56 b2", (2, 128, 56, 56), (128, 4, 3, 3), 1, 1, 32),
    ("alexnet 5x5 96->256 g2@27 b4", (4, 96, 27, 27), (256, 48, 5, 5), 1, 2, 2),
]
PASSES = ("fwd", "bwd_input", "bwd_weight")


def make_call(pass_, x, w, b, gy, args):
    if pass_ == "fwd":
        return lambda: _core.conv2d_forward(x, w, b, *args, False)
    if pass_ == "bwd_input":
        return lambda: _core.conv2d_backward_input(list(x.shape), gy, w, *args)
    return lambda: _core.conv2d_backward_weight(x, list(w.shape), gy, *args, True)


def short(name, pass_, isa):
    if name is None:
        return "ref"
    rest = name.split(f"_{isa}", 1)[1] if f"_{isa}" in name else name
    return rest.lstrip("_") or "gemm"


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=9, help="alternating pairs per differing pick (default 9)")
    ap.add_argument("--only", default="", help="run only shapes whose id contains this")
    a = ap.parse_args()
    isa = cnnfast.get_isa()
    info = cnnfast.runtime_info()
    print(
        f"cnnfast autotune check: ISA {isa}, {info['num_threads']} threads, winograd "
        f"{'on' if info['winograd'] else 'off'}; ratio = threshold pick time / tuned pick time (median of "
        f"{a.reps} alternating pairs; 1.00 = same pick, not timed)\n"
    )
    print(
        "| layer | pass | threshold pick | tuned pick | threshold ms | tuned ms | ratio | first call ms | first call / tuned | candidates |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    ratios, overheads, firsts, differ = [], [], [], 0
    prev = cnnfast.get_autotune()
    for sid, xs, ws, stride, pad, groups in SHAPES:
        if a.only and a.only not in sid:
            continue
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        args = ((stride, stride), (pad, pad), (1, 1), groups)
        y = _core.conv2d_forward(x, w, b, *args, False)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        for pass_ in PASSES:
            call = make_call(pass_, x, w, b, gy, args)
            key = f"conv2d_{pass_}_f32"
            cnnfast.set_autotune(False)
            call()  # warm: scratch, output buffers
            thr = cnnfast.runtime_info()["last_kernels"][key]
            cnnfast.set_autotune(True)
            cnnfast.clear_autotune_cache()
            first = timed(call)
            entry = next((e for e in cnnfast.autotune_cache() if e["pass"] == pass_), None)
            tuned = cnnfast.runtime_info()["last_kernels"][key]
            if entry is None:  # not tuned (small problem): the ordered list runs
                cand = "-"
            else:
                cand = ", ".join(
                    f"{short(k, pass_, isa)}{'*' if entry['relaxed'][k] else ''} {v:.2f}"
                    for k, v in entry["times_ms"].items()
                )
            t_on = []
            if thr == tuned:
                for _ in range(3):
                    t_on.append(timed(call))
                t_off, ratio = t_on, 1.0
            else:
                differ += 1
                t_off, rs = [], []
                for r in range(a.reps):
                    order = (False, True) if r % 2 == 0 else (True, False)
                    pair = {}
                    for on in order:
                        cnnfast.set_autotune(on)
                        pair[on] = timed(call)
                    t_off.append(pair[False]), t_on.append(pair[True])
                    rs.append(pair[False] / pair[True])
                ratio = statistics.median(rs)
            cnnfast.set_autotune(True)
            steady = statistics.median(t_on)
            ratios.append(ratio)
            if entry is not None:
                overheads.append(first / steady)
                firsts.append(first)
            print(
                f"| {sid} | {pass_} | {short(thr, pass_, isa)} | {short(tuned, pass_, isa)} | "
                f"{statistics.median(t_off) * 1e3:.2f} | {steady * 1e3:.2f} | {ratio:.2f} | {first * 1e3:.1f} | "
                f"{first / steady:.1f} | {cand} |",
                flush=True,
            )
    cnnfast.set_autotune(prev)
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(
        f"\n{len(ratios)} cases, {differ} with a different pick; ratio geomean {geo:.3f}, min {min(ratios):.2f}, "
        f"max {max(ratios):.2f}"
    )
    if overheads:
        print(
            f"first call (tuned cases): median {statistics.median(overheads):.1f}x the tuned steady call, "
            f"max {max(overheads):.1f}x; median {statistics.median(firsts) * 1e3:.1f} ms, max {max(firsts) * 1e3:.1f} ms, "
            f"total {sum(firsts):.2f} s"
        )
    print("(* = candidate the thresholds decline, timed with them relaxed)")


if __name__ == "__main__":
    main()
