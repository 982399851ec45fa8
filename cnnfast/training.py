"""Keras-style training helpers for cnnfast models: ``fit``, ``evaluate``, ``predict``, ``History``.

They are thin loops over :class:`cnnfast.data.DataLoader` and the usual autograd step
(``zero_grad`` -> forward -> loss -> ``backward`` -> ``step``), written for the common case of
classification with integer labels; anything else is a loop you can write in a few lines.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._typing import Array, ArrayLike, TensorLike
    from .nn.module import Module
    from .optim.optimizer import Optimizer

# A callback: ``cb(epoch, logs)``, or an object with ``on_epoch_end(epoch, logs)``; True stops training.
_Callback = Any

__all__ = ["fit", "evaluate", "predict", "History"]


class History:
    """What :func:`fit` returns (Keras' ``History``).

    ``history``: dict of per-epoch lists, keys ``'loss'`` and ``'accuracy'`` (training, averaged over
    the epoch's samples as the weights changed) and, with validation data, ``'val_loss'`` and
    ``'val_accuracy'`` (measured after the epoch). ``epoch``: the epoch indices (0-based).
    ``epoch_time``: wall seconds of each epoch's training pass (without validation).
    ``images_per_second``: training throughput of each epoch. ``params``: the fit settings.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        self.epoch: list[int] = []
        self.epoch_time: list[float] = []
        self.images_per_second: list[float] = []
        self.params: dict[str, Any] = {}

    def _append(self, epoch: int, logs: dict[str, Any], seconds: float, n: int) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.epoch_time.append(seconds)
        self.images_per_second.append(n / seconds if seconds > 0 else math.inf)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


# ---------------------------------------------------------------------------------------- helpers
def _check_xy(X: TensorLike, y: TensorLike, who: str) -> tuple[Array, Array]:
    X = getattr(X, "data", X) if not isinstance(X, np.ndarray) else X
    y = getattr(y, "data", y) if not isinstance(y, np.ndarray) else y
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"{who}: X and y must have the same number of samples (first dimension), "
            f"got X of shape {X.shape} and y of shape {y.shape}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{who}: got an empty dataset (X of shape {X.shape})")
    if X.dtype.kind != "f":
        raise TypeError(
            f"{who}: X must be floating point (float32 or float64), got {X.dtype}; "
            "e.g. X.astype(np.float32) / 255 for images"
        )
    return X, y


def _check_batch_size(batch_size: int, who: str) -> None:
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"{who}: batch_size must be a positive integer, got {batch_size!r}")


def _is_labels(y: Array) -> bool:
    return y.dtype.kind in "iu" and y.ndim == 1


def _correct(out: Array, yb: Array) -> int | None:
    """Number of correct argmax predictions, or None when accuracy is not meaningful."""
    if out.ndim != 2 or not _is_labels(yb):
        return None
    return int(np.count_nonzero(out.argmax(axis=1) == yb))


def _default_loss() -> Callable[..., Any]:
    from .nn import CrossEntropyLoss

    return CrossEntropyLoss()


def _tensor(a: ArrayLike) -> Any:
    from .autograd import Tensor

    return Tensor(a)


def _set_mode(model: Any, training: bool) -> None:
    if hasattr(model, "train"):
        model.train(training)


def _mode(model: Any) -> bool:
    return getattr(model, "training", True)


def _fmt_logs(logs: dict[str, Any]) -> str:
    return " - ".join(
        f"{k}: {v:.4f}" for k, v in logs.items() if v is not None and not (isinstance(v, float) and math.isnan(v))
    )


def _stdout_isatty() -> bool:
    return hasattr(sys.stdout, "isatty") and sys.stdout.isatty()


