"""1x1 (pointwise) conv forward, layer by layer: cnnfast builds vs ONNX Runtime (issues 9, 10).

    python bench/pointwise_layers.py                              # cnnfast vs ORT, batch 1, 2 threads
    python bench/pointwise_layers.py --batch 1,8 --isa avx2 --rounds 5 --only '56|112'
    python bench/pointwise_layers.py --core base=/tmp/old_core.so --core new=cnnfast/_core*.so --no-ort

The layers are the 1x1 convs of torchvision's MobileNetV2 (C->K on HxW, with the number of times
each occurs in the network), PP-LCNet's, a few of EfficientNet-B0's and ResNet-50's (--only 'mbv2'
for MobileNetV2 alone); every one is
conv + bias + ReLU, float32, NCHW. cnnfast runs `_core.conv_bn_act_forward(x, w, b, (1,1), (0,0),
(1,1), 1, False, None, 'relu')`; ONNX Runtime a one-node-pair graph (Conv + Relu, the same
weights as initializers, all graph optimisations, `intra_op_num_threads` = --threads).

Default (fresh processes, as bench/fair.py): the driver imports no framework; it writes every
layer's input, weights and bias to a shared .npz and the ONNX graphs, then starts one fresh worker
process per (framework, round), rounds alternating A B C A B C ... Each worker imports only its
own framework (a cnnfast `_core` from the given .so, loaded by path, or ORT), sets its threads,
and per layer warms up, then times calls with time.perf_counter until --min-iters calls and
--budget seconds per layer are reached; it reports the median per call. The table gives the
median over rounds of those medians, per layer (microseconds, times the layer's count in the
network: the figure compares with a network profile) and summed, and each framework's ratio to
the first (>1: the first is slower). Round 0 checks every output against the first framework's
(relative error, scaled by max |y|); a mismatch marks the row BAD.

(Two cnnfast builds loaded into one process are not comparable at 2 threads: each has its own
thread pool, whose idle workers compete with the other's. Hence one process per build.)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# (name, C, K, H, count): C -> K on H x H, `count` times in the network.
LAYERS = [
    # MobileNetV2 (torchvision), expansion and projection 1x1 layers
    ("mbv2_32_16_112", 32, 16, 112, 1),
    ("mbv2_16_96_112", 16, 96, 112, 1),
    ("mbv2_96_24_56", 96, 24, 56, 1),
    ("mbv2_24_144_56", 24, 144, 56, 2),
    ("mbv2_144_24_56", 144, 24, 56, 1),
    ("mbv2_144_32_28", 144, 32, 28, 1),
    ("mbv2_32_192_28", 32, 192, 28, 3),
    ("mbv2_192_32_28", 192, 32, 28, 2),
    ("mbv2_192_64_14", 192, 64, 14, 1),
    ("mbv2_64_384_14", 64, 384, 14, 4),
    ("mbv2_384_64_14", 384, 64, 14, 3),
    ("mbv2_384_96_14", 384, 96, 14, 1),
    ("mbv2_96_576_14", 96, 576, 14, 3),
    ("mbv2_576_96_14", 576, 96, 14, 2),
    ("mbv2_576_160_7", 576, 160, 7, 1),
    ("mbv2_160_960_7", 160, 960, 7, 3),
    ("mbv2_960_160_7", 960, 160, 7, 2),
    ("mbv2_960_320_7", 960, 320, 7, 1),
    ("mbv2_320_1280_7", 320, 1280, 7, 1),
    # PP-LCNet x1.0 pointwise layers
    ("lcnet_16_32_112", 16, 32, 112, 1),
    ("lcnet_32_64_56", 32, 64, 56, 1),
    ("lcnet_64_64_56", 64, 64, 56, 1),
    ("lcnet_64_128_28", 64, 128, 28, 1),
    ("lcnet_128_128_28", 128, 128, 28, 1),
    ("lcnet_128_256_14", 128, 256, 14, 1),
    ("lcnet_256_256_14", 256, 256, 14, 5),
    ("lcnet_256_512_7", 256, 512, 7, 1),
    ("lcnet_512_512_7", 512, 512, 7, 1),
    # EfficientNet-B0 projections with few output channels
    ("effb0_32_16_112", 32, 16, 112, 1),
    ("effb0_144_40_28", 144, 40, 28, 1),
    ("effb0_240_80_14", 240, 80, 14, 1),
    # ResNet-50 bottleneck 1x1 layers (not mobile; to see that the large ones do not regress)
    ("r50_64_256_56", 64, 256, 56, 3),
    ("r50_256_64_56", 256, 64, 56, 2),
    ("r50_1024_256_14", 1024, 256, 14, 5),
    ("r50_256_1024_14", 256, 1024, 14, 6),
    ("r50_2048_512_7", 2048, 512, 7, 2),
    ("r50_512_2048_7", 512, 2048, 7, 3),
]


def layer_data(name, C, K, H, n):
    rng = np.random.default_rng(zlib.crc32(f"{name}_{n}".encode()))
    x = rng.standard_normal((n, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((K, C, 1, 1)) / np.sqrt(C)).astype(np.float32)
    b = (0.1 * rng.standard_normal(K)).astype(np.float32)
    return x, w, b


def write_onnx(path, w, b):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    K, C = w.shape[:2]
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "pw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", C, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def load_core(label, path, threads):
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.ExtensionFileLoader(label + "._core", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(label + "._core", loader))
    loader.exec_module(mod)
    mod.set_num_threads(threads)
    return mod


def cnnfast_fn(core, x, w, b):
    return lambda: core.conv_bn_act_forward(x, w, b, (1, 1), (0, 0), (1, 1), 1, False, None, "relu")


def time_fn(fn, min_iters, budget, clock=time.perf_counter):
    for _ in range(3):
        fn()
    ts = []
    t_end = time.perf_counter() + budget
    while len(ts) < min_iters or time.perf_counter() < t_end:
        t0 = clock()
        fn()
        ts.append(clock() - t0)
        if len(ts) >= 20 * min_iters:
            break
    return float(np.median(ts))


def worker(job_path):
    job = json.load(open(job_path))
    fw, threads = job["framework"], job["threads"]
    if fw == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if job["ort_node"]:
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(job_path).parent / "ort_profile")
    else:
        core = load_core("c_" + fw, job["core"], threads)
        if job["isa"]:
            core.set_isa(job["isa"])
    res = {}
    for case in job["cases"]:
        d = np.load(case["npz"])
        x, w, b = d["x"], d["w"], d["b"]
        if fw == "ort":
            sess = ort.InferenceSession(case["onnx"], so, providers=["CPUExecutionProvider"])
            fn = lambda s=sess, x=x: s.run(None, {"x": x})[0]  # noqa: E731
        else:
            fn = cnnfast_fn(core, x, w, b)
        y = fn()
        if job["save"]:
            np.save(case["out"], y)
        clock = time.thread_time if job["cpu_time"] and fw != "ort" else time.perf_counter
        res[case["key"]] = time_fn(fn, job["min_iters"], job["budget"], clock)
        if fw == "ort" and job["ort_node"]:  # the Conv node's own time, as in a network's profile
            prof_path = sess.end_profiling()
            prof = json.load(open(prof_path))
            os.remove(prof_path)
            durs = [
                ev["dur"] * 1e-6
                for ev in prof
                if ev.get("cat") == "Node"
                and ev["name"].endswith("_kernel_time")
                and "Reorder" not in ev.get("args", {}).get("op_name", "")
            ]
            res[case["key"]] = float(np.median(durs[-max(1, len(durs) // 2) :]))
    json.dump(res, open(job["result"], "w"))


def check(outs, keys):
    bad = set()
    for key in keys:
        ys = [np.load(o[key]) for o in outs]
        scale = float(np.abs(ys[0]).max()) or 1.0
        for y in ys[1:]:
            if y.shape != ys[0].shape or float(np.abs(y - ys[0]).max()) > 1e-4 * scale:
                bad.add(key)
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", default="1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isa", default="", help="cnnfast ISA (avx512, avx2); default: the CPU's best")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="regex on layer names")
    ap.add_argument(
        "--core",
        action="append",
        default=[],
        help="LABEL=PATH of a cnnfast _core .so (default: this checkout's, as 'cnnfast')",
    )
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument(
        "--ort-session",
        action="store_true",
        help="time ORT's whole session.run (with its NCHW <-> NCHWc reorders) instead of the Conv "
        "node's own time from ORT's profile (the default: what a network's profile shows)",
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time cnnfast by the calling thread's CPU time (with --threads 1: robust on a loaded "
        "machine; ORT keeps its node time)",
    )
    ap.add_argument("--min-iters", type=int, default=30)
    ap.add_argument("--budget", type=float, default=0.1, help="seconds of timed calls per layer and round")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker)

    cores = dict(c.split("=", 1) for c in a.core)
    if not cores:
        cores = {"cnnfast": sorted(glob.glob(str(ROOT / "cnnfast" / "_core*.so")))[0]}
    layers = [lay for lay in LAYERS if re.search(a.only, lay[0])]
    batches = [int(s) for s in a.batch.split(",")]
    fws = list(cores) + ([] if a.no_ort else ["ort"])
    tmp = Path(tempfile.mkdtemp(prefix="pw_layers_"))
    cases = []
    for n in batches:
        for name, C, K, H, cnt in layers:
            key = f"{name}_n{n}"
            x, w, b = layer_data(name, C, K, H, n)
            np.savez(tmp / f"{key}.npz", x=x, w=w, b=b)
            if "ort" in fws:
                write_onnx(str(tmp / f"{key}.onnx"), w, b)
            cases.append(
                {
                    "key": key,
                    "npz": str(tmp / f"{key}.npz"),
                    "onnx": str(tmp / f"{key}.onnx"),
                    "count": cnt,
                    "n": n,
                    "name": name,
                }
            )
    times = {fw: {c["key"]: [] for c in cases} for fw in fws}
    bad = set()
    outs = []
    for r in range(a.rounds):
        for fw in fws:
            job = {
                "framework": fw,
                "threads": a.threads,
                "isa": a.isa,
                "core": cores.get(fw),
                "min_iters": a.min_iters,
                "cpu_time": a.cpu_time,
                "ort_node": not a.ort_session,
                "budget": a.budget,
                "save": r == 0,
                "result": str(tmp / f"res_{fw}_{r}.json"),
                "cases": [],
            }
            for c in cases:
                job["cases"].append(dict(c, out=str(tmp / f"out_{fw}_{c['key']}.npy")))
            jp = tmp / f"job_{fw}_{r}.json"
            json.dump(job, open(jp, "w"))
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
            subprocess.run([sys.executable, __file__, "--worker", str(jp)], check=True, env=env)
            for k, v in json.load(open(job["result"])).items():
                times[fw][k].append(v)
            if r == 0:
                outs.append({c["key"]: str(tmp / f"out_{fw}_{c['key']}.npy") for c in cases})
    bad = check(outs, [c["key"] for c in cases])

    import platform

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
        platform.processor(),
    )
    print(
        f"# 1x1 conv+bias+ReLU forward, float32, {a.threads} threads, cnnfast ISA {a.isa or 'auto'}, {cpu}; "
        f"median of {a.rounds} rounds, microseconds x count" + (", cnnfast CPU time" if a.cpu_time else "")
    )
    print("| layer | n | count | " + " | ".join(fws) + " | " + " | ".join(f"{fws[0]}/{fw}" for fw in fws[1:]) + " |")
    print("|---" * (3 + 2 * len(fws) - 1) + "|")
    for n in batches:
        tot = {fw: 0.0 for fw in fws}
        for c in (c for c in cases if c["n"] == n):
            med = {fw: float(np.median(times[fw][c["key"]])) * 1e6 * c["count"] for fw in fws}
            for fw in fws:
                tot[fw] += med[fw]
            flag = " BAD" if c["key"] in bad else ""
            print(
                f"| {c['name']}{flag} | {n} | {c['count']} | "
                + " | ".join(f"{med[fw]:.0f}" for fw in fws)
                + " | "
                + " | ".join(f"{med[fws[0]] / med[fw]:.2f}" for fw in fws[1:])
                + " |"
            )
        print(
            f"| **total** | {n} | | "
            + " | ".join(f"{tot[fw]:.0f}" for fw in fws)
            + " | "
            + " | ".join(f"{tot[fws[0]] / tot[fw]:.2f}" for fw in fws[1:])
            + " |"
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
