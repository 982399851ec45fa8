"""``Dropout``."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from .. import functional as F
from .module import Module

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor, Generator

__all__ = ["Dropout"]


class Dropout(Module):
    """In training mode zero each element with probability ``p`` and scale the rest by 1/(1-p);
    the identity in eval mode. ``generator`` (numpy Generator or int seed) fixes the masks; by
    default the generator seeded by ``cnnfast.manual_seed`` is used."""

    p: float
    inplace: bool
    generator: np.random.Generator | None

    def __init__(self, p: float = 0.5, inplace: bool = False, generator: Generator = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: probability has to be between 0 and 1, but got {p!r}")
        from .._random import _get_generator

        self.p = p
        self.inplace = bool(inplace)
        self.generator = None if generator is None else _get_generator(generator, "Dropout")

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return F.dropout(input, self.p, self.training, self.inplace, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