class _Progress:
    """One progress line per epoch. On a terminal (verbose=1): a live tqdm bar when tqdm is
    installed, else a plain-text line redrawn in place. Otherwise (a pipe, a log file, verbose=2):
    one plain line per epoch on stdout, so logs are not flooded with redraws."""

    def __init__(self, verbose: int, epoch: int, epochs: int, steps: int) -> None:
        self.verbose, self.steps, self.bar = verbose, steps, None
        self.prefix = f"Epoch {epoch + 1}/{epochs}"
        self.tty = verbose == 1 and _stdout_isatty()
        self._last = 0.0
        if self.tty:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=steps, desc=self.prefix, unit="batch", leave=True, file=sys.stdout, dynamic_ncols=True
                )

    def update(self, step: int, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if v is not None}, refresh=False)
        elif self.tty:  # plain text, redrawn in place at most every 0.1 s (printing is not free)
            now = time.perf_counter()
            if now - self._last > 0.1 or step == self.steps:
                self._last = now
                sys.stdout.write(f"\r{self.prefix} - {step}/{self.steps} - {_fmt_logs(logs)}")
                sys.stdout.flush()

    def close(self, logs: dict[str, Any], seconds: float, ips: float) -> None:
        if self.verbose == 0:
            return
        line = f"{self.prefix} - {self.steps}/{self.steps} - {seconds:.1f}s - {ips:,.0f} img/s - {_fmt_logs(logs)}"
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if v is not None}, refresh=False)
            self.bar.close()
            print(f"  {seconds:.1f}s - {ips:,.0f} img/s - {_fmt_logs(logs)}", flush=True)
        elif self.tty:
            sys.stdout.write("\r" + line + "\n")
            sys.stdout.flush()
        else:
            print(line, flush=True)


def _call_callbacks(callbacks: Sequence[_Callback] | None, epoch: int, logs: dict[str, Any]) -> bool:
    """Callbacks: callables ``cb(epoch, logs)`` or objects with ``on_epoch_end(epoch, logs)``.
    Any of them returning True stops training after this epoch."""
    stop = False
    for cb in callbacks or ():
        fn = getattr(cb, "on_epoch_end", None) or cb
        if not callable(fn):
            raise TypeError(f"fit: callback {cb!r} is neither callable nor has on_epoch_end(epoch, logs)")
        stop = bool(fn(epoch, logs)) or stop
    return stop


