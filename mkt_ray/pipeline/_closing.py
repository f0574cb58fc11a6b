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

from collections.abc import Sequence

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
WINDOW_SCHEMA = pa.schema(  # a closed window: its key, span and final totals
    [("tenant_id", pa.string()), ("window", pa.string()), ("campaign_id", pa.string()), ("source", pa.string()),
     ("window_start_ms", pa.int64()), ("window_end_ms", pa.int64()), *[(n, pa.int64()) for n in KPI_COUNTS],
     *[(n, pa.float64()) for n in KPI_AMOUNTS], *[(n, pa.float64()) for n in DERIVED]]
)
ALERT_SCHEMA = pa.schema(
    [("rule", pa.string()), ("tenant_id", pa.string()), ("window", pa.string()), ("campaign_id", pa.string()),
     ("source", pa.string()), ("window_start_ms", pa.int64()), ("window_end_ms", pa.int64()), ("value", pa.float64()),
     ("threshold", pa.float64()), ("impressions", pa.int64()), ("closed_ms", pa.int64())]
)


def closing_query(database: str, spans: Sequence[tuple[str, str, int, int]]) -> tuple[str, dict]:
    """One SQL query (and its parameters) for the totals of the windows that close now.

    `spans` holds (tenant, window kind, after_ms, through_ms): that tenant's windows of that kind whose
    end lies in (after, through]. Rows come back as (tenant, window, campaign, source, start, sums...).
    """
    sums = ", ".join(f"sum({name})" for name in (*KPI_COUNTS, *KPI_AMOUNTS))
    params: dict = {}
    conditions = []
    for i, (tenant, window, after, through) in enumerate(spans):
        # end in (after, through] as bounds on the sort key's start column itself: the primary index
        # prunes by them (12.5 against 17 CPU ms a pass over 600k events' rows than bounds on start + size)
        size = WINDOW_SIZES[window]
        params.update({f"t{i}": tenant, f"w{i}": window, f"a{i}": after - size, f"b{i}": through - size})
        conditions.append(
            f"(tenant_id = {{t{i}:String}} AND window = {{w{i}:String}} AND window_start_ms > {{a{i}:Int64}}"
            f" AND window_start_ms <= {{b{i}:Int64}})"
        )
    sql = (
        f"SELECT tenant_id, window, campaign_id, source, window_start_ms, {sums} FROM {database}.{KPI} "
        f"WHERE {' OR '.join(conditions)} GROUP BY tenant_id, window, campaign_id, source, window_start_ms "
        "ORDER BY tenant_id, window, window_start_ms, campaign_id, source "
        # one thread: a pass reads a few thousand windows, less than it costs to start more (17.6-18.7 against
        # 20.5-26.4 CPU ms a pass on chDB over a benchmark run's KPI rows, 4 runs each)
        "SETTINGS max_threads = 1"
    )
    return sql, params


def closed_windows(result: pa.Table) -> pa.Table:
    """The closed windows as columns (WINDOW_SCHEMA), with derived KPIs (NaN where a denominator is 0),
    from the Arrow result of `closing_query` (columns by position), in its order.

    Column-wise and in Arrow end to end: a pass closes thousands of windows (every campaign and source of
    a tenant, per window kind); a Python object per window cost ~17 µs, Python values per column ~1 µs."""
    if result.num_rows == 0:
        return WINDOW_SCHEMA.empty_table()
    columns = [column.combine_chunks() for column in result.columns]
    tenant, window, campaign, source = (column.cast(pa.string()) for column in columns[:4])  # text, on either backend
    starts = _numbers(columns[4], np.int64)
    counts = {name: _numbers(columns[5 + j], np.int64) for j, name in enumerate(KPI_COUNTS)}
    amounts = {name: _numbers(columns[5 + len(KPI_COUNTS) + j], np.float64) for j, name in enumerate(KPI_AMOUNTS)}
    derived = derived_kpis(counts["impressions"], counts["clicks"], counts["conversions"], amounts["cost"],
                           amounts["revenue"])
    kinds = window.dictionary_encode()
    sizes = np.array([WINDOW_SIZES[name] for name in kinds.dictionary.to_pylist()], np.int64)[kinds.indices.to_numpy()]
    return pa.Table.from_arrays(
        [tenant, window, campaign, source, starts, starts + sizes, *counts.values(), *amounts.values(), *derived],
        schema=WINDOW_SCHEMA,
    )


