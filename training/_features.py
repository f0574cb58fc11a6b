"""Features of a journey for the conversion model, vectorised over CSR journeys (no Python loop per journey).

Per journey: presence and touch count of each channel, length, first and last channel (categorical;
code C = none), span (hours from the first to the last touchpoint) and recency (hours between the last
two touchpoints). Recency is measured inside the journey, not to its end: a non-converting journey has
no end event, and measuring to the data's end would make the feature tell the label apart by itself.
"""

from __future__ import annotations

import numpy as np

_HOUR_MS = 3_600_000.0


def feature_names(channels: tuple[str, ...]) -> list[str]:
    return ([f"has_{c}" for c in channels] + [f"n_{c}" for c in channels]
            + ["length", "first_channel", "last_channel", "span_h", "recency_h"])


def categorical_features() -> list[str]:
    return ["first_channel", "last_channel"]


def journey_features(codes: np.ndarray, ts_ms: np.ndarray, starts: np.ndarray, n_channels: int) -> np.ndarray:
    """float32[J, 2C + 5] for journeys whose touchpoints (channel codes 0..C-1, times) are CSR by `starts`."""
    n = len(starts) - 1
    lengths = np.diff(starts)
    journey_of = np.repeat(np.arange(n), lengths)
    counts = np.bincount(journey_of * n_channels + codes, minlength=n * n_channels).reshape(n, n_channels)
    out = np.empty((n, 2 * n_channels + 5), np.float32)
    out[:, :n_channels] = counts > 0
    out[:, n_channels:2 * n_channels] = counts
    some = lengths > 0
    first = np.where(some, starts[:-1], 0)
    last = np.where(some, starts[1:] - 1, 0)
    before = np.where(lengths > 1, starts[1:] - 2, last)
    safe_codes = codes if len(codes) else np.zeros(1, np.int64)
    safe_ts = ts_ms if len(ts_ms) else np.zeros(1, np.int64)
    base = 2 * n_channels
    out[:, base] = lengths
    out[:, base + 1] = np.where(some, safe_codes[first], n_channels)
    out[:, base + 2] = np.where(some, safe_codes[last], n_channels)
    out[:, base + 3] = np.where(some, (safe_ts[last] - safe_ts[first]) / _HOUR_MS, 0.0)
    out[:, base + 4] = np.where(some, (safe_ts[last] - safe_ts[before]) / _HOUR_MS, 0.0)
    return out


def channel_codes(channels: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Codes of channel names in `vocabulary` (every name must be in it)."""
    index = {c: i for i, c in enumerate(vocabulary)}
    return np.fromiter(map(index.__getitem__, channels.tolist()), np.int64, len(channels))
