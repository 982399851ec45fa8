"""Transfer learning, the lecture's recipe end to end, offline, on real digits.

    python -m cnnfast.transfer                  # 100 labeled digits: pretrained backbone vs LeNet from scratch
    python -m cnnfast.transfer --labels 50      # another number of labeled digits (a multiple of 10)
    python -m cnnfast.transfer --fine-tune      # also unfreeze the backbone's last stage
    python -m cnnfast.transfer --plots out/     # accuracy vs number of labels, backbone feature maps (matplotlib)

The recipe: take a CNN trained on a large dataset -- here the backbone of PP-OCRv6's small text
recogniser (Baidu / PaddleOCR, Apache-2.0, shipped in ``cnnfast.pretrained``; it has never seen a
handwritten digit) -- remove its head, freeze it, add dense layers (global average pooling over
space -> dense 120->128 -> ReLU -> dense 128->10), and train only those on a few labeled examples:
N digits (N/10 per class) of ``cnnfast.datasets.load_mnist_5k``, resized to 48x48 (bilinear), three
channels, ``(x - 0.5) / 0.5``. For comparison the lecture's LeNet (``cnnfast.demo.build_lenet``) is
trained from scratch on the same N digits at 28x28. Both are tested on the 1,000 held-out digits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._typing import Array
    from .nn.container import Sequential
    from .nn.module import Module
    from .onnx._graph import GraphModule

HIDDEN = 128
HEAD_EPOCHS = 300
HEAD_LR = 1e-2
SCRATCH_EPOCHS = 60
SCRATCH_LR = 3e-3
FINE_TUNE_EPOCHS = 15
FINE_TUNE_LR = 1e-4
FINE_TUNE_AT = "Add.123"  # the input of the backbone's last stage (192 channels at 1/16 of the height)
PLOT_LABELS = (10, 20, 50, 100, 200, 500)


def _resize_matrix(n_in: int, n_out: int) -> Array:
    """Bilinear interpolation (half-pixel centres, edges clamped) as an (n_out, n_in) matrix."""
    a = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        s = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        j = int(s)
        f = s - j
        a[i, j] += 1 - f
        if j + 1 < n_in:
            a[i, j + 1] += f
    return a


def preprocess(x: Array, size: int = 48) -> Array:
    """(N, 1, 28, 28) digits in [0, 1] -> (N, 3, size, size) float32 in [-1, 1], as the backbone expects."""
    a = _resize_matrix(x.shape[-1], size)
    r = np.einsum("hi,nij,wj->nhw", a, x[:, 0].astype(np.float32), a, optimize=True)
    r = (r - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(np.broadcast_to(r[:, None], (len(r), 3, size, size)), dtype=np.float32)


def labeled_subset(y: Array, n: int) -> Array:
    """Indices of ``n`` training digits: the first ``n // 10`` of each class in the dataset's order
    (shuffled once and stored in the file), so the subsets for growing ``n`` are nested."""
    if n < 10 or n % 10:
        raise ValueError(f"--labels must be a positive multiple of 10 (the same number per class), got {n}")
    per = n // 10
    idx = []
    for c in range(10):
        pool = np.flatnonzero(y == c)
        if per > len(pool):
            raise ValueError(f"--labels {n}: only {len(pool)} training digits of class {c} are available")
        idx.append(pool[:per])
    return np.sort(np.concatenate(idx))


def _batched(fn: Callable[[Array], Any], x: Array, batch: int = 100) -> Array:
    return np.concatenate([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def _accuracy(logits: Array, y: Array) -> float:
    return float((np.argmax(logits, axis=1) == y).mean())


def build_head(in_features: int = 120, hidden: int = HIDDEN, classes: int = 10) -> Sequential:
    """The dense layers added on top of the frozen backbone (after global average pooling)."""
    from . import nn

    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def train_classifier(
    model: Module,
    X: Array,
    y: Array,
    epochs: int,
    lr: float,
    batch_size: int | None = None,
    seed: int = 0,
    keep_eval: Iterable[Module] = (),
) -> Module:
    """Adam on cross-entropy, full batch (or mini-batches), cosine-annealed lr; returns the model.
    The modules in ``keep_eval`` stay in eval mode (BatchNorm keeps its pretrained statistics)."""
    import cnnfast

    params = [p for p in model.parameters() if p.requires_grad]
    opt = cnnfast.optim.Adam(params, lr=lr)
    sched = cnnfast.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    rng = np.random.default_rng(seed)
    bs = batch_size or len(X)
    model.train()
    for m in keep_eval:
        m.eval()
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), bs):
            b = order[i : i + bs]
            opt.zero_grad()
            loss = cnnfast.cross_entropy(model(cnnfast.Tensor(X[b])), y[b])
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def backbone_parts() -> tuple[GraphModule, GraphModule]:
    """The frozen pretrained backbone in two parts: up to its last stage, and the last stage."""
    from .pretrained import ppocr_backbone

    stem, last = ppocr_backbone(outputs=[FINE_TUNE_AT]), ppocr_backbone(inputs=[FINE_TUNE_AT])
    for p in list(stem.parameters()) + list(last.parameters()):
        p.requires_grad = False
    return stem, last


def stem_outputs(stem: Module, X: Array) -> Array:
    """Backbone activations before its last stage, no gradient: (N, 192, 3, 3) for 48x48 digits."""
    import cnnfast

    with cnnfast.no_grad():
        return _batched(lambda b: stem(preprocess(b)), X)


def pooled(last: Module, mid: Array) -> Array:
    """The backbone's features, averaged over space: (N, 120)."""
    import cnnfast

    with cnnfast.no_grad():
        return _batched(lambda b: last(b).mean(axis=(2, 3)), mid)


