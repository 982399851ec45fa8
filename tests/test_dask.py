"""cnnfast.dask.predict on the threaded scheduler and on a distributed LocalCluster of worker processes."""

from __future__ import annotations

import os

import numpy as np
import pytest

import cnnfast


def _require(name):
    """Import an optional extra; in CI (where the test extra installs it) a missing one fails instead of skipping."""
    if os.environ.get("CI"):
        import importlib

        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"{name} is not installed: pip install 'cnnfast[dask]'")


da = _require("dask.array")
cdask = pytest.importorskip("cnnfast.dask")


def _lenet():
    from cnnfast.demo import build_lenet

    cnnfast.manual_seed(0)
    return build_lenet()


def _images(n=70, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)


def test_threaded_scheduler_equals_predict_on_the_whole_array():
    model = _lenet()
    x = _images()
    dx = da.from_array(x, chunks=(16, 1, 14, 28))  # chunks along the image axes are merged
    logits = cdask.predict(model, dx)
    assert logits.shape == (70, 10) and logits.chunks == ((16, 16, 16, 16, 6), (10,))
    want = cnnfast.predict(model, x)
    np.testing.assert_allclose(logits.compute(scheduler="threads"), want, rtol=1e-5, atol=1e-6)
    assert model.training  # predicted in eval mode on a copy; the model is untouched
    probs = cdask.predict(model, dx, softmax=True, batch_size=5).compute(scheduler="threads")
    np.testing.assert_allclose(probs, cnnfast.predict(model, x, softmax=True), rtol=1e-5, atol=1e-6)
    features = cdask.predict(model[:6], dx)  # conv/pool feature maps: a 4-D output
    assert features.shape == (70, 16, 5, 5)
    np.testing.assert_allclose(
        features.compute(scheduler="threads"), cnnfast.predict(model[:6], x), rtol=1e-5, atol=1e-6
    )


def test_bad_inputs_are_explained():
    model = _lenet()
    with pytest.raises(TypeError, match="must be a dask.array.Array"):
        cdask.predict(model, _images(4))
    with pytest.raises(TypeError, match="floating point"):
        cdask.predict(model, da.zeros((4, 1, 28, 28), dtype=np.uint8, chunks=2))
    with pytest.raises(ValueError, match="sample axis"):
        cdask.predict(model, da.zeros(4, chunks=2))


def _counted_model(log_path):
    """LeNet whose unpickling appends this process's id to ``log_path`` (a local class: Dask sends
    it by value, cloudpickle, so worker processes need not import this test module)."""
    base = _lenet()

    class Counted(type(base)):
        def __setstate__(self, state):
            with open(log_path, "a") as f:
                f.write(f"{os.getpid()}\n")
            self.__dict__.update(state)

    model = Counted.__new__(Counted)
    model.__dict__.update(base.__dict__)
    return model.eval()


def test_local_cluster_of_processes_receives_the_model_once_per_worker(tmp_path):
    distributed = _require("distributed")
    log = tmp_path / "unpickled.txt"
    model = _counted_model(str(log))
    x = _images(96)
    dx = da.from_array(x, chunks=12)  # 8 chunks for 2 workers
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(cnnfast.set_num_threads, 1)
        worker_pids = set(client.run(os.getpid).values())
        with distributed.get_task_stream(client) as stream:
            result = cdask.predict(model, dx).compute()
        busy = {t["worker"] for t in stream.data if "_run_block" in t["key"] or "run_block" in str(t["key"])}
    np.testing.assert_allclose(result, cnnfast.predict(model, x), rtol=1e-5, atol=1e-6)
    pids = [int(p) for p in log.read_text().split()] if log.exists() else []
    per_worker = {pid: pids.count(pid) for pid in worker_pids}
    assert len(worker_pids) == 2 and len(busy) == 2, (per_worker, busy)  # both workers computed chunks
    assert all(n <= 1 for n in per_worker.values()), f"model unpickled {per_worker} times per worker for 8 chunks"
    assert sum(per_worker.values()) >= 1
