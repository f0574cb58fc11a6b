"""Conversions and their touchpoints in CSR layout, and the rule-based models credited over them per channel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mkt_ray.attribution._paths import ChannelPath

DIRECT = "(direct)"  # the channel of a conversion with no touchpoint in its lookback window
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Touches:
    """Conversion c owns touchpoints starts[c]:starts[c+1], ordered by timestamp, then processing order.

    A conversion without touchpoints owns one touchpoint of channel `(direct)` at its own time, so every
    model credits it wholly there (the contract's rule) without a special case.
    """

    channels: tuple[str, ...]  # channel code -> name
    channel_codes: np.ndarray  # int64[T]
    touch_ts_ms: np.ndarray  # int64[T]
    starts: np.ndarray  # int64[C + 1]
    conv_ts_ms: np.ndarray  # int64[C]
    conversions: np.ndarray  # float64[C]
    revenue: np.ndarray  # float64[C]
    timed: bool  # False for path files: no timestamps, so no time_decay

    @classmethod
    def from_journeys(cls, journeys: Iterable[tuple[list[tuple[str, int]], int, float, float]], timed: bool) -> Touches:
        """From (touchpoints as (channel, ts_ms), conversion ts_ms, conversions, revenue) per conversion."""
        codes: dict[str, int] = {}
        channel_codes: list[int] = []
        touch_ts: list[int] = []
        starts = [0]
        conv_ts: list[int] = []
        conversions: list[float] = []
        revenue: list[float] = []
        for touchpoints, ts_ms, count, value in journeys:
            for channel, touch_ms in touchpoints or [(DIRECT, ts_ms)]:
                channel_codes.append(codes.setdefault(channel, len(codes)))
                touch_ts.append(touch_ms)
            starts.append(len(channel_codes))
            conv_ts.append(ts_ms)
            conversions.append(count)
            revenue.append(value)
        return cls(tuple(codes), np.asarray(channel_codes, np.int64), np.asarray(touch_ts, np.int64),
                   np.asarray(starts, np.int64), np.asarray(conv_ts, np.int64),
                   np.asarray(conversions, np.float64), np.asarray(revenue, np.float64), timed)

    @classmethod
    def from_paths(cls, paths: Iterable[ChannelPath]) -> Touches:
        """Each converting path (or path with value) as one conversion with the path's totals."""
        return cls.from_journeys(
            (([(channel, 0) for channel in path.channels], 0, path.conversions, path.value)
             for path in paths if path.conversions > 0 or path.value > 0),
            timed=False,
        )


def rule_attribution(touches: Touches, model: str, half_life_days: float = 7.0, first_share: float = 0.4,
                     last_share: float = 0.4) -> dict[str, dict[str, float]]:
    """{channel: {"conversions", "revenue"}} under one rule-based model (kernels.attribution.RULE_MODELS)."""
    from mkt_ray.kernels import model_code, rule_credits  # numba: imported only when a rule model runs

    _, conversion_credit, revenue_credit = rule_credits(
        model_code(model), touches.starts, touches.touch_ts_ms, touches.conv_ts_ms, touches.conversions,
        touches.revenue, half_life_days * DAY_MS, first_share, last_share,
    )
    size = len(touches.channels)
    conversions = np.bincount(touches.channel_codes, weights=conversion_credit, minlength=size)
    revenue = np.bincount(touches.channel_codes, weights=revenue_credit, minlength=size)
    return {
        channel: {"conversions": float(conversions[code]), "revenue": float(revenue[code])}
        for code, channel in enumerate(touches.channels)
    }
