"""Closing windows: final totals, signals, data-quality signals and threshold alerts.

A window [start, start + size) of a tenant closes once its partition's watermark (highest valid event
time) minus the tenant's allowed lateness reaches start + size. Closing reads the window's totals from
the warehouse, where every applied batch already is, so it needs no state but a horizon per tenant and
window kind: every window ending at or before the horizon has been closed. A late event still adds to
its stored window; it never reopens it.

Signals and alerts are keyed by the window (and rule): their tables keep one row per key, so a close
pass repeated after a crash changes nothing there; the topics may carry a repeat, with the same key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mkt_ray.kernels import WINDOW_KINDS, derived_kpis
from mkt_ray.pipeline._tables import KPI, KPI_AMOUNTS, KPI_COUNTS
from mkt_ray.settings import AlertThresholds

WINDOW_SIZES = {name: size for name, size, _ in WINDOW_KINDS}
DERIVED = ("ctr", "cvr", "cpa", "roas")

SIGNAL_SCHEMA = pa.schema(
    [("kind", pa.string()), ("rule", pa.string()), ("tenant_id", pa.string()), ("window", pa.string()),
     ("campaign_id", pa.string()), ("source", pa.string()), ("window_start_ms", pa.int64()),
     ("window_end_ms", pa.int64()), *[(n, pa.int64()) for n in KPI_COUNTS], *[(n, pa.float64()) for n in KPI_AMOUNTS],
     *[(n, pa.float64()) for n in DERIVED], ("closed_ms", pa.int64())]
)
ALERT_SCHEMA = pa.schema(
    [("rule", pa.string()), ("tenant_id", pa.string()), ("window", pa.string()), ("campaign_id", pa.string()),
     ("source", pa.string()), ("window_start_ms", pa.int64()), ("window_end_ms", pa.int64()), ("value", pa.float64()),
     ("threshold", pa.float64()), ("impressions", pa.int64()), ("closed_ms", pa.int64())]
)


@dataclass(frozen=True)
class ClosedWindow:
    tenant_id: str
    window: str
    campaign_id: str
    source: str
    window_start_ms: int
    totals: dict[str, float]  # events, impressions, clicks, conversions, cost, revenue, ctr, cvr, cpa, roas

    @property
    def window_end_ms(self) -> int:
        return self.window_start_ms + WINDOW_SIZES[self.window]

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/{self.window}/{self.campaign_id}/{self.source}/{self.window_start_ms}"


def closing_query(database: str, spans: Sequence[tuple[str, str, int, int]]) -> tuple[str, dict]:
    """One SQL query (and its parameters) for the totals of the windows that close now.

    `spans` holds (tenant, window kind, after_ms, through_ms): that tenant's windows of that kind whose
    end lies in (after, through]. Rows come back as (tenant, window, campaign, source, start, sums...).
    """
    sums = ", ".join(f"sum({name})" for name in (*KPI_COUNTS, *KPI_AMOUNTS))
    params: dict = {}
    conditions = []
    for i, (tenant, window, after, through) in enumerate(spans):
        params.update({f"t{i}": tenant, f"w{i}": window, f"s{i}": WINDOW_SIZES[window], f"a{i}": after, f"b{i}": through})
        conditions.append(
            f"(tenant_id = {{t{i}:String}} AND window = {{w{i}:String}} AND window_start_ms + {{s{i}:Int64}} > {{a{i}:Int64}}"
            f" AND window_start_ms + {{s{i}:Int64}} <= {{b{i}:Int64}})"
        )
    sql = (
        f"SELECT tenant_id, window, campaign_id, source, window_start_ms, {sums} FROM {database}.{KPI} "
        f"WHERE {' OR '.join(conditions)} GROUP BY tenant_id, window, campaign_id, source, window_start_ms "
        "ORDER BY tenant_id, window, window_start_ms, campaign_id, source"
    )
    return sql, params


def closed_windows(rows: Sequence[tuple]) -> list[ClosedWindow]:
    """ClosedWindow objects, with derived KPIs (NaN where a denominator is 0), from `closing_query` rows."""
    if not rows:
        return []
    names = (*KPI_COUNTS, *KPI_AMOUNTS)
    values = {name: np.array([row[5 + j] for row in rows], np.float64) for j, name in enumerate(names)}
    derived = dict(zip(DERIVED, derived_kpis(values["impressions"], values["clicks"], values["conversions"],
                                             values["cost"], values["revenue"]), strict=True))
    out = []
    for i, row in enumerate(rows):
        totals = {name: (int(row[5 + j]) if name in KPI_COUNTS else float(row[5 + j])) for j, name in enumerate(names)}
        totals.update({name: float(derived[name][i]) for name in DERIVED})
        out.append(ClosedWindow(row[0], row[1], row[2], row[3], int(row[4]), totals))
    return out


_RULES = (  # rule, threshold field, derived value, breach when value is below (True) or above (False)
    ("ctr_below", "ctr", True),
    ("cvr_below", "cvr", True),
    ("roas_below", "roas", True),
    ("cpa_above", "cpa", False),
    ("spend_above", "cost", False),
)


def breaches(window: ClosedWindow, thresholds: AlertThresholds) -> list[tuple[str, float, float]]:
    """The (rule, value, threshold) a closed window breaches; ratios need `min_impressions` impressions."""
    if window.window != thresholds.window:
        return []
    found = []
    for rule, metric, below in _RULES:
        limit = getattr(thresholds, rule)
        value = window.totals[metric]
        if limit is None or math.isnan(value):
            continue
        if metric != "cost" and window.totals["impressions"] < thresholds.min_impressions:
            continue
        if (value < limit) if below else (value > limit):
            found.append((rule, value, float(limit)))
    return found


def quality_violations(window: ClosedWindow) -> list[str]:
    """Ratio rules on a closed window's totals (events may each be fine while the window is not)."""
    t = window.totals
    rules = []
    if t["clicks"] > t["impressions"]:
        rules.append("clicks_exceed_impressions")
    if t["conversions"] > t["clicks"]:
        rules.append("conversions_exceed_clicks")
    return rules


def signal_table(windows: Iterable[ClosedWindow], closed_ms: int) -> pa.Table:
    """One `window` signal per closed window plus one `quality` signal per ratio violation."""
    rows = []
    for w in windows:
        base = {"tenant_id": w.tenant_id, "window": w.window, "campaign_id": w.campaign_id, "source": w.source,
                "window_start_ms": w.window_start_ms, "window_end_ms": w.window_end_ms, **w.totals, "closed_ms": closed_ms}
        rows.append({"kind": "window", "rule": "", **base})
        rows += [{"kind": "quality", "rule": rule, **base} for rule in quality_violations(w)]
    return pa.Table.from_pylist(rows, schema=SIGNAL_SCHEMA)


def alert_table(windows: Iterable[ClosedWindow], thresholds: AlertThresholds, closed_ms: int) -> pa.Table:
    rows = [
        {"rule": rule, "tenant_id": w.tenant_id, "window": w.window, "campaign_id": w.campaign_id, "source": w.source,
         "window_start_ms": w.window_start_ms, "window_end_ms": w.window_end_ms, "value": value, "threshold": limit,
         "impressions": w.totals["impressions"], "closed_ms": closed_ms}
        for w in windows for rule, value, limit in breaches(w, thresholds)
    ]
    return pa.Table.from_pylist(rows, schema=ALERT_SCHEMA)
