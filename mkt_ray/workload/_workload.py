"""The public face of the generator: a `Workload` streams its lines once and knows its ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from mkt_ray.errors import MktRayError
from mkt_ray.workload._engine import StreamEngine
from mkt_ray.workload._spec import WorkloadSpec
from mkt_ray.workload._truth import TruthCounter

BATCH = 4096


class Workload(Iterator[bytes]):
    """A deterministic synthetic stream of raw messages and the ground truth counted while it streams.

    Iterate it (or `lines()`, `batches()` for lists of lines, `labelled_batches()` for lists of lines
    with the expected outcome of each) exactly once; `truth` is the ground truth of the lines produced
    so far and is final once `complete` is true.
    """

    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self._counter = TruthCounter(list(spec.tenants))
        self._claimed = False
        self._lines: Iterator[bytes] | None = None

    def __next__(self) -> bytes:
        if self._lines is None:
            self._lines = self.lines()
        return next(self._lines)

    def lines(self) -> Iterator[bytes]:
        """Every message, in stream order (JSON bytes without a trailing newline)."""
        for batch in self.batches():
            yield from batch

    def batches(self, size: int = BATCH) -> Iterator[list[bytes]]:
        """The messages in lists of `size` (the last one shorter): cheaper than one at a time."""
        for lines, _ in self.labelled_batches(size):
            yield lines

    def labelled_batches(self, size: int = BATCH) -> Iterator[tuple[list[bytes], list[str]]]:
        """(lines, outcomes): the outcome of each line is "valid", "duplicate" or its reason code."""
        if self._claimed:
            raise MktRayError("a Workload streams once; call generate_workload again for a second pass")
        self._claimed = True
        engine = StreamEngine(self.spec, self._counter)
        for start in range(0, self.spec.n_events, size):
            lines = engine.block(start, min(start + size, self.spec.n_events))
            yield lines, engine.outcomes

    @property
    def complete(self) -> bool:
        return self._counter.events == self.spec.n_events

    @property
    def truth(self) -> dict[str, Any]:
        truth = self._counter.to_dict(self.spec.seed, self.spec.now, self.spec.params())
        truth["complete"] = self.complete
        return truth


def generate_workload(
    n_events: int,
    tenants: list[str],
    seed: int,
    now: datetime,
    invalid_share: float = 0.03,
    duplicate_share: float = 0.01,
    span_hours: float = 6.0,
) -> Workload:
    """A workload of exactly `n_events` messages, identical for identical arguments.

    The result is an iterator of bytes; after it is exhausted, `.truth` holds the ground truth.
    """
    return Workload(WorkloadSpec(n_events, tuple(tenants), seed, now, invalid_share, duplicate_share, span_hours))
