"""Samplers: which dataset indices a ``DataLoader`` visits, in which order (``torch.utils.data`` names)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numbers

import numpy as np

if TYPE_CHECKING:
    from .._typing import Array
    from .dataset import Dataset

__all__ = ["Sampler", "DistributedSampler"]


class Sampler:
    """An iterable of dataset indices with a length; pass one as ``DataLoader(sampler=...)``."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


def _check_int(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"DistributedSampler: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class DistributedSampler(Sampler):
    """This rank's shard of a dataset, for data-parallel training (``torch.utils.data.DistributedSampler``).

    Every epoch the ``len(dataset)`` indices are put in one order, the same on every rank (with
    ``shuffle``: the permutation that ``DataLoader(shuffle=True, seed=seed)`` visits in that
    epoch; call :meth:`set_epoch` before each epoch, as in PyTorch, or every epoch repeats epoch 0's
    order). Without ``drop_last`` the order is padded with its own first indices to a multiple of
    ``num_replicas``; with it, the tail is dropped. Rank ``r`` takes positions ``r, r + R, r + 2R``
    ... (``R = num_replicas``), so all shards have the same length, and with a per-rank batch size
    ``b`` the ranks' ``k``-th batches together are exactly the ``k``-th batch of ``R * b`` indices of
    the single-process order.

    ``num_replicas`` and ``rank`` default to :func:`cnnfast.distributed.get_world_size` and
    :func:`~cnnfast.distributed.get_rank` (MPI).
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            from cnnfast import distributed

            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        self.num_replicas = _check_int("num_replicas", num_replicas, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.num_replicas:
            raise ValueError(
                f"DistributedSampler: invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.seed = _check_int("seed", seed, 0)
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self._rng: np.random.Generator | None
        self._perm: Array | None
        self._rng, self._rng_epoch, self._perm = None, -1, None

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order on the next iteration (call it with the same value on every rank)."""
        self.epoch = _check_int("epoch", epoch, 0)

    def _order(self) -> Array:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        if self._rng is None or self.epoch < self._rng_epoch:
            self._rng, self._rng_epoch = np.random.default_rng(self.seed), -1
        while self._rng_epoch < self.epoch:  # DataLoader(seed=...) draws one permutation per epoch
            self._perm = self._rng.permutation(n)
            self._rng_epoch += 1
        return self._perm  # type: ignore[return-value]  # drawn: _rng_epoch >= 0 here

    def indices(self) -> Array:
        """This rank's indices for the current epoch, as an int64 array."""
        order = self._order()
        if self.total_size > len(order):  # pad with the order's own head (repeated if needed)
            reps = -(-self.total_size // max(len(order), 1))
            order = np.tile(order, reps)
        order = order[: self.total_size]
        return np.ascontiguousarray(order[self.rank :: self.num_replicas], dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(len(dataset)={len(self.dataset)}, num_replicas={self.num_replicas}, "
            f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})"
        )
