"""Which conv2d grad_input kernel is faster, per shape: the default dispatch and each named kernel
pinned (``_core._pin_conv2d_kernel``; a pinned kernel that declines falls through to the next, and
the line shows which one ran), alternating round by round in one process, cnnfast only, medians.
It is the measurement behind the small-plane col2im rule (is_small_plane_bwd_input in
csrc/kernels/conv2d/conv2d_plane.h: not with 512-bit vectors). Run it per ISA:

    python bench/grad_input_choice.py                       # the CPU's best ISA
    python bench/grad_input_choice.py --isa avx2 --only lenet
"""

from __future__ import annotations

import argparse
import re
import time
from functools import partial

import numpy as np

import cnnfast
from cnnfast import _core

# name: (N, C, H, K, kernel, padding); stride 1 (the col2im kernel's case)
CASES = {
    "lenet_c2_12_n64": (64, 6, 12, 16, 5, 0),
    "lenet_c2_14_n64": (64, 6, 14, 16, 5, 0),
    "lenet_c2_12_n256": (256, 6, 12, 16, 5, 0),
    "lenet_c2_12_n8": (8, 6, 12, 16, 5, 0),
    "lenet_c2_12_n1": (1, 6, 12, 16, 5, 0),
    "3x3_16to32_16_n64": (64, 16, 16, 32, 3, 1),
    "3x3_8to16_8_n64": (64, 8, 8, 16, 3, 1),
    "3x3_3to16_32_n32": (32, 3, 32, 16, 3, 1),
    "3x3_32to32_8_n16": (16, 32, 8, 32, 3, 1),
    "5x5_4to8_28_n64": (64, 4, 28, 8, 5, 2),
    "5x5_12to24_20_n32": (32, 12, 20, 24, 5, 2),
}


def _median_ms(f, seconds):
    for _ in range(3):
        f()
    ts, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds or len(ts) < 5:
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", help="cnnfast ISA (default: the CPU's best)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.3, help="timing window per kernel and round")
    ap.add_argument("--only", metavar="REGEX", help="cases whose name matches")
    args = ap.parse_args(argv)
    if args.isa:
        cnnfast.set_isa(args.isa)
    cnnfast.set_num_threads(args.threads)
    isa = cnnfast.get_isa()
    pins = [None, f"conv2d_bwd_input_f32_{isa}_dense", f"conv2d_bwd_input_f32_{isa}"]
    rng = np.random.default_rng(0)
    print(f"CPU ISA {isa}, {args.threads} threads; grad_input ms (medians over {args.rounds} rounds); kernel that ran")
    for name, (N, C, H, K, R, p) in CASES.items():
        if args.only and not re.search(args.only, name):
            continue
        w = rng.standard_normal((K, C, R, R), dtype=np.float32)
        oh = H + 2 * p - R + 1
        gy = rng.standard_normal((N, K, oh, oh), dtype=np.float32)
        f = partial(_core.conv2d_backward_input, (N, C, H, H), gy, w, (1, 1), (p, p), (1, 1), 1)
        times = {pin: [] for pin in pins}
        ran = {}
        try:
            for _ in range(args.rounds):
                for pin in pins:
                    _core._pin_conv2d_kernel(pin)
                    times[pin].append(_median_ms(f, args.seconds))
                    ran[pin] = cnnfast.runtime_info()["last_kernels"]["conv2d_bwd_input_f32"]
        finally:
            _core._pin_conv2d_kernel(None)
        cells = [
            f"{'default' if pin is None else pin.rsplit('_f32_', 1)[1]}={np.median(times[pin]):.3f} ({ran[pin]})"
            for pin in pins
        ]
        print(f"{name:20s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
