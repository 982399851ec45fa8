"""Pictures of what a CNN computes: convolution step by step, kernels, feature maps, filters, training.

Needs matplotlib (``pip install cnnfast[viz]``), imported only when a function is called. Every
function builds a :class:`matplotlib.figure.Figure` directly, never through ``pyplot``'s global
state, so it works headless (no display, no backend to configure), from threads, and in notebooks
(a Figure displays itself when it is the last expression of a cell). Every function returns the
Figure and, given ``path``, also saves it (format from the file extension, PNG for ``.png``); the file
is written to a temporary name and renamed, so it is never left half-written.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._typing import Array, ArrayLike, IntPair


__all__ = [
    "plot_convolution",
    "plot_kernels",
    "plot_feature_maps",
    "plot_filters_demo",
    "plot_history",
    "LECTURE_IMAGE",
    "LECTURE_KERNEL",
]

#: The lecture's worked example (slides 7-9): this image correlated with LECTURE_KERNEL, stride 1,
#: gives [[142, 189], [225, 230]].
LECTURE_IMAGE = np.array([[4, 2, 0, 0], [3, 2, 3, 8], [2, 1, 8, 5], [4, 6, 8, 2]])
LECTURE_KERNEL = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])

_HIGHLIGHT = "#e8590c"  # orange: the window, kernel and output cell of the highlighted step
_PAD_COLOUR = "#d9d9d9"  # grey: zero-padding cells


def _figure(figsize: tuple[float, float], dpi: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("cnnfast.viz needs matplotlib: pip install cnnfast[viz]  (or: pip install matplotlib)") from e
    return Figure(figsize=figsize, dpi=dpi, layout="constrained")


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    """Save ``fig`` to ``path`` atomically (temporary file + rename) when a path is given."""
    if path is None:
        return fig
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1] or ".png"
    # Created with mode 0o666 as open() would, so the process umask applies (it is never read or set).
    while True:
        tmp = os.path.join(directory, f".cnnfast-viz-{os.getpid()}-{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            break
        except FileExistsError:
            continue
    try:
        fig.savefig(tmp, dpi=fig.dpi, format=None if os.path.splitext(path)[1] else "png")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return fig


def _fmt(v: float) -> str:
    """Short label for a grid value: integers without decimals, others with 2 significant digits."""
    v = float(v)
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.2g}" if abs(v) < 0.01 or abs(v) >= 100 else f"{v:.2f}"


def _fmt_term(v: float) -> str:
    """A factor in a written-out sum: negative values in parentheses, ``2x(-1)``."""
    text = _fmt(v)
    return f"({text})" if text.startswith("-") else text


def _as_array(x: Any, name: str, op: str) -> Array:
    x = getattr(x, "data", x) if not isinstance(x, np.ndarray) else x  # cnnfast Tensor -> ndarray
    try:
        a = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{op}: {name} could not be converted to an array: {e}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{op}: expected a real numeric {name}, got dtype {a.dtype}")
    return a


# ----------------------------------------------------------------------------------------------
# plot_convolution
# ----------------------------------------------------------------------------------------------


def _draw_grid(ax: Axes, values: Array, title: str, pad_mask: Array | None = None, cmap: str = "Blues") -> None:
    """A matrix as coloured cells with their values written in; padding cells grey and italic."""
    from matplotlib.colors import Normalize

    h, w = values.shape
    vmax = float(np.abs(values).max()) or 1.0
    if values.min() < 0:  # signed values: a diverging map, white = 0
        cmap, norm = "RdBu_r", Normalize(-vmax * 1.8, vmax * 1.8)
    else:
        norm = Normalize(-vmax * 0.15, vmax * 1.6)  # keep cells light enough for black text
    ax.imshow(values, cmap=cmap, norm=norm, interpolation="nearest")
    if pad_mask is not None and pad_mask.any():
        grey = np.zeros((h, w, 4))
        grey[pad_mask] = (0.85, 0.85, 0.85, 1.0)
        ax.imshow(grey, interpolation="nearest")
    size = 12  # the figure gives every cell 0.6 inch, enough for "-142" or "0.25" at 12 pt
    for i in range(h):
        for j in range(w):
            is_pad = pad_mask is not None and pad_mask[i, j]
            ax.text(
                j,
                i,
                _fmt(values[i, j]),
                ha="center",
                va="center",
                fontsize=size,
                color="#707070" if is_pad else "black",
                style="italic" if is_pad else "normal",
            )
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(title, fontsize=11)


def _outline(
    ax: Axes, top: float, left: float, height: float, width: float, colour: str = _HIGHLIGHT, lw: float = 3.0
) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(
        Rectangle(
            (left - 0.5, top - 0.5), width, height, fill=False, edgecolor=colour, linewidth=lw, zorder=5, clip_on=False
        )
    )


def _symbol(fig: Figure, spec: Any, text: str) -> None:
    ax = fig.add_subplot(spec)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=26, transform=ax.transAxes)


def plot_convolution(
    image: ArrayLike | None = None,
    kernel: ArrayLike | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    highlight: tuple[int, int] = (0, 0),
    *,
    path: str | os.PathLike[str] | None = None,
    dpi: float = 100,
) -> Figure:
    """Draw one convolution as the lecture does (slides 7-9, 26-28): input * kernel = output.

    The input grid shows its values (zero-padding cells grey and italic), then the kernel, then the
    output with every cell's value. The window that produced output cell ``highlight = (row, col)``
    is outlined on the input, and the sum is written out underneath:
    ``4x1 + 2x2 + 0x3 + ... = 142``. The output is computed with :func:`cnnfast.conv2d`.

    Defaults reproduce the lecture: a 4x4 image and the 3x3 kernel 1..9, giving
    ``[[142, 189], [225, 230]]``. ``image`` and ``kernel`` are 2-D; ``stride`` and ``padding`` are
    ints or (rows, cols) pairs as in conv2d. Grids up to 16 cells a side stay legible.
    """
    from ._utils import _pair
    from .functional.conv import conv2d

    op = "plot_convolution"
    img = _as_array(LECTURE_IMAGE if image is None else image, "image", op)
    ker = _as_array(LECTURE_KERNEL if kernel is None else kernel, "kernel", op)
    if img.ndim != 2 or ker.ndim != 2:
        raise ValueError(
            f"{op}: image and kernel must be 2-D, got image of shape {img.shape} and kernel of " f"shape {ker.shape}"
        )
    sh, sw = _pair(stride, "stride", op)
    ph, pw = _pair(padding, "padding", op)
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"{op}: stride must be >= 1 and padding >= 0, got stride={stride!r}, padding={padding!r}")
    padded = np.pad(img.astype(np.float64), ((ph, ph), (pw, pw)))
    if max(padded.shape) > 16 or max(ker.shape) > 16:
        raise ValueError(
            f"{op}: grids larger than 16 cells a side are not legible; got padded image "
            f"{padded.shape} and kernel {ker.shape}"
        )
    kh, kw = ker.shape
    if kh > padded.shape[0] or kw > padded.shape[1]:
        raise ValueError(f"{op}: kernel {ker.shape} is larger than the padded image {padded.shape}")
    dt = np.float64 if np.float64 in (img.dtype, ker.dtype) else np.float32
    out = conv2d(img.astype(dt)[None, None], ker.astype(dt)[None, None], stride=(sh, sw), padding=(ph, pw))[0, 0]
    oh, ow = out.shape
    r, c = (int(v) for v in highlight)
    if not (0 <= r < oh and 0 <= c < ow):
        raise ValueError(f"{op}: highlight {tuple(highlight)} is outside the {oh}x{ow} output")

    pad_mask = np.ones(padded.shape, bool)
    pad_mask[ph : ph + img.shape[0], pw : pw + img.shape[1]] = False
    top, left = r * sh, c * sw
    window = padded[top : top + kh, left : left + kw]
    terms = [f"{_fmt_term(a)}x{_fmt_term(b)}" for a, b in zip(window.ravel(), ker.ravel())]
    lines, line = [], []
    for t in terms:  # wrap long sums (5x5 kernels and up) over several lines
        line.append(t)
        if len(" + ".join(line)) > 80:
            lines.append(" + ".join(line))
            line = []
    if line:
        lines.append(" + ".join(line))

    # Every grid cell gets CELL inches (so the 12 pt values fit), each panel at least 3 cells wide
    # so the titles fit above small grids; the height leaves room for titles and the written sum.
    cell = 0.6
    ratios = [max(padded.shape[1], 3), 1.0, max(kw, 3), 1.0, max(ow, 3)]
    rows = max(padded.shape[0], kh, oh)
    fig = _figure((cell * sum(ratios) + 0.8, cell * rows + 1.3 + 0.25 * len(lines)), dpi)
    engine: Any = fig.get_layout_engine()  # the constrained layout engine _figure sets
    engine.set(w_pad=0.12, h_pad=0.08)  # room for the outlines drawn over the edges
    gs = fig.add_gridspec(1, 5, width_ratios=ratios)
    ax_in, ax_k, ax_out = fig.add_subplot(gs[0]), fig.add_subplot(gs[2]), fig.add_subplot(gs[4])
    _symbol(fig, gs[1], "*")
    _symbol(fig, gs[3], "=")
    pad_txt = "" if (ph, pw) == (0, 0) else f"\nzero padding {ph if ph == pw else (ph, pw)}"
    _draw_grid(ax_in, padded, f"input {img.shape[0]}x{img.shape[1]}{pad_txt}", pad_mask)
    _draw_grid(ax_k, ker.astype(np.float64), f"kernel {kh}x{kw}", cmap="Oranges")
    _draw_grid(
        ax_out, out.astype(np.float64), f"output {oh}x{ow}\nstride {sh if sh == sw else (sh, sw)}", cmap="Greens"
    )
    _outline(ax_in, top, left, kh, kw)
    _outline(ax_k, 0, 0, kh, kw)
    _outline(ax_out, r, c, 1, 1)
    eq = " +\n".join(lines) + f" = {_fmt(out[r, c])}"
    fig.supxlabel(f"output[{r}, {c}] = {eq}", fontsize=11, color=_HIGHLIGHT)
    return _finish(fig, path)


# ----------------------------------------------------------------------------------------------
# plot_kernels
# ----------------------------------------------------------------------------------------------


def plot_kernels(
    conv_layer_or_weight: Any,
    *,
    max_kernels: int = 64,
    ncols: int | None = None,
    annotate: bool | None = None,
    names: Sequence[str] | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
    dpi: float = 100,
) -> Figure:
    """Grid of a conv layer's kernels, one panel per output channel.

    Accepts an ``nn.Conv2d`` (its ``.weight``), a Tensor, or an ndarray ``(K, C, kH, kW)`` (also
    ``(K, kH, kW)`` or one ``(kH, kW)`` kernel). With ``C == 3`` each kernel is drawn in colour (RGB,
    min-max scaled per kernel, as for a first layer on colour images); otherwise the channels are
    averaged and drawn on one blue-white-red scale shared by all kernels (white = 0), with a
    colour bar. ``annotate`` writes the weights into the cells (default: when there are at most 16
    kernels of at most 5x5). ``names`` labels the panels (default ``#0, #1, ...``). At most
    ``max_kernels`` are drawn.
    """
    op = "plot_kernels"
    w = getattr(conv_layer_or_weight, "weight", conv_layer_or_weight)
    w = _as_array(w, "weight", op).astype(np.float64)
    if w.ndim == 2:
        w = w[None, None]
    elif w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4 or w.size == 0:
        raise ValueError(f"{op}: expected a conv weight (K, C, kH, kW) (or a Conv2d layer), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{op}: the weight contains NaN or infinity")
    k_all, c, kh, kw = w.shape
    k = min(k_all, int(max_kernels))
    if names is not None and len(names) < k:
        raise ValueError(f"{op}: got {len(names)} names for {k} kernels")
    ncols = int(ncols) if ncols else min(k, 8 if k > 16 else max(1, math.ceil(math.sqrt(k))))
    nrows = math.ceil(k / ncols)
    rgb = c == 3
    if annotate is None:
        annotate = k <= 16 and kh <= 5 and kw <= 5 and not rgb
    maps = w[:k].mean(axis=1)
    vmax = float(np.abs(maps).max()) or 1.0
    cell = 1.9 if annotate else 1.1
    fig = _figure((ncols * cell + (0 if rgb else 0.9), nrows * cell + 0.6), dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    im = None
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= k:
            ax.axis("off")
            continue
        if rgb:
            rgb_k = w[i].transpose(1, 2, 0)
            lo, hi = rgb_k.min(), rgb_k.max()
            ax.imshow((rgb_k - lo) / (hi - lo) if hi > lo else np.full_like(rgb_k, 0.5), interpolation="nearest")
        else:
            im = ax.imshow(maps[i], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            if annotate:
                for (a, b), v in np.ndenumerate(maps[i]):
                    ax.text(
                        b,
                        a,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=max(7, 11 - max(kh, kw)),
                        color="white" if abs(v) > 0.6 * vmax else "black",
                    )  # readable on dark cells
        ax.set_title(f"#{i}" if names is None else str(names[i]), fontsize=8 if names is None else 10, pad=2)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="weight")
    how = "RGB" if rgb else ("channels averaged" if c > 1 else "")
    shown = f", first {k} shown" if k < k_all else ""
    fig.suptitle(
        title or f"conv kernels {k_all}x{c}x{kh}x{kw}" + (f" ({how}{shown})" if how or shown else ""), fontsize=11
    )
    return _finish(fig, path)


# ----------------------------------------------------------------------------------------------
# plot_feature_maps
# ----------------------------------------------------------------------------------------------


def _children(model: Any) -> list[Any]:
    if hasattr(model, "children"):
        return list(model.children())
    try:
        return list(model)
    except TypeError:
        raise TypeError(
            f"plot_feature_maps: model must be a Sequential (an iterable of layers), got " f"{type(model).__name__}"
        ) from None


def _describe(layer: Any) -> str:
    """Short layer label: ``Conv2d(1, 6, k=5)`` style from repr, cut to fit a row label."""
    text = repr(layer).split("\n")[0]
    return text if len(text) <= 34 else text[:31] + "..."


def plot_feature_maps(
    model: Any,
    image: Any,
    layers: Iterable[int] | None = None,
    *,
    max_channels: int = 8,
    path: str | os.PathLike[str] | None = None,
    dpi: float = 100,
) -> Figure:
    """Run ``model`` on one input and show the feature maps after each layer, one row per layer.

    ``model`` is a Sequential (anything iterable over layers; each layer is called on the previous
    layer's output, with gradient recording off). ``image`` is one input as the model takes it:
    ``(C, H, W)``, ``(1, C, H, W)``, or ``(H, W)`` for one channel. ``layers`` picks layers by index;
    by default every layer whose output is still a stack of maps ``(1, C, H, W)`` (conv, ReLU, pool;
    not flatten/linear). The first row is the input. Columns are channels, at most ``max_channels``;
    each map is scaled to its own range (``viridis``: dark = low).
    """
    op = "plot_feature_maps"
    x = _as_array(image, "image", op)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"{op}: expected one input (C, H, W), (1, C, H, W) or (H, W), got shape {np.shape(image)}")
    x = np.ascontiguousarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    children = _children(model)
    if layers is not None:
        layers = [int(i) for i in layers]
        bad = [i for i in layers if not -len(children) <= i < len(children)]
        if bad:
            raise ValueError(f"{op}: layer indices {bad} out of range for a model with {len(children)} layers")
        layers = {i % len(children) for i in layers}

    try:
        from .autograd import no_grad
    except ImportError:  # autograd not available: layers on ndarrays record nothing anyway
        no_grad = contextlib.nullcontext  # type: ignore[misc,assignment]
    rows = [("input", x)]
    was_training = getattr(model, "training", None)
    if was_training and hasattr(model, "eval"):
        model.eval()  # show what the model computes at inference: dropout off
    try:
        with no_grad():
            rows.extend(_run_layers(op, children, x, layers))
    finally:
        if was_training and hasattr(model, "train"):
            model.train(True)
    ncols = min(max(r[1].shape[1] for r in rows), int(max_channels))
    fig = _figure((1.3 * ncols + 2.4, 1.35 * len(rows) + 0.5), dpi)
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for (label, maps), ax_row in zip(rows, axes):
        c = maps.shape[1]
        for j, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= c:
                ax.axis("off")
                continue
            ax.imshow(maps[0, j], cmap="viridis", interpolation="nearest")
            if j == 0:
                ax.set_ylabel(
                    f"{label}\n{c}x{maps.shape[2]}x{maps.shape[3]}", fontsize=7, rotation=0, ha="right", va="center"
                )
    fig.suptitle(f"feature maps, one row per layer (first {ncols} channels)", fontsize=11)
    return _finish(fig, path)


def _run_layers(op: str, children: Sequence[Any], x: Any, layers: Any) -> list[tuple[str, Array]]:
    """Call each layer on the previous output; return (label, maps) for the layers to show."""
    rows = []
    out = x
    for i, layer in enumerate(children):
        out = layer(out)
        out = np.asarray(getattr(out, "data", out))
        wanted = (i in layers) if layers is not None else out.ndim == 4
        if wanted:
            if out.ndim != 4:
                raise ValueError(
                    f"{op}: layer {i} ({_describe(layer)}) outputs shape {out.shape}, not feature " f"maps (1, C, H, W)"
                )
            rows.append((f"{i}: {_describe(layer)}", out))
    return rows


# ----------------------------------------------------------------------------------------------
# plot_filters_demo
# ----------------------------------------------------------------------------------------------


def plot_filters_demo(
    image: ArrayLike | None = None, *, sigma: float = 2.0, path: str | os.PathLike[str] | None = None, dpi: float = 100
) -> Figure:
    """The original image beside Sobel x, Sobel y, the Sobel magnitude and a Gaussian blur.

    ``image`` is grayscale ``(H, W)`` or colour ``(H, W, 3)`` (uint8 0-255 or float); default the
    shipped ``camera`` photograph. Edges are computed on the grey version (channel mean) of a colour
    image; the blur keeps the colour. All filters come from :mod:`cnnfast.filters`.
    """
    from . import filters as F

    op = "plot_filters_demo"
    if image is None:
        from .datasets import sample_image

        image = sample_image("camera")
    img = _as_array(image, "image", op)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))):
        raise ValueError(f"{op}: expected a grayscale (H, W) or colour (H, W, 3) image, got shape {img.shape}")
    if img.ndim == 3:
        img = img[..., :3]
    grey = img.astype(np.float32).mean(axis=2) if img.ndim == 3 else img.astype(np.float32)
    gx = F.sobel(grey, axis=1)
    gy = F.sobel(grey, axis=0)
    mag = np.hypot(gx, gy)
    blur = F.gaussian_blur(img, sigma)
    scale = 255.0 if img.dtype == np.uint8 or float(np.max(img)) > 1.0 else 1.0

    def show_image(ax: Axes, a: Array) -> None:
        a = np.clip(a / scale, 0, 1) if a.dtype != np.uint8 else a
        ax.imshow(
            a,
            cmap="gray" if a.ndim == 2 else None,
            vmin=0 if a.ndim == 2 else None,
            vmax=(1 if a.dtype != np.uint8 else 255) if a.ndim == 2 else None,
        )

    h, w = grey.shape
    fig = _figure((5 * 2.9 * min(1.6, max(0.6, w / h)), 3.4), dpi)
    axes = fig.subplots(1, 5)
    show_image(axes[0], img)
    axes[0].set_title("original", fontsize=10)
    lim = float(max(np.abs(gx).max(), np.abs(gy).max())) or 1.0
    for ax, g, name, k in (
        (axes[1], gx, "Sobel x  (d/dx)", F.kernels.sobel_x()),
        (axes[2], gy, "Sobel y  (d/dy)", F.kernels.sobel_y()),
    ):
        ax.imshow(g, cmap="gray", vmin=-lim / 2, vmax=lim / 2)  # half range: mid-grey = 0, edges saturate
        rows = "\n".join(" ".join(f"{int(v):>2d}" for v in row) for row in k)
        ax.set_title(name, fontsize=10)
        ax.text(
            0.02,
            0.02,
            rows,
            transform=ax.transAxes,
            fontsize=7,
            family="monospace",
            va="bottom",
            bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=2),
        )
    axes[3].imshow(mag, cmap="magma", vmin=0, vmax=float(np.percentile(mag, 99.5)) or 1.0)
    axes[3].set_title("Sobel magnitude", fontsize=10)
    show_image(axes[4], blur)
    axes[4].set_title(f"Gaussian blur (sigma={sigma:g})", fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, path)


# ----------------------------------------------------------------------------------------------
# plot_history
# ----------------------------------------------------------------------------------------------


def plot_history(history: Any, *, path: str | os.PathLike[str] | None = None, dpi: float = 100) -> Figure:
    """Loss and accuracy per epoch, training and validation, side by side.

    ``history`` is what :func:`cnnfast.fit` returns (a History; its ``.history`` dict is used) or
    such a dict: ``'loss'``, ``'accuracy'``, ``'val_loss'``, ``'val_accuracy'``, each a list with one
    value per epoch. Missing keys are skipped; at least one of loss/accuracy is needed.
    """
    op = "plot_history"
    h = getattr(history, "history", history)
    if not isinstance(h, dict):
        raise TypeError(f"{op}: expected a History or its .history dict, got {type(history).__name__}")
    panels = [(m, [k for k in (m, f"val_{m}") if h.get(k) is not None and len(h[k])]) for m in ("loss", "accuracy")]
    panels = [(m, keys) for m, keys in panels if keys]
    if not panels:
        raise ValueError(f"{op}: the history has no 'loss' or 'accuracy' values (keys: {sorted(h)})")
    fig = _figure((5.2 * len(panels), 3.6), dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, keys) in zip(axes, panels):
        for key in keys:
            y = np.asarray(h[key], dtype=np.float64)
            epochs = np.arange(1, len(y) + 1)
            val = key.startswith("val_")
            ax.plot(
                epochs,
                y,
                marker="o",
                markersize=3,
                linestyle="--" if val else "-",
                label="validation" if val else "training",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric, fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend()
        n = max(len(h[k]) for k in keys)
        if n <= 20:
            ax.set_xticks(np.arange(1, n + 1))
    return _finish(fig, path)
