"""SLO alerts: event-to-KPI p99 above 5 s or attribution p99 above 30 s raises an alert.

`SloMonitor` keeps the latencies of the last `window_s` seconds and judges their p99 at most once per
`window_s` (one alert per rule per period, however many batches breach it). Alerts are rows of the
`alerts` table (rule `slo_*`, window `slo`, source = the ingest member, window_start_ms = the period):
the table keeps one row per key, so a retried write changes nothing. The clock is injectable for tests.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from mkt_ray.pipeline._closing import ALERT_SCHEMA
from mkt_ray.settings import SloSettings

RULES = {"kpi": "slo_event_to_kpi_p99", "attribution": "slo_attribution_p99"}


class SloMonitor:
    """p99 of recent latencies per SLO, judged once per period."""

    def __init__(self, slo: SloSettings, source: str, clock: Callable[[], float] = time.time) -> None:
        self._limits_ms = {"kpi": slo.event_to_kpi_p99_s * 1000, "attribution": slo.attribution_p99_s * 1000}
        self._window_ms = int(slo.window_s * 1000)
        self._source, self._clock = source, clock
        self._recent: dict[str, deque[tuple[int, np.ndarray]]] = {name: deque() for name in RULES}
        self._judged_at: dict[str, int] = {}

    def observe(self, kpi_ms: np.ndarray, attribution_ms: np.ndarray) -> pa.Table:
        """Add a batch's latencies; returns the alert rows due now (usually none)."""
        now = int(self._clock() * 1000)
        rows = []
        for name, values in (("kpi", kpi_ms), ("attribution", attribution_ms)):
            recent = self._recent[name]
            if len(values):
                recent.append((now, np.asarray(values, np.float64)))
            while recent and recent[0][0] <= now - self._window_ms:
                recent.popleft()
            period = now // self._window_ms * self._window_ms
            if not recent or self._judged_at.get(name) == period:
                continue
            p99 = float(np.percentile(np.concatenate([v for _, v in recent]), 99))
            if p99 > self._limits_ms[name]:
                self._judged_at[name] = period
                rows.append({"rule": RULES[name], "tenant_id": "", "window": "slo", "campaign_id": "",
                             "source": self._source, "window_start_ms": period,
                             "window_end_ms": period + self._window_ms, "value": p99,
                             "threshold": self._limits_ms[name], "impressions": 0, "closed_ms": now})
        return pa.Table.from_pylist(rows, schema=ALERT_SCHEMA)
