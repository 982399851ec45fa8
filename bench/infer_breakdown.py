"""Where cnnfast's inference time goes on MobileNet / PP-LCNet-like networks, and what the
Python-level fusion of Sequential (Conv2d -> eval BatchNorm2d -> activation in one conv call,
``cnnfast.nn.fusion.conv_block_eval``) saves. One process, configurations alternating round by
round, medians (the machine is shared: compare the ratios, not the absolute times).

    PYTHONPATH=. python bench/infer_breakdown.py                      # all networks, batch 1
    PYTHONPATH=. python bench/infer_breakdown.py --nets mobilenet_v2 --batch 16 --rounds 7
    PYTHONPATH=. python bench/infer_breakdown.py --profile            # + where the time goes

Configurations (same weights, eval mode, ndarray input, ``cnnfast.no_grad()``):
  layer-by-layer  every module called on its own (a no-op forward hook on each Conv2d and ReLU
                  turns the fusion off): conv, BatchNorm pass, activation pass
  fused           the default: Sequential fuses conv + BN (folded or in place) + activation
  folded          ``cnnfast.nn.fold_batchnorm`` applied once ahead of time (a copy of the model),
                  then the default path: what a deployment that folds once gets

``--profile`` splits each configuration's time (under cProfile) into the conv kernels
(``_core.conv2d_forward``) and the rest (NumPy passes for BatchNorm, activations and adds, and
Python).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import sys
import time

import numpy as np

import cnnfast
from cnnfast import nn
from cnnfast.models._blocks import SqueezeExcitation


def pplcnet_like(num_classes=4, scale=1.0):
    """PP-LCNet x1.0's layout (Cui et al. 2021): 3x3/s2 stem, depthwise-separable blocks (3x3 then
    5x5 depthwise, Hardswish, squeeze-and-excitation in the last two), global pool, 1x1 conv head.
    Built from cnnfast.nn; BatchNorm statistics randomised by the caller."""

    def c(v):
        return max(8, int(v * scale + 4) // 8 * 8)

    def cbh(cin, cout, k, s, groups=1):
        return [
            nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.Hardswish(),
        ]

    cfg = (
        [
            (3, 16, 32, 1, False),
            (3, 32, 64, 2, False),
            (3, 64, 64, 1, False),
            (3, 64, 128, 2, False),
            (3, 128, 128, 1, False),
            (3, 128, 256, 2, False),
        ]
        + [(5, 256, 256, 1, False)] * 5
        + [(5, 256, 512, 2, True), (5, 512, 512, 1, True)]
    )
    layers = cbh(3, c(16), 3, 2)
    for k, cin, cout, s, se in cfg:
        block = cbh(c(cin), c(cin), k, s, groups=c(cin))
        if se:
            block.append(SqueezeExcitation(c(cin), c(cin) // 4, scale_activation=nn.Hardsigmoid))
        block += cbh(c(cin), c(cout), 1, 1)
        layers.append(nn.Sequential(*block))
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(c(512), 1280, 1),
        nn.Hardswish(),
        nn.Flatten(),
        nn.Linear(1280, num_classes),
    ]
    return nn.Sequential(*layers)


NETS = {
    "mobilenet_v2": lambda: cnnfast.models.mobilenet_v2(),
    "mobilenet_v3_small": lambda: cnnfast.models.mobilenet_v3_small(),
    "efficientnet_b0": lambda: cnnfast.models.efficientnet_b0(),
    "pplcnet_like": pplcnet_like,
    "resnet18": lambda: cnnfast.models.resnet18(),
}


def _randomize_bn(model, rng):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.normal(0, 0.1, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.normal(0, 0.1, m.num_features)
    return model


def _unfused(model):
    """The same model with the fusion switched off (a no-op hook on every Conv2d and ReLU)."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if type(mod) in (nn.Conv2d, nn.ReLU):
            mod.register_forward_hook(lambda *a: None)
    return m


def _time(fn, x, iters):
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _profile(model, x, iters):
    """(seconds per call, of which in the conv kernels) under cProfile."""
    pr = cProfile.Profile()
    with cnnfast.no_grad():
        pr.enable()
        for _ in range(iters):
            model(x)
        pr.disable()
    st = pstats.Stats(pr)
    total = sum(v[2] for v in st.stats.values())  # tottime over all functions
    conv = sum(v[2] for k, v in st.stats.items() if k[2] == "<built-in method cnnfast._core.conv2d_forward>")
    return total / iters, conv / iters


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="*", default=list(NETS), choices=list(NETS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=10, help="timed calls per configuration and round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--compare-threads",
        action="store_true",
        help="also time the fused configuration on 1 thread, alternating with --threads in each round",
    )
    args = ap.parse_args(argv)
    cnnfast.set_num_threads(args.threads)
    print(
        f"cnnfast {cnnfast.__version__}, ISA {cnnfast.get_isa()}, {cnnfast.get_num_threads()} threads, "
        f"batch {args.batch}, {args.size}x{args.size}, {args.rounds} rounds x {args.iters} calls (medians)"
    )
    print(
        f"{'network':20s} {'layer-by-layer ms':>18s} {'fused ms':>9s} {'folded ms':>10s} "
        f"{'layer-by-layer/fused':>21s} {'max |diff|':>10s}"
    )
    rng = np.random.default_rng(0)
    for name in args.nets:
        cnnfast.manual_seed(0)
        model = _randomize_bn(NETS[name](), rng).eval()
        configs = {"layer-by-layer": _unfused(model), "fused": model, "folded": nn.fold_batchnorm(copy.deepcopy(model))}
        x = rng.uniform(-1, 1, (args.batch, 3, args.size, args.size)).astype(np.float32)
        with cnnfast.no_grad():
            outs = {k: np.asarray(m(x)) for k, m in configs.items()}
            for m in configs.values():  # warm-up
                m(x)
            times = {k: [] for k in configs}
            if args.compare_threads:
                times["fused, 1 thread"] = []
            for _ in range(args.rounds):
                for k, m in configs.items():
                    times[k].append(_time(m, x, args.iters))
                if args.compare_threads:
                    cnnfast.set_num_threads(1)
                    model(x)
                    times["fused, 1 thread"].append(_time(model, x, args.iters))
                    cnnfast.set_num_threads(args.threads)
                    model(x)
        med = {k: float(np.median(v)) for k, v in times.items()}
        diff = max(float(np.abs(outs[k] - outs["layer-by-layer"]).max()) for k in outs)
        print(
            f"{name:20s} {med['layer-by-layer'] * 1e3:18.2f} {med['fused'] * 1e3:9.2f} {med['folded'] * 1e3:10.2f} "
            f"{med['layer-by-layer'] / med['fused']:20.2f}x {diff:10.2g}"
        )
        if args.compare_threads:
            print(
                f"    fused on 1 thread {med['fused, 1 thread'] * 1e3:.2f} ms: {args.threads} threads / 1 thread = "
                f"{med['fused'] / med['fused, 1 thread']:.2f} (time ratio; < 1: the second thread helps)"
            )
        if args.profile:
            for k in ("layer-by-layer", "fused"):
                total, conv = _profile(configs[k], x, args.iters)
                print(
                    f"    {k:15s} profiled {total * 1e3:7.2f} ms: conv kernels {conv * 1e3:6.2f} ms "
                    f"({conv / total:4.0%}), the rest (BatchNorm / activation / add NumPy passes, Python) "
                    f"{(total - conv) * 1e3:6.2f} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
