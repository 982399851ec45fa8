"""Batch inference over Dask arrays: ``cnnfast.dask.predict(model, x)``.

``x`` is a Dask array of samples, chunked along the first (batch) axis; the result is a lazy Dask
array of the model's outputs, chunk for chunk, equal to ``model(x.compute())`` (computed in eval
mode under ``no_grad``, as :func:`cnnfast.predict`). It runs wherever Dask runs: the threaded
scheduler (cnnfast's kernels release the GIL), processes, or a ``distributed`` cluster. The model
is one node of the graph, so a distributed cluster ships it to each worker once, not once per
chunk. Needs the optional extra: ``pip install 'cnnfast[dask]'``.

Example (features of a large image array, chunk by chunk, with a progress bar)::

    import dask.array as da
    from dask.diagnostics import ProgressBar
    images = da.from_zarr(...)  # or da.from_array(np.load(path, mmap_mode="r"), chunks=(1024, -1, -1, -1))
    features = cnnfast.dask.predict(backbone, images)
    with ProgressBar():
        features.to_zarr(...)   # or da.store / .compute()

Threads: each chunk runs cnnfast's kernels with ``cnnfast.get_num_threads()`` threads of the
process that computes it; with several Dask threads or workers per machine, cap cnnfast's threads
so that (Dask threads x cnnfast threads) stays near the core count, e.g.
``client.run(cnnfast.set_num_threads, 1)`` on a cluster of one-thread workers.
"""

from __future__ import annotations

import copy
import uuid

import numpy as np

__all__ = ["predict"]


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as e:
        raise ImportError(
            "cnnfast.dask needs Dask: pip install 'cnnfast[dask]' (dask[array], plus distributed " "for a cluster)"
        ) from e
    return dask, da


def _predict_block(block, model, batch_size, softmax):
    from cnnfast.training import predict as _predict

    if block.shape[0] == 0:
        return None
    return _predict(model, np.ascontiguousarray(block), batch_size, softmax=softmax)


def _run_block(block, model, batch_size, softmax, tail, dtype):
    out = _predict_block(block, model, batch_size, softmax)
    return np.empty((0,) + tail, dtype) if out is None else out


def predict(model, x, *, batch_size=256, softmax=False):
    """The outputs of ``model`` for the Dask array ``x``, as a Dask array chunked like ``x``'s first axis.

    ``x`` has the samples along axis 0 (e.g. ``(N, C, H, W)`` images); chunks along the other axes
    are merged (each block must hold whole samples). Each block is run through
    :func:`cnnfast.predict` in batches of ``batch_size``; ``softmax=True`` returns probabilities.
    A model in training mode is copied and put in eval mode first, so ``model`` itself is not
    changed while Dask computes and concurrent blocks do not race on its mode.
    """
    dask, da = _dask()
    from cnnfast.training import _check_batch_size

    if not isinstance(x, da.Array):
        raise TypeError(
            f"cnnfast.dask.predict: x must be a dask.array.Array, got {type(x).__name__}; "
            "use cnnfast.predict for NumPy arrays, or dask.array.from_array(x, chunks=...)"
        )
    if x.ndim < 2:
        raise ValueError(f"cnnfast.dask.predict: x must have a sample axis and feature axes, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"cnnfast.dask.predict: x must be floating point (float32 or float64), got {x.dtype}")
    if any(np.isnan(s) for s in x.shape):
        raise ValueError("cnnfast.dask.predict: x has unknown chunk sizes; call x.compute_chunk_sizes() first")
    _check_batch_size(batch_size, "cnnfast.dask.predict")
    if not callable(model):
        raise TypeError(
            f"cnnfast.dask.predict: model must be callable (a cnnfast.nn.Module), got {type(model).__name__}"
        )
    if getattr(model, "training", False):
        model = copy.deepcopy(model).eval()
    if x.numblocks[1:] != (1,) * (x.ndim - 1):
        x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
    # The output's trailing shape and dtype, from one sample run here.
    probe = _predict_block(np.zeros((1,) + x.shape[1:], x.dtype), model, 1, softmax)
    tail, dtype = probe.shape[1:], probe.dtype
    # One graph node holds the model: the threaded scheduler shares it, a distributed cluster
    # sends it once to each worker that computes a block (not once per block).
    model_node = dask.delayed(model, name=f"cnnfast-model-{uuid.uuid4().hex}", traverse=False)
    chunks = (x.chunks[0],) + tuple((s,) for s in tail)
    axes_in, axes_out = list(range(1, x.ndim)), list(range(1, 1 + len(tail)))
    return da.map_blocks(
        _run_block,
        x,
        model_node,
        int(batch_size),
        bool(softmax),
        tail,
        dtype,
        dtype=dtype,
        chunks=chunks,
        drop_axis=axes_in,
        new_axis=axes_out,
        meta=np.empty((0,) * len(chunks), dtype),
    )