# -------------------------------------------------------------------------------------- the API
def fit(
    model: Module,
    X: TensorLike,
    y: TensorLike,
    *,
    epochs: int,
    batch_size: int = 64,
    optimizer: Optimizer | None = None,
    loss: Callable[..., Any] | None = None,
    validation_data: tuple[TensorLike, TensorLike] | None = None,
    validation_split: float | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    verbose: int = 1,
    callbacks: Sequence[_Callback] | None = None,
    distributed: bool = False,
) -> History:
    """Train ``model`` on ``(X, y)`` for ``epochs`` epochs of mini-batch gradient descent.

    Parameters
    ----------
    model : Module
        Called on a Tensor batch of ``X``; put in train mode for the training passes.
    X, y : ndarray
        Inputs (float32/float64, first dimension = samples) and targets (int64 class labels for
        classification, as ``CrossEntropyLoss`` expects).
    epochs, batch_size : int
        Passes over the data and samples per step (the last batch may be smaller).
    optimizer : Optimizer, optional
        Default ``cnnfast.optim.Adam(model.parameters(), lr=1e-3)``.
    loss : callable, optional
        ``loss(output, target) -> scalar Tensor``; default ``cnnfast.nn.CrossEntropyLoss()``.
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch (``val_loss``, ``val_accuracy``).
    validation_split : float in (0, 1), optional
        Hold out this fraction of ``(X, y)`` -- the *last* samples, before any shuffling, as Keras
        does -- as validation data. Not together with ``validation_data``.
    shuffle : bool
        Reshuffle the training samples every epoch.
    seed : int, optional
        Seeds the shuffling, so two runs with the same seed see the same batches in the same
        order (the batch order is ``numpy.random.default_rng(seed).permutation(n)`` per epoch).
    verbose : 0, 1 or 2
        0 silent; 1 a live progress bar per epoch on a terminal (tqdm if installed, else plain
        text redrawn in place) and one line per epoch when stdout is not a terminal; 2 one line
        per epoch.
    callbacks : list, optional
        Callables ``cb(epoch, logs)`` or objects with ``on_epoch_end(epoch, logs)``, called after
        each epoch with that epoch's metrics; returning True stops training (early stopping).
        E.g. ``callbacks=[lambda e, logs: scheduler.step()]`` steps an lr scheduler per epoch.
    distributed : bool
        Data-parallel training over MPI (run under ``mpirun -n R``; see :mod:`cnnfast.distributed`).
        Every rank passes the same ``X, y`` and the same arguments; the model is wrapped in
        ``DistributedDataParallel`` (rank 0's weights are broadcast) unless it already is, and
        every batch of ``batch_size`` samples (the global batch, divisible by ``R``) is split
        between the ranks with a :class:`~cnnfast.data.DistributedSampler`, so the run takes the
        steps of a single-process ``fit`` with the same ``seed`` (up to rounding, and up to the
        at most ``R - 1`` samples repeated to make the epoch divisible by ``R``). The metrics,
        the callbacks' ``logs`` and the History are those of all ranks together; progress is printed
        on rank 0 only. The model is trained in place on every rank.

    Returns
    -------
    History
        Per-epoch ``loss``/``accuracy`` (and ``val_*``), epoch times and throughput.
    """
    from .data import DataLoader, TensorDataset

    X, y = _check_xy(X, y, "fit")
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    _check_batch_size(batch_size, "fit")
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
    if validation_data is not None and validation_split is not None:
        raise ValueError("fit: pass validation_data or validation_split, not both")
    if validation_split is not None:
        if not 0 < validation_split < 1:
            raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split!r}")
        n_val = int(round(len(X) * validation_split))
        if n_val == 0 or n_val == len(X):
            raise ValueError(
                f"fit: validation_split={validation_split} of {len(X)} samples leaves "
                f"{len(X) - n_val} for training and {n_val} for validation"
            )
        validation_data = (X[-n_val:], y[-n_val:])
        X, y = X[:-n_val], y[:-n_val]
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a tuple (X_val, y_val)")
        Xv, yv = _check_xy(*validation_data, "fit (validation_data)")
    if optimizer is None:
        from .optim import Adam

        optimizer = Adam(model.parameters(), lr=1e-3)
    loss_fn = loss if loss is not None else _default_loss()

    if distributed:
        step_model, loader, sync, rank = _distributed_setup(model, X, y, batch_size, shuffle, seed)
        verbose = verbose if rank == 0 else 0
    else:
        step_model, sync = model, None
        loader = DataLoader(TensorDataset(X, y), batch_size=int(batch_size), shuffle=shuffle, seed=seed)
    history = History()
    history.params = {"epochs": int(epochs), "batch_size": int(batch_size), "steps": len(loader), "samples": len(X)}
    for epoch in range(int(epochs)):
        _set_mode(model, True)
        if sync is not None:
            loader.sampler.set_epoch(epoch)
        progress = _Progress(verbose, epoch, epochs, len(loader))
        total_loss, correct, seen, counted = 0.0, 0, 0, 0
        t0 = time.perf_counter()
        for step, (xb, yb) in enumerate(loader, 1):
            out = step_model(_tensor(xb))
            batch_loss = loss_fn(out, yb)
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
            value = float(getattr(batch_loss, "data", batch_loss))
            n, c = len(yb), _correct(getattr(out, "data", out), yb)
            if sync is not None:  # all ranks' numbers, so they all see the same loss (and stop together)
                value, n, c = sync(value, n, c)
            if not math.isfinite(value):
                progress.close({"loss": value}, time.perf_counter() - t0, 0.0)
                raise FloatingPointError(
                    f"fit: the loss became {value} at epoch {epoch + 1}, step {step}; "
                    "lower the learning rate or check the inputs for NaN/inf"
                )
            total_loss += value * n
            seen += n
            if c is not None:
                correct += c
                counted += n
            if progress.tty:
                progress.update(step, {"loss": total_loss / seen, "accuracy": correct / counted if counted else None})
        seconds = time.perf_counter() - t0
        logs = {"loss": total_loss / max(seen, 1), "accuracy": correct / counted if counted else float("nan")}
        if validation_data is not None:
            val = evaluate(model, Xv, yv, batch_size=max(int(batch_size), 256), loss=loss_fn, distributed=distributed)
            logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
        history._append(epoch, logs, seconds, seen)
        progress.close(logs, seconds, history.images_per_second[-1])
        if _call_callbacks(callbacks, epoch, dict(logs)):
            break
    return history


