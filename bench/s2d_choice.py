"""Space-to-depth (``conv2d_*_s2d``) against the direct and GEMM kernels on strided large-filter
convs with few input channels, forward and weight gradient, each kernel pinned in turn
(``_core._pin_conv2d_kernel``), in one process with the kernels alternating, medians (issue 9).

    python bench/s2d_choice.py                 # AVX-512 if the CPU has it, 2 threads
    python bench/s2d_choice.py --isa avx2 --threads 1

The kernel takes filters of 9x9 and more whose stride splits them into 3x3 (ceil(R / s) = 3) and
16-64 phase channels; elsewhere it declines even when pinned (then the row times another kernel).
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

import cnnfast
from cnnfast import _core

# (N, C, H, K, R, stride, padding)
CASES = [
    (4, 3, 224, 64, 11, 4, 2),  # torchvision AlexNet conv1
    (1, 3, 224, 64, 11, 4, 2),
    (8, 3, 227, 96, 11, 4, 0),  # the 2012 AlexNet's conv1
    (2, 3, 96, 32, 9, 3, 4),  # 9x9/3: 27 channels of 3x3
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    cnnfast.set_num_threads(args.threads)
    if args.isa:
        cnnfast.set_isa(args.isa)
    isa = _core.get_isa()
    cpu = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    print(f"CPU: {model.group(1) if model else '?'} | ISA {isa} | threads {args.threads} | wall time, medians")
    print("| N, C, H, K, R, stride, pad | pass | s2d (ms) | direct (ms) | GEMM (ms) | best other / s2d |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for N, C, H, K, R, s, p in CASES:
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((K, C, R, R)) * 0.05).astype(np.float32)
        b = np.zeros(K, np.float32)
        y = _core.conv2d_forward(x, w, b, (s, s), (p, p), (1, 1), 1, False)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        passes = {
            "fwd": lambda: _core.conv2d_forward(x, w, b, (s, s), (p, p), (1, 1), 1, False),  # noqa: B023
            "bwd_weight": lambda: _core.conv2d_backward_weight(x, w.shape, gy, (s, s), (p, p), (1, 1), 1, True),  # noqa: B023
        }
        for d, f in passes.items():
            names = {
                "s2d": f"conv2d_{d}_f32_{isa}_s2d",
                "direct": f"conv2d_{d}_f32_{isa}_dense",
                "gemm": f"conv2d_{d}_f32_{isa}",
            }
            ts = {k: [] for k in names}
            try:
                for _ in range(args.rounds):
                    for k, n in names.items():
                        _core._pin_conv2d_kernel(n)
                        c = time.perf_counter()
                        f()
                        ts[k].append(time.perf_counter() - c)
            finally:
                _core._pin_conv2d_kernel(None)
            med = {k: float(np.median(v)) * 1e3 for k, v in ts.items()}
            best = min(med["direct"], med["gemm"])
            print(
                f"| {N}, {C}, {H}, {K}, {R}, {s}, {p} | {d} | {med['s2d']:.3f} | {med['direct']:.3f} | "
                f"{med['gemm']:.3f} | {best / med['s2d']:.2f}x |"
            )


if __name__ == "__main__":
    main()
