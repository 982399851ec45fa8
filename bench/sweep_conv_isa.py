"""conv2d per pass on each x86 ISA path next to PyTorch, with % of the FMA peak of the ISA in use.

    python bench/sweep_conv_isa.py                    # the issue-9 shapes (ResNet-18 3x3, known misses)
    python bench/sweep_conv_isa.py --set sweep        # kernel 1/3/5/7, stride 1/2, C 3..576, planes 7..224,
                                                      # N 1..64, dense, grouped and depthwise
    python bench/sweep_conv_isa.py --set all --passes fwd --json out.json
    python bench/sweep_conv_isa.py --threads 1 --clock cpu   # CPU time: holds up on a loaded machine
    python bench/sweep_conv_isa.py --report out.json  # the tables of an earlier run

Each framework runs in a fresh process of its own (cnnfast: both ISAs alternated round by round in
one process, so machine noise hits them alike; PyTorch: a process of its own per cnnfast ISA,
capped to that ISA -- ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2 next to cnnfast's avx2
path -- so each ratio is what a CPU with only that ISA would see; --torch-isa native compares
with PyTorch as it runs here), all capped at --threads. Per case and pass: the median over rounds
of the best of a few calls. % of peak counts direct FLOPs (2*N*K*C/g*R*S*OH*OW, Winograd
included) against cnnfast's own FMA probe (_core._bench_fma_peak, wall clock) of that ISA on the
same thread count, best of 3 probes in the cnnfast process (meaningless under --clock cpu on a
loaded machine). The `kernel` column names what served each ISA's call (last_kernels). After the
table: per ISA and pass, the geomean of the speed ratios (PyTorch time / cnnfast time) and the
worst cases. The figures are for the CPU it runs on; on a shared machine, rerun before believing
a ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, N, C, H, K, R, stride, pad[, groups]); square planes and kernels, groups 1 unless given.
ISSUE = [
    ("r18-64x56-n1", 1, 64, 56, 64, 3, 1, 1),
    ("r18-128x28-n1", 1, 128, 28, 128, 3, 1, 1),
    ("r18-256x14-n1", 1, 256, 14, 256, 3, 1, 1),
    ("r18-512x7-n1", 1, 512, 7, 512, 3, 1, 1),
    ("r18-64x56-n16", 16, 64, 56, 64, 3, 1, 1),
    ("r18-128x28-n16", 16, 128, 28, 128, 3, 1, 1),
    ("r18-256x14-n16", 16, 256, 14, 256, 3, 1, 1),
    ("r18-512x7-n16", 16, 512, 7, 512, 3, 1, 1),
    ("s2-64x56to128-n16", 16, 64, 56, 128, 3, 2, 1),
    ("3x3-32x64-n8", 8, 32, 64, 32, 3, 1, 1),
    ("5x5-48to64x32-n4", 4, 48, 32, 64, 5, 1, 2),
    ("1x1-256x14-n16", 16, 256, 14, 256, 1, 1, 0),
    ("1x1-256to1024x14-n16", 16, 256, 14, 1024, 1, 1, 0),
    ("1x1s2-64to128x56-n16", 16, 64, 56, 128, 1, 2, 0),
    ("1x1s2-256to512x14-n1", 1, 256, 14, 512, 1, 2, 0),
]

# Beyond the published suite: every kernel size / stride with channel counts, planes and batches
# spread over what CNNs use (not one table to tune to).
SWEEP = [
    ("k1-16to32x112-n4", 4, 16, 112, 32, 1, 1, 0),
    ("k1-96to24x56-n8", 8, 96, 56, 24, 1, 1, 0),
    ("k1-512x7-n64", 64, 512, 7, 512, 1, 1, 0),
    ("k1-128to256x28-n1", 1, 128, 28, 256, 1, 1, 0),
    ("k1s2-128to256x28-n16", 16, 128, 28, 256, 1, 2, 0),
    ("k3-16x112-n2", 2, 16, 112, 16, 3, 1, 1),
    ("k3-48to80x40-n4", 4, 48, 40, 80, 3, 1, 1),
    ("k3-96x28-n32", 32, 96, 28, 96, 3, 1, 1),
    ("k3-192x14-n64", 64, 192, 14, 192, 3, 1, 1),
    ("k3-384x7-n8", 8, 384, 7, 384, 3, 1, 1),
    ("k3-256x13-n4", 4, 256, 13, 256, 3, 1, 1),
    ("k3s2-128to256x28-n16", 16, 128, 28, 256, 3, 2, 1),
    ("k3s2-256to512x14-n1", 1, 256, 14, 512, 3, 2, 1),
    ("k3s2-32to64x112-n2", 2, 32, 112, 64, 3, 2, 1),
    ("k5-32to64x28-n16", 16, 32, 28, 64, 5, 1, 2),
    ("k5-64x14-n8", 8, 64, 14, 64, 5, 1, 2),
    ("k5s2-48to96x56-n4", 4, 48, 56, 96, 5, 2, 2),
    ("k7-3to64x224s2-n1", 1, 3, 224, 64, 7, 2, 3),
    ("k7-3to64x224s2-n16", 16, 3, 224, 64, 7, 2, 3),
    ("k7-64x28-n4", 4, 64, 28, 64, 7, 1, 3),
    ("k7-128x14-n16", 16, 128, 14, 128, 7, 1, 3),
    # grouped (ResNeXt-style 32 groups; 2 groups) and depthwise (MobileNet-style, groups = C)
    ("k3g32-128x28-n8", 8, 128, 28, 128, 3, 1, 1, 32),
    ("k3g32s2-256x28-n4", 4, 256, 28, 256, 3, 2, 1, 32),
    ("k3g2-64to128x56-n4", 4, 64, 56, 128, 3, 1, 1, 2),
    ("k1g4-256x14-n16", 16, 256, 14, 256, 1, 1, 0, 4),
    ("dw3-32x112-n4", 4, 32, 112, 32, 3, 1, 1, 32),
    ("dw3s2-96x112-n2", 2, 96, 112, 96, 3, 2, 1, 96),
    ("dw3-576x7-n32", 32, 576, 7, 576, 3, 1, 1, 576),
    ("dw5-240x14-n8", 8, 240, 14, 240, 5, 1, 2, 240),
    ("dw7-128x28-n16", 16, 128, 28, 128, 7, 1, 3, 128),
]

PASSES = ("fwd", "bwd_input", "bwd_weight")


def _out(h, r, s, p):
    return (h + 2 * p - r) // s + 1


def _groups(case):
    return case[8] if len(case) > 8 else 1


def _flops(case):
    _, N, C, H, K, R, s, p = case[:8]
    o = _out(H, R, s, p)
    return 2.0 * N * K * (C // _groups(case)) * R * R * o * o


def _arrays(case):
    import numpy as np

    _, N, C, H, K, R, s, p = case[:8]
    Cg = C // _groups(case)
    rng = np.random.default_rng(0)
    o = _out(H, R, s, p)
    x = rng.standard_normal((N, C, H, H), dtype=np.float32)
    w = rng.standard_normal((K, Cg, R, R), dtype=np.float32) * (1.0 / (Cg * R * R)) ** 0.5
    b = rng.standard_normal(K, dtype=np.float32)
    gy = rng.standard_normal((N, K, o, o), dtype=np.float32)
    return x, w.astype(np.float32), b, gy


def _time(fn, reps):
    # SWEEP_CLOCK=cpu: CPU time of the process instead of wall time. With --threads 1 that leaves
    # out the time the process waits for a core, so A/B comparisons hold on a loaded machine.
    clock = time.process_time if os.environ.get("SWEEP_CLOCK") == "cpu" else time.perf_counter
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def _reps(flops):  # about 60-150 ms of work per round at ~200 GFLOP/s
    return max(2, min(40, int(2e10 / max(flops, 1.0))))


def _cnnfast_fns(_core, x, w, b, gy, args):
    return {
        "fwd": lambda: _core.conv2d_forward(x, w, b, *args, False),
        "bwd_input": lambda: _core.conv2d_backward_input(list(x.shape), gy, w, *args),
        "bwd_weight": lambda: _core.conv2d_backward_weight(x, list(w.shape), gy, *args, True),
    }


def _torch_fns(torch, x, w, b, gy, K, s, p, g):
    conv = torch.ops.aten.convolution_backward
    return {
        "fwd": lambda: torch.nn.functional.conv2d(x, w, b, s, p, 1, g),
        "bwd_input": lambda: conv(gy, x, w, [K], [s, s], [p, p], [1, 1], False, [0, 0], g, [True, False, False]),
        "bwd_weight": lambda: conv(gy, x, w, [K], [s, s], [p, p], [1, 1], False, [0, 0], g, [False, True, True]),
    }


def _worker_cnnfast(cases, passes, rounds, isas):
    import cnnfast
    from cnnfast import _core

    isas = [i for i in isas if i in cnnfast.available_isas()]
    nt = cnnfast.get_num_threads()
    peak = {i: max(_core._bench_fma_peak(i, nt, 0.2) for _ in range(3)) for i in isas}
    out = {"peak": peak, "rows": []}
    for case in cases:
        s, p = case[6:8]
        x, w, b, gy = _arrays(case)
        fns = _cnnfast_fns(_core, x, w, b, gy, ((s, s), (p, p), (1, 1), _groups(case)))
        reps = _reps(_flops(case))
        for ps in passes:
            fn = fns[ps]
            times = {i: [] for i in isas}
            kernel = {}
            for i in isas:  # warm-up (scratch allocation, page faults)
                cnnfast.set_isa(i)
                fn()
                kernel[i] = cnnfast.runtime_info()["last_kernels"][f"conv2d_{ps}_f32"]
            for _ in range(rounds):
                for i in isas:
                    cnnfast.set_isa(i)
                    times[i].append(_time(fn, reps))
            out["rows"].append(
                {
                    "case": case[0],
                    "pass": ps,
                    "kernel": kernel,
                    "ms": {i: 1e3 * statistics.median(t) for i, t in times.items()},
                }
            )
    return out


def _worker_torch(cases, passes, rounds):
    import torch

    torch.set_num_threads(int(os.environ.get("SWEEP_THREADS", "2")))
    out = {"rows": []}
    with torch.no_grad():
        for case in cases:
            K, _, s, p = case[4:8]
            g = _groups(case)
            x, w, b, gy = (torch.from_numpy(a) for a in _arrays(case))
            fns = _torch_fns(torch, x, w, b, gy, K, s, p, g)
            reps = _reps(_flops(case))
            for ps in passes:
                fn = fns[ps]
                fn()
                times = [_time(fn, reps) for _ in range(rounds)]
                out["rows"].append({"case": case[0], "pass": ps, "ms": 1e3 * statistics.median(times)})
    return out


# PyTorch's own ISA caps, to compare each cnnfast ISA with what PyTorch runs on a CPU that has
# only that ISA (oneDNN convolutions, ATen's vectorised kernels such as depthwise).
TORCH_ISA_ENV = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def report(cf, th, cases, passes, threads):
    """Prints the per-case table, then per ISA and pass the geomean of the speed ratios and the worst cases."""
    isas = list(cf["peak"])
    print(f"FMA peak, {threads} threads (GFLOP/s): " + ", ".join(f"{i} {v:.0f}" for i, v in cf["peak"].items()))
    hdr = f"{'case':24s} {'pass':10s} " + " ".join(f"{i + ' ms':>10s} {'%pk':>4s}" for i in isas)
    hdr += " " + " ".join(f"{'torch/' + i:>11s} {'x':>5s}" for i in isas) + "  kernel (" + ", ".join(isas) + ")"
    print(hdr)
    flops = {c[0]: _flops(c) for c in cases}
    tms = {i: {(r["case"], r["pass"]): r["ms"] for r in th[i]["rows"]} for i in th}
    ratios = {}
    for r in cf["rows"]:
        line = f"{r['case']:24s} {r['pass']:10s} "
        for i in isas:
            ms = r["ms"][i]
            line += f"{ms:10.3f} {100 * flops[r['case']] / (ms * 1e-3) / (cf['peak'][i] * 1e9):4.0f} "
        for i in isas:
            t = tms.get(i, {}).get((r["case"], r["pass"]))
            if t:
                ratios.setdefault((i, r["pass"]), []).append((t / r["ms"][i], r["case"]))
                line += f"{t:11.3f} {t / r['ms'][i]:5.2f} "
            else:
                line += f"{'-':>11s} {'-':>5s} "
        ks = [(r["kernel"].get(i) or "").replace(f"conv2d_{r['pass']}_f32_", "") for i in isas]
        print(line + " " + ", ".join(ks))
    if ratios:
        print()
        for i in isas:
            for ps in passes:
                rs = ratios.get((i, ps))
                if rs:
                    gm = math.exp(sum(math.log(x) for x, _ in rs) / len(rs))
                    worst = sorted(rs)[:4]
                    print(
                        f"{i:7s} {ps:10s} geomean {gm:5.2f}x over {len(rs)}, below 0.9x: {sum(x < 0.9 for x, _ in rs)}; "
                        "worst " + ", ".join(f"{c} {x:.2f}x" for x, c in worst)
                    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=["issue", "sweep", "all"], default="issue")
    ap.add_argument("--cases", help="comma-separated case names (substring match) to keep")
    ap.add_argument("--passes", default=",".join(PASSES))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isas", default="avx512,avx2")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument(
        "--torch-isa",
        choices=["matched", "native"],
        default="matched",
        help="matched (default): PyTorch capped to each column's ISA (ONEDNN_MAX_CPU_ISA, "
        "ATEN_CPU_CAPABILITY); native: PyTorch as it runs on this CPU for every column",
    )
    ap.add_argument("--report", help="print the tables of a --json file written earlier and exit")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: process CPU time (use with --threads 1 on a loaded machine)",
    )
    ap.add_argument("--worker", choices=["cnnfast", "torch"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.report:
        d = json.loads(Path(a.report).read_text())
        rows = d["cnnfast"]["rows"]
        report(d["cnnfast"], d["torch"] or {}, d["cases"], list(dict.fromkeys(r["pass"] for r in rows)), a.threads)
        return 0
    cases = {"issue": ISSUE, "sweep": SWEEP, "all": ISSUE + SWEEP}[a.set]
    if a.cases:
        keys = a.cases.split(",")
        cases = [c for c in cases if any(k in c[0] for k in keys)]
    passes = a.passes.split(",")
    if a.worker == "cnnfast":
        json.dump(_worker_cnnfast(cases, passes, a.rounds, a.isas.split(",")), sys.stdout)
        return 0
    if a.worker == "torch":
        json.dump(_worker_torch(cases, passes, a.rounds), sys.stdout)
        return 0

    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(a.threads),
        CNNFAST_NUM_THREADS=str(a.threads),
        SWEEP_THREADS=str(a.threads),
        SWEEP_CLOCK=a.clock,
    )
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    base = [
        sys.executable,
        __file__,
        "--set",
        a.set,
        "--passes",
        a.passes,
        "--rounds",
        str(a.rounds),
        "--isas",
        a.isas,
    ] + (["--cases", a.cases] if a.cases else [])

    def run(worker, extra=None):
        out = subprocess.run(
            base + ["--worker", worker], env=dict(env, **(extra or {})), check=True, capture_output=True, text=True
        )
        return json.loads(out.stdout)

    cf = run("cnnfast")
    th = {}
    if not a.no_torch:
        # PyTorch on the same ISA as each cnnfast column: what it would run on a CPU without
        # AVX-512 (oneDNN's and ATen's own dispatch capped), unless --torch-isa native.
        for i in cf["peak"]:
            if a.torch_isa == "native" and th:
                th[i] = next(iter(th.values()))
            else:
                th[i] = run("torch", TORCH_ISA_ENV.get(i) if a.torch_isa == "matched" else None)
    report(cf, th, cases, passes, a.threads)
    if a.json:
        Path(a.json).write_text(json.dumps({"cnnfast": cf, "torch": th, "cases": cases}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
