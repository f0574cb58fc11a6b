"""Scalar draws as plain Python numbers, refilled in blocks from one numpy Generator.

One call into a numpy Generator costs about 1 µs; the generator needs a few dozen scalar draws per
person, so it takes them from buffers of 64k values converted with `tolist()` (about 0.1 µs a draw).
The stream stays deterministic: buffers are refilled from the same Generator in a fixed order.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")
_BLOCK = 65_536


class DrawStream:
    """Uniform and standard-normal scalars drawn from `rng` in blocks.

    `uniform` and `normal` are the `__next__` of endless generators over the buffers (~40 ns a call).
    """

    __slots__ = ("uniform", "normal")

    def __init__(self, rng: np.random.Generator) -> None:
        self.uniform: Callable[[], float] = _endless(rng.random).__next__
        self.normal: Callable[[], float] = _endless(rng.standard_normal).__next__

    def chance(self, p: float) -> bool:
        return self.uniform() < p

    def below(self, n: int) -> int:
        return int(self.uniform() * n)

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.uniform() * len(items))]

    def weighted(self, cumulative: Sequence[float]) -> int:
        """An index drawn with the weights whose running sum (ending at 1) is `cumulative`."""
        return min(bisect_right(cumulative, self.uniform()), len(cumulative) - 1)

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * self.normal())

    def poisson(self, lam: float) -> int:
        """Knuth's inversion; fine for the small means used here (< 10)."""
        limit, k, p = math.exp(-lam), 0, self.uniform()
        while p > limit:
            k += 1
            p *= self.uniform()
        return k


def _endless(fill: Callable[[int], np.ndarray]) -> Iterator[float]:
    while True:
        yield from fill(_BLOCK).tolist()


def cumulative(weights: Sequence[float]) -> list[float]:
    """Running sums of `weights` normalised to end at exactly 1.0."""
    total = float(sum(weights))
    running, out = 0.0, []
    for w in weights:
        running += w
        out.append(running / total)
    out[-1] = 1.0
    return out
