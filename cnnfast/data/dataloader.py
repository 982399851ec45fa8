"""``DataLoader``: mini-batches over a dataset, optionally shuffled, reproducibly with a seed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numbers

import numpy as np

from .dataset import TensorDataset, _rng

if TYPE_CHECKING:
    from .._typing import Array
    from .dataset import Dataset
    from .sampler import Sampler

__all__ = ["DataLoader", "default_collate"]


def default_collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch: tuples are collated field by field, arrays stacked."""
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, list):
        return [default_collate([s[i] for s in samples]) for i in range(len(first))]
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    return np.stack([np.asarray(s) for s in samples])


class DataLoader:
    """Iterate over ``dataset`` in mini-batches of ``batch_size`` samples.

    Parameters follow ``torch.utils.data.DataLoader``: ``batch_size`` (None yields single
    samples), ``shuffle`` (a new permutation every epoch, i.e. every ``iter()``), ``drop_last``
    (drop the final incomplete batch), ``collate_fn`` and ``generator`` (a
    ``numpy.random.Generator`` or an int seed; with the same seed two loaders yield the same batch
    order, epoch after epoch). ``seed=`` is accepted as a synonym for an int ``generator``.
    ``sampler`` (e.g. a :class:`~cnnfast.data.DistributedSampler`) gives the indices to visit
    instead; it excludes ``shuffle``.

    Batches are tuples of ndarrays for a ``TensorDataset`` (gathered with one fancy-indexing call
    per array, no per-sample Python loop); other datasets are indexed sample by sample and
    collated with ``collate_fn`` (``default_collate`` stacks them).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = 1,
        shuffle: bool = False,
        sampler: Sampler | None = None,
        *,
        drop_last: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        generator: int | np.random.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if batch_size is not None and (
            not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size <= 0
        ):
            raise ValueError(
                f"DataLoader: batch_size should be a positive integer value or None, but got batch_size={batch_size!r}"
            )
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: pass either generator= or seed=, not both")
        if batch_size is None and drop_last:
            raise ValueError(
                "DataLoader: batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
            )
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.generator = _rng(seed if seed is not None else generator)

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _indices(self) -> Array:
        if self.sampler is not None:
            indices = getattr(self.sampler, "indices", None)
            return indices() if indices is not None else np.fromiter(iter(self.sampler), dtype=np.int64)
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self) -> Iterator[Any]:
        order = self._indices()
        if self.batch_size is None:
            for i in order:
                yield self.dataset[int(i)]
            return
        n, bs = len(order), self.batch_size
        stop = (n // bs) * bs if self.drop_last else n
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is None
        for start in range(0, stop, bs):
            idx = order[start : start + bs]
            if fast:
                yield self.dataset[idx]
            else:
                collate = self.collate_fn or default_collate
                yield collate([self.dataset[int(i)] for i in idx])

    def __repr__(self) -> str:
        return (
            f"DataLoader(dataset={type(self.dataset).__name__}(len={len(self.dataset)}), batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})"
        )
