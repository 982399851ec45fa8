"""DataLoader / TensorDataset behaviour and the shipped MNIST subset."""

from __future__ import annotations

import numpy as np
import pytest

from cnnfast.data import DataLoader, Dataset, TensorDataset, random_split
from cnnfast.datasets import load_mnist_5k


def _ds(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(x, y)


def test_tensordataset_indexing_and_errors():
    ds = _ds(5)
    assert len(ds) == 5
    x, y = ds[2]
    np.testing.assert_array_equal(x, [6, 7, 8]) and y == 2
    with pytest.raises(ValueError, match=r"\(5, 3\), \(4,\)"):
        TensorDataset(np.zeros((5, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


@pytest.mark.parametrize(
    "n,bs,drop_last", [(10, 3, False), (10, 3, True), (10, 5, False), (10, 5, True), (2, 4, False), (2, 4, True)]
)
def test_batching_sizes_and_len(n, bs, drop_last):
    dl = DataLoader(_ds(n), batch_size=bs, drop_last=drop_last)
    batches = list(dl)
    sizes = [len(b[1]) for b in batches]
    expected = [bs] * (n // bs) + ([] if drop_last or n % bs == 0 else [n % bs])
    assert sizes == expected and len(dl) == len(expected)
    if not drop_last:  # unshuffled: samples in order, nothing lost
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(n))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], 3 * yb)  # x and y stay aligned
        assert xb.dtype == np.float32 and yb.dtype == np.int64


def test_shuffle_covers_every_sample_once_per_epoch_and_changes_order():
    dl = DataLoader(_ds(50), batch_size=7, shuffle=True, generator=3)
    orders = []
    for _ in range(3):
        ys = np.concatenate([yb for _, yb in dl])
        assert sorted(ys.tolist()) == list(range(50))
        orders.append(ys)
    assert not np.array_equal(orders[0], orders[1])  # a new permutation each epoch
    assert not np.array_equal(orders[0], np.arange(50))


def test_shuffle_reproducible_with_seed():
    def epochs(**kw):
        dl = DataLoader(_ds(30), batch_size=4, shuffle=True, **kw)
        return [np.concatenate([yb for _, yb in dl]) for _ in range(2)]

    a, b = epochs(seed=7), epochs(generator=np.random.default_rng(7))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = epochs(seed=8)
    assert not np.array_equal(a[0], c[0])


def test_shuffle_with_drop_last_drops_a_random_tail():
    dl = DataLoader(_ds(10), batch_size=4, shuffle=True, drop_last=True, seed=0)
    ys = np.concatenate([yb for _, yb in dl])
    assert len(ys) == 8 and len(set(ys.tolist())) == 8


def test_generic_dataset_is_collated():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i]), i % 2

    batches = list(DataLoader(Squares(), batch_size=2))
    assert len(batches) == 3
    np.testing.assert_array_equal(batches[1][0], [[2, 4], [3, 9]])
    np.testing.assert_array_equal(batches[1][1], [0, 1])
    single = list(DataLoader(Squares(), batch_size=None))
    assert len(single) == 5 and single[4][1] == 0


def test_dataloader_argument_errors():
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(_ds(), batch_size=0)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(_ds(), seed=1, generator=1)
    with pytest.raises(TypeError, match="generator must be"):
        DataLoader(_ds(), generator="abc")
    with pytest.raises(NotImplementedError):
        len(Dataset())


def test_random_split():
    parts = random_split(_ds(10), [7, 3], generator=0)
    idx = np.concatenate([[p[i][1] for i in range(len(p))] for p in parts])
    assert [len(p) for p in parts] == [7, 3] and sorted(idx.tolist()) == list(range(10))
    assert [len(p) for p in random_split(_ds(10), [0.5, 0.5], generator=0)] == [5, 5]
    with pytest.raises(ValueError, match="does not equal"):
        random_split(_ds(10), [3, 3])


# -- the shipped MNIST subset -------------------------------------------------------------------


def test_mnist_5k_shapes_dtypes_and_ranges():
    (xtr, ytr), (xte, yte) = load_mnist_5k()
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64 and yte.shape == (1000,)
    assert xtr.min() == 0.0 and xtr.max() == 1.0
    assert 0.08 < xtr.mean() < 0.2  # MNIST's mean intensity is about 0.13: real digits, not noise
    raw, _ = load_mnist_5k("test", normalize=False)
    assert raw.dtype == np.uint8 and raw.max() == 255
    np.testing.assert_array_equal(raw.astype(np.float32) / 255, xte)
    x64, _ = load_mnist_5k("train", dtype=np.float64)
    assert x64.dtype == np.float64
    np.testing.assert_allclose(x64, xtr, atol=1e-7)


def test_mnist_5k_split_is_stratified_disjoint_and_shuffled():
    (xtr, ytr), (xte, yte) = load_mnist_5k(normalize=False)
    np.testing.assert_array_equal(np.bincount(ytr, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(yte, minlength=10), [100] * 10)
    assert set(ytr.tolist()) == set(range(10))
    # not sorted by class: every window of 100 training labels holds several classes
    assert min(len(set(ytr[i : i + 100].tolist())) for i in range(0, 4000, 100)) >= 8
    # train and test hold different images
    tr = {x.tobytes() for x in xtr}
    assert not any(x.tobytes() in tr for x in xte)


def test_mnist_5k_deterministic_and_fresh_copies():
    x1, y1 = load_mnist_5k("train")
    x1[:] = -1
    y1[:] = -1
    x2, y2 = load_mnist_5k("train")
    x3, y3 = load_mnist_5k("train")
    assert x2.min() == 0.0 and y2.min() == 0
    np.testing.assert_array_equal(x2, x3)
    np.testing.assert_array_equal(y2, y3)


def test_mnist_5k_bad_arguments():
    with pytest.raises(ValueError, match="split must be None, 'train' or 'test'"):
        load_mnist_5k("validation")
    with pytest.raises(ValueError, match="float32 or float64"):
        load_mnist_5k("train", dtype=np.int32)
