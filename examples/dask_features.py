"""CNN features of a large image array, chunk by chunk, with Dask (and its progress bar).

    python examples/dask_features.py [--n 50000] [--chunk 2000] [--workers 0] [--dir DIR]

1. Writes ``--n`` 28x28 digit images (MNIST-5k digits, randomly shifted) to ``DIR/images.npy``
   chunk by chunk, so the input lives on disk (50,000 images: 157 MB), not in memory.
2. Trains the demo's LeNet for one epoch on the 4,000 MNIST training digits (``--no-train``: keep
   the random weights) and keeps everything up to its 84-unit layer as the feature extractor.
3. ``cnnfast.dask.predict(backbone, images)`` over a Dask array whose chunks read their rows of
   ``images.npy`` (:func:`load_images`), and ``da.store`` of the features into ``DIR/features.npy`` (a memmap),
   on Dask's threaded scheduler with ``dask.diagnostics.ProgressBar``. With ``--workers N`` the
   same graph runs on a ``distributed.LocalCluster`` of N one-thread worker processes instead
   (progress from ``distributed.progress``; the backbone reaches each worker once).
4. Checks the first chunk against ``cnnfast.predict`` and prints the throughput.

Needs ``pip install 'cnnfast[dask]'``. ``DIR`` defaults to a temporary directory, deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def write_images(path, n, chunk, seed=0):
    """``n`` shifted MNIST digits as a float32 (n, 1, 28, 28) .npy file, written ``chunk`` at a time."""
    from cnnfast.datasets import load_mnist_5k

    digits, _ = load_mnist_5k("train")
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 1, 28, 28))
    for start in range(0, n, chunk):
        idx = rng.integers(0, len(digits), min(chunk, n - start))
        shifts = rng.integers(-2, 3, (len(idx), 2))
        block = digits[idx]
        for k, (dy, dx) in enumerate(shifts):
            block[k] = np.roll(block[k], (dy, dx), axis=(1, 2))
        out[start : start + len(idx)] = block
    out.flush()
    del out


def _read_rows(path, start, stop):
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def load_images(path, chunk):
    """A Dask array over the .npy file whose chunks are read where they are computed: by the
    thread, or by the worker process (the file must be visible there), so the graph stays small.
    (``da.from_array(np.load(path, mmap_mode="r"))`` suits the threaded scheduler too, but a
    cluster would be sent the data inside the graph.)"""
    import dask
    import dask.array as da

    header = np.load(path, mmap_mode="r")
    shape, dtype = header.shape, header.dtype
    del header
    read = dask.delayed(_read_rows, pure=True)
    blocks = [
        da.from_delayed(
            read(path, s, min(s + chunk, shape[0])), (min(s + chunk, shape[0]) - s,) + shape[1:], dtype=dtype
        )
        for s in range(0, shape[0], chunk)
    ]
    return da.concatenate(blocks, axis=0)


def backbone(train=True, seed=0):
    """The demo's LeNet up to (and including) the ReLU after its 84-unit layer."""
    import cnnfast
    from cnnfast.demo import build_lenet

    cnnfast.manual_seed(seed)
    model = build_lenet()
    if train:
        X, y = cnnfast.datasets.load_mnist_5k("train")
        cnnfast.fit(
            model,
            X,
            y,
            epochs=1,
            batch_size=64,
            seed=seed,
            verbose=0,
            optimizer=cnnfast.optim.Adam(model.parameters(), lr=3e-3),
        )
    return model[:-1].eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=50_000, help="number of images (default 50,000)")
    p.add_argument("--chunk", type=int, default=2_000, help="images per Dask chunk (default 2,000)")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="0: threaded scheduler in this process (default); N: a LocalCluster of N worker processes",
    )
    p.add_argument("--dir", default=None, help="where images.npy and features.npy go (default: a temporary directory)")
    p.add_argument("--no-train", action="store_true", help="use the untrained LeNet's features")
    args = p.parse_args(argv)
    if args.n < 1 or args.chunk < 1 or args.workers < 0:
        raise SystemExit(f"--n and --chunk must be >= 1 and --workers >= 0, got {args.n}, {args.chunk}, {args.workers}")

    import dask
    import dask.array as da

    import cnnfast
    import cnnfast.dask

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cnnfast-dask-")
        args.dir = tmp.name
    os.makedirs(args.dir, exist_ok=True)
    images_path, features_path = os.path.join(args.dir, "images.npy"), os.path.join(args.dir, "features.npy")

    t = time.perf_counter()
    write_images(images_path, args.n, args.chunk)
    print(
        f"wrote {args.n:,} images to {images_path} ({os.path.getsize(images_path) / 2**20:.0f} MiB) "
        f"in {time.perf_counter() - t:.1f}s"
    )
    t = time.perf_counter()
    model = backbone(train=not args.no_train)
    print(
        f"backbone: LeNet up to its 84-unit layer ({'trained 1 epoch' if not args.no_train else 'untrained'}, "
        f"{time.perf_counter() - t:.1f}s)"
    )

    images = load_images(images_path, args.chunk)
    features = cnnfast.dask.predict(model, images, batch_size=500)
    print(f"images {images.shape} in {images.numblocks[0]} chunks -> features {features.shape} {features.dtype}")

    t = time.perf_counter()
    if args.workers == 0:
        from dask.diagnostics import ProgressBar

        # Dask runs one chunk per core; each chunk's kernels then use one thread (no oversubscription).
        threads = os.cpu_count() or 1
        previous = cnnfast.get_num_threads()
        cnnfast.set_num_threads(1)
        try:
            out = np.lib.format.open_memmap(features_path, mode="w+", dtype=features.dtype, shape=features.shape)
            with ProgressBar(), dask.config.set(scheduler="threads", num_workers=threads):
                da.store(features, out, lock=False)  # chunks write disjoint rows
            out.flush()
        finally:
            cnnfast.set_num_threads(previous)
        where = f"threaded scheduler, {threads} threads x 1 cnnfast thread"
    else:
        from distributed import Client, LocalCluster, progress

        with (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(cnnfast.set_num_threads, 1)
            t = time.perf_counter()  # not counting the cluster's start
            future = client.compute(features)
            progress(future)
            print()
            out = np.lib.format.open_memmap(features_path, mode="w+", dtype=features.dtype, shape=features.shape)
            out[:] = future.result()
            out.flush()
        where = f"LocalCluster, {args.workers} worker processes x 1 thread"
    elapsed = time.perf_counter() - t
    print(
        f"features of {args.n:,} images in {elapsed:.1f}s ({args.n / elapsed:,.0f} images/s; {where}) "
        f"-> {features_path}"
    )

    first = np.load(images_path, mmap_mode="r")[: args.chunk]
    np.testing.assert_allclose(
        np.load(features_path, mmap_mode="r")[: len(first)], cnnfast.predict(model, first), rtol=1e-4, atol=1e-5
    )
    print("first chunk checked against cnnfast.predict: equal")
    del out
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
