"""The outlier rule: a robust z-score of cost and revenue per tenant, campaign and event type.

Positive values are compared in log1p space against the median and MAD of the last accepted values of
the same key. Statistics are refreshed when the key's accepted count reaches `min_samples` and every
`refresh` accepted values after that, so a decision depends only on the order of events, never on batch
boundaries (a replay from a checkpoint decides the same way). In log space a lognormal spend with a
sigma of 0.6 stays within 8 robust sigmas with probability 1 - 1e-15: the rule is silent on ordinary
traffic and fires on values ~100x off the usual.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

_MAD_TO_SIGMA = 1.4826
_MIN_SCALE = 0.5  # log1p units: with a constant history, only ~50x jumps are outliers
_SMALL = 16  # up to this many values of one key in a batch, judge them one by one (numpy costs ~1 µs a call)

OutlierKey = tuple[str, str, str, str]  # tenant, campaign, event type, metric


@dataclass
class _KeyStats:
    recent: deque[float]
    accepted: int = 0
    median: float = 0.0
    scale: float = 0.0


@dataclass
class OutlierGuard:
    """Per-key history of log1p(value); picklable for checkpoints."""

    min_samples: int = 50
    threshold: float = 8.0
    history: int = 512
    refresh: int = 128
    stats: dict[OutlierKey, _KeyStats] = field(default_factory=dict)

    def judge(self, key: OutlierKey, values: np.ndarray) -> np.ndarray:
        """Outlier flags for one key's positive values (in stream order); records the accepted ones."""
        st = self.stats.get(key)
        if st is None:
            st = self.stats[key] = _KeyStats(recent=deque(maxlen=self.history))
        if len(values) <= _SMALL:
            return self._judge_each(st, values)
        logs = np.log1p(values)
        flags = np.zeros(len(logs), dtype=bool)
        start = 0
        while start < len(logs):
            if st.accepted < self.min_samples:  # still learning: accept up to the first refresh
                chunk = logs[start : start + self.min_samples - st.accepted]
                self._accept(st, chunk.tolist())
            else:  # statistics stay fixed until `refresh` more are accepted, so judge a whole chunk
                chunk = logs[start : start + self.refresh - st.accepted % self.refresh]
                bad = np.abs(chunk - st.median) > self.threshold * st.scale
                flags[start : start + len(chunk)] = bad
                self._accept(st, chunk[~bad].tolist())
            start += len(chunk)
        return flags

    def _judge_each(self, st: _KeyStats, values: np.ndarray) -> np.ndarray:
        """The same decisions one value at a time: cheaper than numpy for the few values a key gets per batch."""
        flags = []
        for value in values.tolist():
            log = math.log1p(value)
            bad = st.accepted >= self.min_samples and abs(log - st.median) > self.threshold * st.scale
            flags.append(bad)
            if not bad:
                self._accept(st, [log])
        return np.array(flags, dtype=bool)

    def _accept(self, st: _KeyStats, logs: list[float]) -> None:
        st.recent.extend(logs)
        st.accepted += len(logs)
        if len(logs) and (st.accepted == self.min_samples or (st.accepted > self.min_samples and st.accepted % self.refresh == 0)):
            values = np.fromiter(st.recent, dtype=np.float64, count=len(st.recent))
            st.median = float(np.median(values))
            st.scale = max(_MAD_TO_SIGMA * float(np.median(np.abs(values - st.median))), _MIN_SCALE)
