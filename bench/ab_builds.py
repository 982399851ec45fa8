"""In-process A/B of conv2d passes: several compiled cnnfast builds (their `_core` modules loaded side
by side), ISAs, environment knobs, and optionally PyTorch, alternating round by round; medians.

On a loaded machine (shared cores) separate processes are not comparable; this keeps everything in
one process and alternates, and with CPU=1 times process CPU time (use with T=1: with more threads
the CPU time counts spinning workers too).

    CORES=base=/path/to/old/_core.so,new=cnnfast/_core.cpython-311-x86_64-linux-gnu.so CPU=1 T=1 \
        python bench/ab_builds.py c1,c2 fwd,bwd_input,bwd_weight torch,base@avx512,new@avx512,new@avx2 11

Shapes: c1 / c2 = LeNet-5 conv layers at batch 64 (c1_256, c2_256 at 256, c1_1 / c2_1 at 1),
r512 = ResNet 3x3 512x7x7 at batch 1, mbv2_dw / effnet_dw = depthwise 3x3 960x7x7 (batch 32) and
5x5 s2 672x14x14 (batch 16); pw<C>_<K>_<H>_n<N> = 1x1 convs; the rest are short names for
bench/fair.py suite/sweep layers (resnext = resnext_3x3_g32_256x28_n8, alex2 = alexnet_c2_g2_n2,
...; SHAPES lists every name, with the fair.py case noted where it differs); CHAINS names (lc112, mb112,
...) take the pass `chain` (the fused depthwise-separable block, no PyTorch variant). A variant is `label@isa[:ENV=VALUE...]` or `torch`; the
figure in brackets is the first variant's time over this one's (> 1: faster than the first).
With `torch` among the variants use CPU=1 T=1: with more threads PyTorch's OpenMP workers spin after
its calls and take the cores from the cnnfast variants that follow (a 2-thread CIFAR 3x3 layer of
cnnfast then ran slower than on 1 thread), so such lines are diagnostics; framework comparisons
are bench/fair.py's (separate fresh processes).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import time

import numpy as np

T = int(os.environ.get("T", "2"))
CLOCK = time.process_time if os.environ.get("CPU") else time.perf_counter
# name: (N, C, H, W, K, kernel, stride, padding[, groups])
SHAPES = {
    "resnext": (8, 256, 28, 28, 256, 3, 1, 1, 32),
    "c2gi": (64, 16, 10, 10, 6, 5, 1, 4),
    "mbv2stem_n8": (8, 3, 224, 224, 32, 3, 2, 1),  # MobileNetV2 / EfficientNet stem
    "mbv2stem_n1": (1, 3, 224, 224, 32, 3, 2, 1),
    "vgg1_n1": (1, 3, 224, 224, 64, 3, 1, 1),  # fair.py vgg_c1_n1
    "lcc1": (64, 3, 32, 32, 6, 5, 1, 0),  # fair.py lenet_cifar_c1_n64
    "c2_12": (64, 6, 12, 12, 16, 5, 1, 0),  # LeNet c2 on 12x12 (the lecture's 28x28 input unpadded)
    "c2_12_n8": (8, 6, 12, 12, 16, 5, 1, 0),
    "c2_n8": (8, 6, 14, 14, 16, 5, 1, 0),
    "c16_16": (64, 16, 16, 16, 16, 3, 1, 1),
    "c5_16_14": (32, 16, 14, 14, 16, 5, 1, 2),
    "c5_8_12": (64, 8, 12, 12, 12, 5, 1, 0),  # c2's grad_input written as a forward (flipped filters, padding 4)
    "resnext56": (4, 128, 56, 56, 128, 3, 1, 1, 32),
    "alex2": (2, 96, 27, 27, 256, 5, 1, 2, 2),
    "alex1": (4, 3, 224, 224, 64, 11, 4, 2),
    "rdown": (16, 64, 56, 56, 128, 3, 2, 1),
    "cifar_s2": (64, 16, 32, 32, 32, 3, 2, 1),
    "r18s2": (8, 128, 28, 28, 256, 3, 2, 1),
    "r50s2": (4, 128, 56, 56, 128, 3, 2, 1),
    "r18_1x1s2": (8, 256, 14, 14, 512, 1, 2, 0),
    "r50_1x1s2": (4, 256, 56, 56, 512, 1, 2, 0),
    "rdown1x1_n1": (1, 64, 56, 56, 128, 1, 2, 0),
    "pw16_96_112_n8": (8, 16, 112, 112, 96, 1, 1, 0),
    "pw16_96_112_n1": (1, 16, 112, 112, 96, 1, 1, 0),
    "pw32_16_112_n8": (8, 32, 112, 112, 16, 1, 1, 0),
    "pw24_144_56_n8": (8, 24, 56, 56, 144, 1, 1, 0),
    "i5x5": (4, 48, 32, 32, 64, 5, 1, 2),
    # 5x5 layers (F(2x2, 5x5) Winograd): AlexNet features conv2 at batch 4 / 1, GoogLeNet-style
    # 5x5 branches, a 5x5 at 7x7
    "alex2_n4": (4, 64, 27, 27, 192, 5, 1, 2),
    "alex2_n1": (1, 64, 27, 27, 192, 5, 1, 2),
    "g5x5_32_28_n8": (8, 32, 28, 28, 96, 5, 1, 2),
    "g5x5_48_14_n8": (8, 48, 14, 14, 128, 5, 1, 2),
    "c5x5_256_7_n4": (4, 256, 7, 7, 256, 5, 1, 2),
    # 3x3 layers whose tile count is not a multiple of the block (Winograd blocking)
    "alex3": (4, 192, 13, 13, 384, 3, 1, 1),
    "r18_256_n4": (4, 256, 14, 14, 256, 3, 1, 1),
    "cifar16": (64, 16, 32, 32, 16, 3, 1, 1),
    # the rest of bench/fair.py's ResNet-20-style CIFAR trunk (cifar_resnet20_trunk_n64)
    "cifar3": (64, 3, 32, 32, 16, 3, 1, 1),
    "cifar32_16": (64, 32, 16, 16, 32, 3, 1, 1),
    "cifar_s2b": (64, 32, 16, 16, 64, 3, 2, 1),
    "cifar64_8": (64, 64, 8, 8, 64, 3, 1, 1),
    "r18_64_n2": (2, 64, 56, 56, 64, 3, 1, 1),
    "r64_n1": (1, 64, 56, 56, 64, 3, 1, 1),
    "r128_n1": (1, 128, 28, 28, 128, 3, 1, 1),
    "r256_n1": (1, 256, 14, 14, 256, 3, 1, 1),
    "r256_n16": (16, 256, 14, 14, 256, 3, 1, 1),
    "r512_n16": (16, 512, 7, 7, 512, 3, 1, 1),
    "vgg9": (2, 512, 14, 14, 512, 3, 1, 1),
    "i3x3": (8, 32, 64, 64, 32, 3, 1, 1),
    "r18_128": (8, 128, 28, 28, 128, 3, 1, 1),
    "r18_512": (8, 512, 7, 7, 512, 3, 1, 1),
    "pw256": (16, 256, 14, 14, 256, 1, 1, 0),
    "r50_64to256": (4, 64, 56, 56, 256, 1, 1, 0),
    "c1": (64, 1, 28, 28, 6, 5, 1, 2),
    "c2": (64, 6, 14, 14, 16, 5, 1, 0),
    "c1_256": (256, 1, 28, 28, 6, 5, 1, 2),
    "c2_256": (256, 6, 14, 14, 16, 5, 1, 0),
    "c1_1": (1, 1, 28, 28, 6, 5, 1, 2),
    "c2_1": (1, 6, 14, 14, 16, 5, 1, 0),
    "r512": (1, 512, 7, 7, 512, 3, 1, 1),
    # few output columns (batch 1-2 on 7x7 planes; conv2d_dot.h): ResNet's last stage, its stride-2
    # entry, a 1x1 on 7x7, VGG's 512 x 14 x 14 at batch 1 (196 columns), 5x5 on 7x7
    "r512_n2": (2, 512, 7, 7, 512, 3, 1, 1),
    "r512s2_n1": (1, 256, 14, 14, 512, 3, 2, 1),
    "r256s2_n1": (1, 128, 28, 28, 256, 3, 2, 1),
    "pw960_7_n1": (1, 960, 7, 7, 160, 1, 1, 0),
    "pw160_7_n1": (1, 160, 7, 7, 960, 1, 1, 0),
    "r256_7_n1": (1, 256, 7, 7, 256, 3, 1, 1),
    "c5x5_256_7_n1": (1, 256, 7, 7, 256, 5, 1, 2),
    "r128_4_n2": (2, 128, 4, 4, 128, 3, 1, 1),
    # depthwise (a 9th field: groups): MobileNetV2 / EfficientNet-B0 last stages
    "mbv2_dw": (32, 960, 7, 7, 960, 3, 1, 1, 960),
    "effnet_dw": (16, 672, 14, 14, 672, 5, 2, 2, 672),
    "mbv2_dw14": (16, 384, 14, 14, 384, 3, 1, 1, 384),
    "mbv2_dw_s2_28": (16, 192, 28, 28, 192, 3, 2, 1, 192),  # fair.py mbv2_dw_s2_192x28_n16
    "effnet_dw14": (16, 480, 14, 14, 480, 5, 1, 2, 480),
    "lc_dw5_14": (16, 256, 14, 14, 256, 5, 1, 2, 256),  # PP-LCNet's 5x5 blocks at batch 16
    "lc_dw64_56s2": (16, 64, 56, 56, 64, 3, 2, 1, 64),  # PP-LCNet's stride-2 depthwise layers at batch 16
    "lc_dw128_28s2": (16, 128, 28, 28, 128, 3, 2, 1, 128),
    "lc_dw5_256_14s2": (16, 256, 14, 14, 256, 5, 2, 2, 256),
    "lc_dw5_512_7": (16, 512, 7, 7, 512, 5, 1, 2, 512),
    "lc_dw64_56s2_n1": (1, 64, 56, 56, 64, 3, 2, 1, 64),
    "lc_dw128_28s2_n1": (1, 128, 28, 28, 128, 3, 2, 1, 128),
    "lc_dw5_14_n1": (1, 256, 14, 14, 256, 5, 1, 2, 256),
    # short rows: the rapidocr text classifier's 5x5 depthwise on 2-3 rows of 96 (its chains' stage)
    "ocr_dw5_200_2x96_n16": (16, 200, 2, 96, 200, 5, 1, 2, 200),
    "ocr_dw5_200_2x96_n1": (1, 200, 2, 96, 200, 5, 1, 2, 200),
    "ocr_dw5_88_3x96_n16": (16, 88, 3, 96, 88, 5, 1, 2, 88),
    "ocr_dw5_88_3x96_n1": (1, 88, 3, 96, 88, 5, 1, 2, 88),
    "dw5_64_4x100_n8": (8, 64, 4, 100, 64, 5, 1, 2, 64),
    "dw5_88_6x96_n16": (16, 88, 6, 96, 88, 5, 1, 2, 88),
    "dw3_64_8x96_n8": (8, 64, 8, 96, 64, 3, 1, 1, 64),
    "dw3_64_6x64_n8": (8, 64, 6, 64, 64, 3, 1, 1, 64),
    "dw3_64_4x96_n8": (8, 64, 4, 96, 64, 3, 1, 1, 64),
    "dw3_144_3x112_n1": (1, 144, 3, 112, 144, 3, 1, 1, 144),
    "dw3_32_2x128_n4": (4, 32, 2, 128, 32, 3, 1, 1, 32),
    "dw144_56_n1": (1, 144, 56, 56, 144, 3, 1, 1, 144),
    "dw32_112_n1": (1, 32, 112, 112, 32, 3, 1, 1, 32),
    "dw192_28_n1": (1, 192, 28, 28, 192, 3, 1, 1, 192),
    "dw5_256_28_n1": (1, 256, 28, 28, 256, 5, 1, 2, 256),
    "dw144_56_n8": (8, 144, 56, 56, 144, 3, 1, 1, 144),
    "dw7_96_56_n4": (4, 96, 56, 56, 96, 7, 1, 3, 96),
    "dw96_112s2_n1": (1, 96, 112, 112, 96, 3, 2, 1, 96),
    "dw144_56s2_n1": (1, 144, 56, 56, 144, 3, 2, 1, 144),
    "dw5_240_56s2_n1": (1, 240, 56, 56, 240, 5, 2, 2, 240),
    "dw5_240_28s2_n8": (8, 240, 28, 28, 240, 5, 2, 2, 240),  # fair.py effnet_dw5x5_s2_240x28_n8
    "dw96_112s2_n8": (8, 96, 112, 112, 96, 3, 2, 1, 96),  # fair.py mbv2_dw_s2_96x112_n8
    # pointwise 1x1 on small planes (MobileNetV2 / PP-LCNet layers) at batch 1 and 8
    "pw256_n1": (1, 256, 14, 14, 256, 1, 1, 0),
    "pw256_n8": (8, 256, 14, 14, 256, 1, 1, 0),
    "pw576_96_14_n1": (1, 576, 14, 14, 96, 1, 1, 0),
    "pw96_576_14_n8": (8, 96, 14, 14, 576, 1, 1, 0),
    "pw160_960_7_n1": (1, 160, 7, 7, 960, 1, 1, 0),
    "pw960_160_7_n8": (8, 960, 7, 7, 160, 1, 1, 0),
    "pw32_192_28_n1": (1, 32, 28, 28, 192, 1, 1, 0),
    "pw512_7_n1": (1, 512, 7, 7, 512, 1, 1, 0),
    "pw512_7_n8": (8, 512, 7, 7, 512, 1, 1, 0),
    # planes whose channel stride maps onto few L1 sets (16x16 floats: 1 KB) and ones that do not
    "pw256_16_n1": (1, 256, 16, 16, 256, 1, 1, 0),
    "pw256_12_n1": (1, 256, 12, 12, 256, 1, 1, 0),
    "pw96_16_n1": (1, 96, 16, 16, 96, 1, 1, 0),
    "pw64_32_n4": (4, 64, 32, 32, 64, 1, 1, 0),
    "pw128_64_28_n1": (1, 128, 28, 28, 64, 1, 1, 0),
    "pw144_24_56_n8": (8, 144, 56, 56, 24, 1, 1, 0),
}


def load_core(label, path):
    loader = importlib.machinery.ExtensionFileLoader(label + "._core", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(label + "._core", loader))
    loader.exec_module(mod)
    mod.set_num_threads(T)
    return mod


def data(name):
    N, C, H, W, K, R, s, p, *g = SHAPES[name]
    g = g[0] if g else 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // g, R, R)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    OH = (H + 2 * p - R) // s + 1
    gy = rng.standard_normal((N, K, OH, OH)).astype(np.float32)
    return x, w, b, gy, s, p, g


# Depthwise-separable chains (pass `chain`, _core.dw_chain_forward with force=True):
# name: (N, C, H, E, K, stride, kernel); E = 0: no expand stage (dw on the C input channels).
# lc*: PP-LCNet's first blocks at batch 16; mb*: MobileNetV2's first blocks at batch 1.
CHAINS = {
    "lc112": (16, 16, 112, 0, 32, 1, 3),
    "lc112s2": (16, 32, 112, 0, 64, 2, 3),
    "lc56": (16, 64, 56, 0, 64, 1, 3),
    "lc28": (16, 128, 28, 0, 128, 1, 3),
    "lc56_n1": (1, 64, 56, 0, 64, 1, 3),
    "mb112": (1, 16, 112, 96, 24, 2, 3),
    "mb56": (1, 24, 56, 144, 24, 1, 3),
    "mb112e1": (1, 32, 112, 0, 16, 1, 3),
    "mb56s2": (1, 24, 56, 144, 32, 2, 3),
    "mb28s2": (1, 32, 28, 192, 64, 2, 3),
    "mb112_n8": (8, 16, 112, 96, 24, 2, 3),
    "mb14": (1, 64, 14, 384, 64, 1, 3),
    "mb7": (1, 160, 7, 960, 160, 1, 3),
    # the rapidocr text classifier's expand -> 5x5 depthwise blocks on 2-3 rows of 96 (no project
    # stage: K = 0; an SE block follows); (H, W) planes
    "cls2x96": (16, 32, (2, 96), 200, 0, 1, 5),
    "cls2x96_n1": (1, 32, (2, 96), 200, 0, 1, 5),
    "cls3x96": (16, 16, (3, 96), 88, 0, 1, 5),
    "cls3x96_n1": (1, 16, (3, 96), 88, 0, 1, 5),
}


def fns_chain(m, name):
    N, C, H, E, K, s, R = CHAINS[name]
    H, W = H if isinstance(H, tuple) else (H, H)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)

    def stage(shape, act):
        return (
            rng.standard_normal(shape).astype(np.float32) * 0.1,
            np.zeros(shape[0], np.float32),
            None,
            act,
            0.0,
            0.0,
            0.0,
            6.0,
        )

    D = E or C
    ex = stage((E, C, 1, 1), "clamp") if E else None
    dw, pr = stage((D, 1, R, R), "clamp"), stage((K, D, 1, 1), "none") if K else None
    return {"chain": lambda: m.dw_chain_forward(x, ex, dw, pr, (s, s), (R // 2, R // 2), True)}


def fns_core(m, name):
    if name in CHAINS:
        return fns_chain(m, name)
    x, w, b, gy, s, p, g = data(name)
    S, P, D = (s, s), (p, p), (1, 1)
    return {
        "fwd": lambda: m.conv2d_forward(x, w, b, S, P, D, g, False),
        "bwd_input": lambda: m.conv2d_backward_input(list(x.shape), gy, w, S, P, D, g),
        "bwd_weight": lambda: m.conv2d_backward_weight(x, list(w.shape), gy, S, P, D, g, True),
    }


def fns_torch(name):
    import torch

    torch.set_num_threads(T)
    x, w, b, gy, s, p, g = data(name)
    xt, wt, bt, gyt = (torch.from_numpy(a) for a in (x, w, b, gy))
    cb = torch.ops.aten.convolution_backward

    def fwd():
        with torch.no_grad():
            return torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, g)

    return {
        "fwd": fwd,
        "bwd_input": lambda: cb(gyt, xt, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], g, [True, False, False])[0],
        "bwd_weight": lambda: cb(
            gyt, xt, wt, [wt.shape[0]], [s, s], [p, p], [1, 1], False, [0, 0], g, [False, True, True]
        )[1],
    }


def timed(fn, target=0.015):
    """Mean time per call over enough calls to fill `target` seconds."""
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(2, int(target / one))
    t0 = CLOCK()
    for _ in range(n):
        fn()
    return (CLOCK() - t0) / n


def main():
    cores = dict(spec.split("=") for spec in os.environ["CORES"].split(","))
    cores = {lab: load_core(lab, path) for lab, path in cores.items()}
    names, passes, variants = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3].split(",")
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 9
    for nm in names:
        fns = {v: fns_torch(nm) if v == "torch" else fns_core(cores[v.split("@")[0]], nm) for v in variants}
        for ps in passes:
            ts = {v: [] for v in variants}
            for _ in range(rounds):
                for v in variants:
                    env = []
                    if v != "torch":
                        core, rest = v.split("@")
                        isa, *env = rest.split(":")
                        for e in env:
                            key, val = e.split("=")
                            os.environ[key] = val
                        cores[core].set_isa(isa)
                    ts[v].append(timed(fns[v][ps]))
                    for e in env:
                        del os.environ[e.split("=")[0]]
            med = {v: float(np.median(t)) for v, t in ts.items()}
            first = med[variants[0]]
            print(
                f"{nm:7s} {ps:10s} " + "  ".join(f"{v}={med[v] * 1e3:.3f}ms({first / med[v]:.2f})" for v in variants),
                flush=True,
            )


if __name__ == "__main__":
    main()