def _distributed_setup(
    model: Module, X: Array, y: Array, batch_size: int, shuffle: bool, seed: int | None
) -> tuple[Any, Any, Callable[[float, int, int | None], tuple[float, int, int | None]], int]:
    """fit(distributed=True): the DDP wrapper, this rank's loader and the per-step metric reduction."""
    from . import distributed as dist
    from .data import DataLoader, DistributedSampler, TensorDataset

    rank, world = dist.init()
    if batch_size % world:
        raise ValueError(
            f"fit: with distributed=True batch_size is the global batch, split evenly between the "
            f"{world} ranks; {batch_size} is not divisible by {world}"
        )
    ddp = model if isinstance(model, dist.DistributedDataParallel) else dist.DistributedDataParallel(model)
    if seed is None:  # one shuffling seed for all ranks, drawn on rank 0
        entropy: Any = np.random.SeedSequence().entropy  # an int when none is given
        seed = int(dist.broadcast(np.array([entropy % 2**63], dtype=np.int64))[0])
    sampler = DistributedSampler(TensorDataset(X, y), world, rank, shuffle=shuffle, seed=int(seed))
    loader = DataLoader(sampler.dataset, batch_size=batch_size // world, sampler=sampler)
    buf = np.zeros(4)

    def sync(value: float, n: int, correct: int | None) -> tuple[float, int, int | None]:
        buf[:] = value * n, n, -1 if correct is None else correct, 1
        dist.all_reduce(buf)
        correct = None if buf[2] < 0 else int(round(buf[2]))
        return buf[0] / buf[1], int(round(buf[1])), correct

    return ddp, loader, sync, rank


def _batched_outputs(model: Module, X: Array, batch_size: int, who: str) -> Iterator[tuple[int, Array, Array]]:
    from .autograd import no_grad

    _check_batch_size(batch_size, who)
    was_training = _mode(model)
    _set_mode(model, False)
    try:
        with no_grad():
            for start in range(0, len(X), int(batch_size)):
                xb = X[start : start + int(batch_size)]
                out = model(_tensor(xb))
                yield start, xb, np.asarray(getattr(out, "data", out))
    finally:
        _set_mode(model, was_training)


def evaluate(
    model: Module,
    X: TensorLike,
    y: TensorLike,
    batch_size: int = 256,
    *,
    loss: Callable[..., Any] | None = None,
    distributed: bool = False,
) -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``(X, y)``: ``{'loss': float, 'accuracy': float}``.

    Runs in eval mode under ``no_grad`` (the model's previous train/eval mode is restored
    afterwards). ``loss`` defaults to ``CrossEntropyLoss()``; the loss is the sample-weighted mean
    over batches. ``accuracy`` is the fraction of argmax predictions equal to the integer labels
    (NaN when ``y`` is not a vector of labels). With ``distributed=True`` (under MPI, the same
    model and data on every rank) each rank evaluates every ``R``-th sample and the numbers of all
    ranks are combined.
    """
    X, y = _check_xy(X, y, "evaluate")
    if distributed:
        from . import distributed as dist

        model = getattr(model, "module", model) if isinstance(model, dist.DistributedDataParallel) else model
        rank, world = dist.init()
        part = _evaluate_sums(model, X[rank::world], y[rank::world], batch_size, loss) if rank < len(X) else [0.0] * 4
        total, correct, counted, n = dist.all_reduce(np.array(part, dtype=np.float64))
        return {"loss": total / n, "accuracy": correct / counted if counted else float("nan")}
    total, correct, counted, n = _evaluate_sums(model, X, y, batch_size, loss)
    return {"loss": total / n, "accuracy": correct / counted if counted else float("nan")}


def _evaluate_sums(model: Module, X: Array, y: Array, batch_size: int, loss: Callable[..., Any] | None) -> list[float]:
    from .autograd import no_grad

    loss_fn = loss if loss is not None else _default_loss()
    total, correct, counted = 0.0, 0, 0
    for start, xb, out in _batched_outputs(model, X, batch_size, "evaluate"):
        yb = y[start : start + len(xb)]
        with no_grad():
            total += float(getattr(loss_fn(_tensor(out), yb), "data", 0.0)) * len(xb)
        c = _correct(out, yb)
        if c is not None:
            correct += c
            counted += len(xb)
    return [total, correct, counted, len(X)]


def predict(model: Module, X: TensorLike, batch_size: int = 256, *, softmax: bool = False) -> Array:
    """The model's outputs for ``X`` as one ndarray of shape ``(N, ...)``, computed in batches.

    For a classifier ending in ``Linear`` (trained with ``CrossEntropyLoss``) these are the
    **logits**; pass ``softmax=True`` to get class probabilities instead (rows summing to 1).
    ``predict(model, X).argmax(1)`` gives the predicted classes either way. Runs in eval mode
    under ``no_grad`` (the previous mode is restored afterwards).
    """
    X = np.asarray(getattr(X, "data", X) if not isinstance(X, np.ndarray) else X)
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"predict: X must have a non-empty first (sample) dimension, got shape {X.shape}")
    outs = [out for _, _, out in _batched_outputs(model, X, batch_size, "predict")]
    out = np.concatenate(outs, axis=0)
    if softmax:
        if out.ndim != 2:
            raise ValueError(f"predict: softmax=True needs (N, classes) outputs, got shape {out.shape}")
        z = out - out.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        out = z / z.sum(axis=1, keepdims=True)
    return out
