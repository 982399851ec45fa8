"""Linear-layer products on cnnfast's GEMM: ``_gemm.mm`` with a transposed copy vs the
copy-free mappings ``mm_nt`` (x @ W.T) and ``mm_tn`` (g.T @ x), on LeNet-5's Linear shapes.

    python bench/linear_gemm.py [--threads 2] [--rounds 200]

Prints the median microseconds of each, the two variants timed alternately in one process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cnnfast
from cnnfast._gemm import mm, mm_nt, mm_tn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    cnnfast.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"ISA {cnnfast.get_isa()}, {args.threads} threads; median us over {args.rounds} alternating rounds")
    print("| batch | in | out | x@W.T: mm+copy | mm_nt | g.T@x: mm+copy | mm_tn |")
    print("|---|---|---|---|---|---|---|")
    for b in (1, 64, 256):
        for i, o in ((400, 120), (120, 84), (84, 10)):
            x = rng.standard_normal((b, i), dtype=np.float32)
            w = rng.standard_normal((o, i), dtype=np.float32)
            g = rng.standard_normal((b, o), dtype=np.float32)
            fns = [
                lambda: mm(x, np.ascontiguousarray(w.T)),
                lambda: mm_nt(x, w),
                lambda: mm(np.ascontiguousarray(g.T), x),
                lambda: mm_tn(g, x),
            ]
            np.testing.assert_allclose(fns[0](), fns[1](), rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(fns[2](), fns[3](), rtol=1e-4, atol=1e-3)
            times = [[] for _ in fns]
            for _ in range(args.rounds):
                for f, t in zip(fns, times):
                    t0 = time.perf_counter()
                    f()
                    t.append(time.perf_counter() - t0)
            print(f"| {b} | {i} | {o} | " + " | ".join(f"{np.median(t) * 1e6:.1f}" for t in times) + " |")


if __name__ == "__main__":
    main()