def run_frozen(
    feats_train: Array, y_train: Array, feats_test: Array, y_test: Array, seed: int = 0
) -> tuple[float, Sequential]:
    import cnnfast

    cnnfast.manual_seed(seed)
    head = build_head(feats_train.shape[1])
    train_classifier(head, feats_train, y_train, HEAD_EPOCHS, HEAD_LR, seed=seed)
    return _accuracy(head(feats_test), y_test), head


def run_scratch(X: Array, y: Array, Xt: Array, yt: Array, seed: int = 0) -> tuple[float, Module]:
    import cnnfast

    from .demo import build_lenet

    cnnfast.manual_seed(seed)
    model = build_lenet()
    train_classifier(model, X, y, SCRATCH_EPOCHS, SCRATCH_LR, batch_size=32, seed=seed)
    return _accuracy(_batched(model, Xt), yt), model


def run_fine_tune(
    last: Module,
    head: Module,
    mid: Array,
    y: Array,
    mid_test: Array,
    y_test: Array,
    seed: int = 0,
    epochs: int = FINE_TUNE_EPOCHS,
    lr: float = FINE_TUNE_LR,
) -> tuple[float, Module]:
    """Unfreeze the backbone's last stage and train it together with the (already trained) head."""
    from . import nn

    class LastStage(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.last = last
            self.head = head

        def forward(self, m: Any) -> Any:
            return self.head(self.last(m).mean(axis=(2, 3)))

    for p in last.parameters():
        p.requires_grad = True
    model = LastStage()
    # the last stage's BatchNorm keeps its pretrained running statistics while the weights adapt
    train_classifier(model, mid, y, epochs, lr, batch_size=25, seed=seed, keep_eval=[last])
    return _accuracy(_batched(model, mid_test), y_test), model


def _feature_map_figure(path: str, backbone_maps: Sequence[tuple[str, Array]], image: Array) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(backbone_maps)
    fig, axes = plt.subplots(rows, 9, figsize=(13, 1.6 * rows + 0.4))
    for r, (name, fmap) in enumerate(backbone_maps):
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 0].set_title("input" if r == 0 else "", fontsize=8)
        energy = np.abs(fmap).reshape(fmap.shape[0], -1).mean(axis=1)
        for k, c in enumerate(np.argsort(energy)[::-1][:8]):
            ax = axes[r, k + 1]
            ax.imshow(fmap[c], cmap="viridis", aspect="auto")
            ax.set_title(f"{name} ch{c}", fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("PP-OCRv6 backbone (pretrained on text lines) on a handwritten digit: strongest channels per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _accuracy_figure(path: str, ns: Sequence[int], frozen: Sequence[float], scratch: Sequence[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, [100 * a for a in frozen], "o-", label="pretrained backbone (frozen) + dense layers")
    ax.plot(ns, [100 * a for a in scratch], "s-", label="LeNet from scratch")
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("labeled training digits (equal per class)")
    ax.set_ylabel("accuracy on 1,000 held-out digits (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(
    directory: str,
    stem: Module,
    last: Module,
    X: Array,
    y: Array,
    Xt: Array,
    yt: Array,
    feats_test: Array,
    seed: int = 0,
    log: Callable[..., Any] = print,
) -> list[str]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("--plots needs matplotlib (pip install matplotlib, or pip install 'cnnfast[viz]'); skipping the plots.")
        return []
    os.makedirs(directory, exist_ok=True)
    import cnnfast

    from .pretrained import ppocr_backbone

    stages = [
        ("stem", "p2o.pd_op.relu.0.0"),
        ("stage 1", "Add.43"),
        ("stage 3", "Add.123"),
        ("output", "p2o.pd_op.add.65.0"),
    ]
    probe = ppocr_backbone(outputs=[t for _, t in stages])
    with cnnfast.no_grad():
        maps = probe(preprocess(Xt[:1]))
    paths = [os.path.join(directory, "transfer_feature_maps.png"), os.path.join(directory, "transfer_accuracy.png")]
    _feature_map_figure(paths[0], [(n, m[0]) for (n, _), m in zip(stages, maps)], preprocess(Xt[:1])[0, 0])
    frozen, scratch = [], []
    cache = {}
    for n in PLOT_LABELS:
        idx = labeled_subset(y, n)
        missing = [i for i in idx if i not in cache]
        if missing:
            for i, f in zip(missing, pooled(last, stem_outputs(stem, X[missing]))):
                cache[i] = f
        ft = np.stack([cache[i] for i in idx])
        frozen.append(run_frozen(ft, y[idx], feats_test, yt, seed)[0])
        scratch.append(run_scratch(X[idx], y[idx], Xt, yt, seed)[0])
        log(f"  {n:5d} labels: pretrained (frozen) {frozen[-1]:.1%}, from scratch {scratch[-1]:.1%}")
    _accuracy_figure(paths[1], list(PLOT_LABELS), frozen, scratch)
    return paths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cnnfast.transfer",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    p.add_argument("--labels", type=int, default=100, help="labeled training digits, a multiple of 10 (default 100)")
    p.add_argument("--fine-tune", action="store_true", help="also train the backbone's last stage (slower)")
    p.add_argument("--plots", metavar="DIR", help="write transfer_accuracy.png and transfer_feature_maps.png to DIR")
    p.add_argument("--seed", type=int, default=0, help="seed for the initial weights and the batch order (default 0)")
    p.add_argument("--threads", type=int, default=None, help="threads for cnnfast; default: cnnfast's choice")
    p.add_argument("--quiet", action="store_true", help="print the result line only")
    p.add_argument("--test-limit", type=int, default=None, help=argparse.SUPPRESS)  # tests: fewer held-out digits
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the demo; returns a dict of results (also used by the tests)."""
    args = _parser().parse_args(argv)
    import cnnfast

    from .datasets import load_mnist_5k
    from .pretrained import ppocr_backbone_info

    if args.threads is not None:
        cnnfast.set_num_threads(args.threads)
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    (X, y), (Xt, yt) = load_mnist_5k()
    if args.test_limit:
        Xt, yt = Xt[: args.test_limit], yt[: args.test_limit]
    try:
        idx = labeled_subset(y, args.labels)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    t0 = time.perf_counter()
    stem, last = backbone_parts()
    info = ppocr_backbone_info()
    n_params = sum(p.data.size for p in stem.parameters()) + sum(p.data.size for p in last.parameters())
    log(
        f"Pretrained backbone: {info['name']} ({n_params:,} parameters, frozen; {info['license']}, "
        f"from {info['source_wheel']}), head removed at {info['cut_at']}"
    )
    log(f"Added dense layers: global average pooling -> Linear(120, {HIDDEN}) -> ReLU -> Linear({HIDDEN}, 10)")
    log(
        f"Data: {args.labels} labeled digits ({args.labels // 10} per class) for training, {len(Xt):,} held-out "
        f"digits for testing; digits resized to 48x48, 3 channels, (x - 0.5) / 0.5"
    )
    mid, mid_test = stem_outputs(stem, X[idx]), stem_outputs(stem, Xt)
    feats, feats_test = pooled(last, mid), pooled(last, mid_test)
    t_feat = time.perf_counter() - t0
    acc_frozen, head = run_frozen(feats, y[idx], feats_test, yt, args.seed)
    log(
        f"  pretrained backbone (frozen) + dense layers: {acc_frozen:.1%}  (features {t_feat:.1f}s, "
        f"head {HEAD_EPOCHS} epochs)"
    )
    t1 = time.perf_counter()
    acc_scratch, lenet = run_scratch(X[idx], y[idx], Xt, yt, args.seed)
    log(
        f"  LeNet from scratch ({sum(p.data.size for p in lenet.parameters()):,} parameters, 28x28 input): "
        f"{acc_scratch:.1%}  ({SCRATCH_EPOCHS} epochs, {time.perf_counter() - t1:.1f}s)"
    )
    result = {"labels": args.labels, "frozen": acc_frozen, "scratch": acc_scratch, "test_size": len(Xt)}
    if args.fine_tune:
        t2 = time.perf_counter()
        acc_ft, _ = run_fine_tune(last, head, mid, y[idx], mid_test, yt, args.seed)
        result["fine_tuned"] = acc_ft
        log(
            f"  + last stage of the backbone fine-tuned with the head: {acc_ft:.1%}  ({FINE_TUNE_EPOCHS} epochs, "
            f"lr {FINE_TUNE_LR}, {time.perf_counter() - t2:.1f}s)"
        )
    if args.plots:
        log(f"Accuracy vs number of labeled digits (for {args.plots}):")
        result["plots"] = write_plots(args.plots, stem, last, X, y, Xt, yt, feats_test, args.seed, log)
        if result["plots"]:
            log("plots written: " + ", ".join(result["plots"]))
    best = ("fine-tuned", result["fine_tuned"]) if args.fine_tune else ("frozen", acc_frozen)
    print(
        f"transfer: {args.labels:,} labeled digits -> pretrained backbone ({best[0]}) {best[1]:.1%} vs from scratch "
        f"{acc_scratch:.1%} on {len(Xt):,} held-out digits",
        flush=True,
    )
    return result


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