def _numbers(column: pa.Array, dtype: type) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype)


_RULES = (  # rule, compared column, breach when value is below (True) or above (False)
    ("ctr_below", "ctr", True),
    ("cvr_below", "cvr", True),
    ("roas_below", "roas", True),
    ("cpa_above", "cpa", False),
    ("spend_above", "cost", False),
)
_QUALITY = (  # ratio rules on a closed window's totals (events may each be fine while the window is not)
    ("clicks_exceed_impressions", "clicks", "impressions"),
    ("conversions_exceed_clicks", "conversions", "clicks"),
)
_WINDOW_COLUMNS = ("tenant_id", "window", "campaign_id", "source", "window_start_ms", "window_end_ms")


def _labels(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(names, pa.string())).cast(pa.string())


def signal_table(windows: pa.Table, closed_ms: int) -> pa.Table:
    """One `window` signal per closed window plus one `quality` signal per ratio violation, each window's
    quality signals right after its window signal."""
    picks, kinds = [np.arange(windows.num_rows)], [np.zeros(windows.num_rows, np.int8)]
    for code, (_, over, under) in enumerate(_QUALITY, start=1):
        rows = np.flatnonzero(windows[over].to_numpy() > windows[under].to_numpy())
        picks.append(rows)
        kinds.append(np.full(len(rows), code, np.int8))
    pick, kind = np.concatenate(picks), np.concatenate(kinds)
    order = np.lexsort((kind, pick))
    pick, kind = pick[order], kind[order]
    body = windows.take(pick)
    kind_names = ["window", *["quality"] * len(_QUALITY)]
    rule_names = ["", *(rule for rule, _, _ in _QUALITY)]
    return pa.Table.from_arrays(
        [_labels(kind, kind_names), _labels(kind, rule_names), *(body[name] for name in SIGNAL_SCHEMA.names[2:-1]),
         pa.array(np.full(len(pick), closed_ms, np.int64))],
        schema=SIGNAL_SCHEMA,
    )


def alert_table(windows: pa.Table, thresholds: AlertThresholds, closed_ms: int) -> pa.Table:
    """The threshold breaches of closed windows of the judged kind, one row per (window, rule), in window
    order, then rule order; ratios need `min_impressions` impressions, and a NaN ratio breaches nothing."""
    judged = (windows["window"].to_numpy(zero_copy_only=False) == thresholds.window) if windows.num_rows else np.zeros(0, bool)
    thick = windows["impressions"].to_numpy() >= thresholds.min_impressions
    picks, rules, values, limits = [], [], [], []
    for code, (rule, column, below) in enumerate(_RULES):
        limit = getattr(thresholds, rule)
        if limit is None:
            continue
        value = windows[column].to_numpy()
        candidate = judged & ~np.isnan(value) & (thick if column != "cost" else True)
        rows = np.flatnonzero(candidate & ((value < limit) if below else (value > limit)))
        picks.append(rows)
        rules.append(np.full(len(rows), code, np.int8))
        values.append(value[rows])
        limits.append(np.full(len(rows), float(limit)))
    if not picks:
        return ALERT_SCHEMA.empty_table()
    pick, rule = np.concatenate(picks), np.concatenate(rules)
    order = np.lexsort((rule, pick))
    body = windows.take(pick[order])
    return pa.Table.from_arrays(
        [_labels(rule[order], [name for name, _, _ in _RULES]), *(body[name] for name in _WINDOW_COLUMNS),
         np.concatenate(values)[order], np.concatenate(limits)[order], body["impressions"],
         pa.array(np.full(len(pick), closed_ms, np.int64))],
        schema=ALERT_SCHEMA,
    )
