"""Map-style datasets: ``Dataset`` (the protocol) and ``TensorDataset`` (aligned arrays)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .._typing import Array, ArrayLike, TensorLike

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split"]


class Dataset:
    """A map-style dataset: subclasses implement ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


def _as_array(a: Any) -> Array:
    data = getattr(a, "data", None)  # a cnnfast.Tensor (or anything wrapping .data as an ndarray)
    if isinstance(data, np.ndarray) and not isinstance(a, np.ndarray):
        return data
    return np.asarray(a)


class TensorDataset(Dataset):
    """Samples are tuples ``(arrays[0][i], arrays[1][i], ...)`` of arrays sharing their first dim.

    Accepts ndarrays (or anything ``np.asarray`` takes, or ``cnnfast.Tensor``); indexing with an
    integer array returns whole batches at once, which ``DataLoader`` uses as its fast path.
    """

    def __init__(self, *arrays: TensorLike) -> None:
        if not arrays:
            raise ValueError("TensorDataset: needs at least one array")
        tensors = tuple(_as_array(a) for a in arrays)
        for i, a in enumerate(tensors):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is a scalar; every array needs a first (sample) dimension")
        sizes = [a.shape[0] for a in tensors]
        if any(s != sizes[0] for s in sizes):
            shapes = ", ".join(str(a.shape) for a in tensors)
            raise ValueError(
                f"TensorDataset: size mismatch between arrays: first dimensions must be equal, got shapes {shapes}"
            )
        self.tensors = tensors  # PyTorch's attribute name

    def __getitem__(self, index: Any) -> tuple[Array, ...]:
        return tuple(a[index] for a in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: ArrayLike) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(
    dataset: Dataset, lengths: Sequence[float], generator: int | np.random.Generator | None = None
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping ``Subset``s of the given lengths (or fractions)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(f, float) and 0 <= f <= 1 for f in lengths) and abs(sum(lengths) - 1) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # distribute the remainder round-robin, as PyTorch does
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n or any(int(k) < 0 for k in lengths):
        raise ValueError(f"random_split: sum of lengths {lengths} does not equal the dataset length {n}")
    perm = _rng(generator).permutation(n)
    out: list[Subset] = []
    start: Any = 0  # an int: the lengths are ints by now
    for k in lengths:
        out.append(Subset(dataset, perm[start : start + k]))
        start += k
    return out


def _rng(generator: int | np.integer[Any] | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from None (fresh entropy), an int seed or a Generator."""
    if generator is None or isinstance(generator, (int, np.integer)):
        return np.random.default_rng(generator)
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator must be None, an int seed or a numpy.random.Generator, got {type(generator).__name__}")
