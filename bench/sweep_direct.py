"""Sweep of the shapes the direct conv kernels and max_pool2d serve (issue 9): cnnfast on AVX-512
and on AVX2 against PyTorch, each framework in a fresh process of its own.

    python bench/sweep_direct.py                 # everything (a few minutes on 2 cores)
    python bench/sweep_direct.py -k lenet -k pool  # cases whose name contains any of these
    python bench/sweep_direct.py --rounds 15 --threads 2
    python bench/sweep_direct.py --threads 1 --clock cpu   # on a loaded machine: CPU time, 1 thread

One worker process per framework (cnnfast is never imported in the torch worker and vice versa).
The cnnfast worker alternates the ISAs round by round (CNNFAST_ISA through cnnfast.set_isa), so both
see the same machine load; each figure is the median over rounds of the mean time of a round's
calls. Speed-ups are torch time / cnnfast time. The answers are checked against torch's within
the float32 tolerance of tests/reference.py before timing (a wrong kernel never gets a figure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# (name, N, C, H, W, K, R, stride, pad, groups, passes)
ALL = ("fwd", "bwd_input", "bwd_weight")
CONV = [
    ("lenet_c1_n64", 64, 1, 28, 28, 6, 5, 1, 2, 1, ALL),
    ("lenet_c2_n64_14", 64, 6, 14, 14, 16, 5, 1, 0, 1, ALL),
    ("lenet_c2_n64_12", 64, 6, 12, 12, 16, 5, 1, 0, 1, ALL),
    ("lenet_c1_n256", 256, 1, 28, 28, 6, 5, 1, 2, 1, ("fwd",)),  # inference batch
    ("lenet_c2_n256_14", 256, 6, 14, 14, 16, 5, 1, 0, 1, ("fwd",)),
    ("resnet_3x3_512x7_n1", 1, 512, 7, 7, 512, 3, 1, 1, 1, ALL),
    ("stem_n16", 16, 3, 224, 224, 64, 7, 2, 3, 1, ALL),
    ("stem_n1", 1, 3, 224, 224, 64, 7, 2, 3, 1, ALL),
    ("5x5_48to64_32_n4", 4, 48, 32, 32, 64, 5, 1, 2, 1, ALL),
]
# MobileNetV2 depthwise 3x3 layers (channels, plane, stride).
for c, hw, s in [
    (32, 112, 1),
    (96, 112, 2),
    (144, 56, 1),
    (144, 56, 2),
    (192, 28, 1),
    (192, 28, 2),
    (384, 14, 1),
    (576, 14, 1),
    (576, 14, 2),
    (960, 7, 1),
]:
    for n in (1, 16):
        CONV.append((f"dw_{c}x{hw}_s{s}_n{n}", n, c, hw, hw, c, 3, s, 1, c, ALL))

# (name, N, C, H, W, k, s, p)
POOL = [
    ("pool_lenet_64x6x28_2x2s2", 64, 6, 28, 28, 2, 2, 0),
    ("pool_lenet_64x16x10_2x2s2", 64, 16, 10, 10, 2, 2, 0),
    ("pool_lenet_64x6x24_2x2s2", 64, 6, 24, 24, 2, 2, 0),
    ("pool_lenet_64x6x24_3x3s2p1", 64, 6, 24, 24, 3, 2, 1),
    ("pool_resnet_16x64x112_2x2s2", 16, 64, 112, 112, 2, 2, 0),
    ("pool_resnet_16x64x112_3x3s2p1", 16, 64, 112, 112, 3, 2, 1),
]
POOL_PASSES = ("fwd", "fwd_idx", "bwd")


def _data(kind, case):
    rng = np.random.default_rng(0)
    if kind == "conv":
        _, N, C, H, W, K, R, s, p, g, _ = case
        OH = (H + 2 * p - R) // s + 1
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal((K, C // g, R, R)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        gy = rng.standard_normal((N, K, OH, OH)).astype(np.float32)
        return x, w, b, gy
    _, N, C, H, W, k, s, p = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    OH = (H + 2 * p - k) // s + 1
    gy = rng.standard_normal((N, C, OH, OH)).astype(np.float32)
    return x, gy


def _fns(framework, kind, case, passes):
    """{pass: zero-argument callable returning a NumPy result}."""
    if kind == "conv":
        x, w, b, gy = _data(kind, case)
        _, N, C, H, W, K, R, s, p, g, _ = case
        if framework == "torch":
            import torch

            F = torch.nn.functional
            xt, wt, bt, gyt = (torch.from_numpy(a) for a in (x, w, b, gy))
            cb = torch.ops.aten.convolution_backward

            def fwd():
                with torch.no_grad():
                    return F.conv2d(xt, wt, bt, s, p, 1, g).numpy()

            return {
                "fwd": fwd,
                "bwd_input": lambda: cb(
                    gyt, xt, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], g, [True, False, False]
                )[0].numpy(),
                "bwd_weight": lambda: cb(
                    gyt, xt, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], g, [False, True, False]
                )[1].numpy(),
            }
        import cnnfast

        F = cnnfast.functional
        return {
            "fwd": lambda: F.conv2d(x, w, b, s, p, 1, g),
            "bwd_input": lambda: F.conv2d_input(x.shape, w, gy, s, p, 1, g),
            "bwd_weight": lambda: F.conv2d_weight(x, w.shape, gy, s, p, 1, g),
        }
    x, gy = _data(kind, case)
    _, N, C, H, W, k, s, p = case
    if framework == "torch":
        import torch

        F = torch.nn.functional
        xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
        with torch.no_grad():
            _, it = F.max_pool2d(xt, k, s, p, return_indices=True)
        bwd = torch.ops.aten.max_pool2d_with_indices_backward

        def fwd():
            with torch.no_grad():
                return F.max_pool2d(xt, k, s, p).numpy()

        def fwd_idx():
            with torch.no_grad():
                y, i = F.max_pool2d(xt, k, s, p, return_indices=True)
            return y.numpy()

        return {
            "fwd": fwd,
            "fwd_idx": fwd_idx,
            "bwd": lambda: bwd(gyt, xt, [k, k], [s, s], [p, p], [1, 1], False, it).numpy(),
        }
    import cnnfast

    _, idx = cnnfast.max_pool2d(x, k, s, p, return_indices=True)
    return {
        "fwd": lambda: cnnfast.max_pool2d(x, k, s, p),
        "fwd_idx": lambda: cnnfast.max_pool2d(x, k, s, p, return_indices=True)[0],
        "bwd": lambda: cnnfast.max_pool2d_backward(gy, x.shape, idx, k, s, p),
    }


_CLOCK = time.perf_counter


def _time(fn, target_s=0.02):
    """Mean seconds per call (wall, or process CPU time with --clock cpu) over enough calls to fill
    target_s."""
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(1, int(target_s / one))
    t0 = _CLOCK()
    for _ in range(n):
        fn()
    return (_CLOCK() - t0) / n


def worker(framework, names, rounds, threads):
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        variants = ["torch"]
    else:
        import cnnfast

        cnnfast.set_num_threads(threads)
        variants = [v for v in ("avx512", "avx2") if v in cnnfast.runtime_info()["available_isas"]]
    out = {}
    for kind, cases in (("conv", CONV), ("pool", POOL)):
        for case in cases:
            if case[0] not in names:
                continue
            passes = case[-1] if kind == "conv" else POOL_PASSES
            fns = _fns(framework, kind, case, passes)
            for pass_ in passes:
                fn = fns[pass_]
                res = {}
                times = {v: [] for v in variants}
                for _ in range(rounds):
                    for v in variants:
                        if framework != "torch":
                            cnnfast.set_isa(v)
                        if v not in res:
                            res[v] = np.asarray(fn())
                        times[v].append(_time(fn))
                out[f"{case[0]}|{pass_}"] = {v: float(np.median(t)) for v, t in times.items()}
                for v in variants:
                    np.save(_res_path(case[0], pass_, v), res[v])
    print(json.dumps(out))


def _res_path(name, pass_, variant):
    d = Path(os.environ.get("SWEEP_TMP", "/tmp"))
    return d / f"sweep_direct_{name}_{pass_}_{variant}.npy"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", action="append", default=[], help="substring of the case names to run (repeatable)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time, robust on a loaded machine (use with --threads 1: with more"
        " threads it counts spinning workers too)",
    )
    ap.add_argument("--worker", choices=("torch", "cnnfast"))
    ap.add_argument("--names")
    a = ap.parse_args()
    global _CLOCK
    _CLOCK = time.process_time if a.clock == "cpu" else time.perf_counter
    if a.worker:
        worker(a.worker, set(a.names.split(",")), a.rounds, a.threads)
        return
    names = [c[0] for c in CONV + POOL if not a.k or any(k in c[0] for k in a.k)]
    env = dict(os.environ, SWEEP_TMP=os.environ.get("SWEEP_TMP", "/tmp"))
    res = {}
    for fw in ("cnnfast", "torch"):
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            fw,
            "--names",
            ",".join(names),
            "--rounds",
            str(a.rounds),
            "--threads",
            str(a.threads),
            "--clock",
            a.clock,
        ]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"{fw} worker failed:\n{r.stderr}")
        res[fw] = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"# {a.threads} threads, {a.rounds} rounds, {a.clock} clock, medians; speed-up = torch time / cnnfast time")
    print("| case | pass | avx512 ms | avx2 ms | torch ms | avx512 x | avx2 x | check |")
    print("|---|---|---|---|---|---|---|---|")
    for key, tv in res["torch"].items():
        name, pass_ = key.split("|")
        cv = res["cnnfast"][key]
        tt = tv["torch"]
        want = np.load(_res_path(name, pass_, "torch")).astype(np.float64)
        ok = []
        for v in ("avx512", "avx2"):
            if v in cv:
                got = np.load(_res_path(name, pass_, v)).astype(np.float64)
                err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
                ok.append(err <= 5e-4)
        c5 = cv.get("avx512", float("nan"))
        c2 = cv.get("avx2", float("nan"))
        print(
            f"| {name} | {pass_} | {c5 * 1e3:.3f} | {c2 * 1e3:.3f} | {tt * 1e3:.3f} | {tt / c5:.2f} | {tt / c2:.2f} |"
            f" {'ok' if all(ok) else 'WRONG'} |"
        )


if __name__ == "__main__":
    main()
