"""Event times of a stream's slots: spread evenly over (now - span, now], mostly in order.

Slot i gets a time in its own 1/n share of the span, so the stream is in event-time order except for
late events (3 %, delayed by an exponential with a 4-minute mean, never before the span starts).
Most times are written in UTC with `Z`; about 1 in 8 carry a `+hh:mm` offset (the same instant).
Formatting is vectorised with numpy (about 0.3 µs per time).
"""

from __future__ import annotations

import numpy as np

LATE_SHARE = 0.03
LATE_MEAN_MS = 240_000
OFFSET_SHARE = 0.12
OFFSETS = ("+00:00", "+01:00", "+02:00", "+05:30", "+09:00")
_OFFSET_MINUTES = np.array([0, 60, 120, 330, 540], dtype=np.int64)


class StreamClock:
    """Timestamps for slots [start, stop) of an n-slot stream ending at `now_ms`."""

    def __init__(self, n_slots: int, now_ms: int, span_ms: int, rng: np.random.Generator) -> None:
        self.first_ms = now_ms - span_ms + 1
        self.step = (span_ms - 1) / max(n_slots, 1)
        self._rng = rng

    def block(self, start: int, stop: int) -> tuple[list[str], list[str]]:
        """(on-time, possibly-late) ISO-8601 times for each slot; equal where the slot is not late."""
        rng, size = self._rng, stop - start
        slots = np.arange(start, stop, dtype=np.float64) + rng.random(size)
        on_time = self.first_ms + (slots * self.step).astype(np.int64)
        late = rng.random(size) < LATE_SHARE
        delay = rng.exponential(LATE_MEAN_MS, size).astype(np.int64)
        maybe_late = np.where(late, np.maximum(on_time - delay, self.first_ms), on_time)
        offset = np.where(rng.random(size) < OFFSET_SHARE, rng.integers(0, len(OFFSETS), size), -1)
        return format_times(on_time, offset), format_times(maybe_late, offset)


def format_times(ms: np.ndarray, offset: np.ndarray) -> list[str]:
    """ISO-8601 text of epoch-ms times; offset[i] = -1 writes `Z`, else the local time at OFFSETS[i]."""
    shift = np.where(offset >= 0, _OFFSET_MINUTES[offset], 0) * 60_000
    text = np.datetime_as_string((ms + shift).astype("datetime64[ms]"), unit="ms").tolist()
    suffix = ["Z" if k < 0 else OFFSETS[k] for k in offset.tolist()]
    return [t + s for t, s in zip(text, suffix, strict=True)]
