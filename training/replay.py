"""Replay / backfill: rebuild a tenant's KPI windows and attribution credits from the raw store.

    python -m training.replay --input RAW_URI --tenant acme --since 2026-11-01 --until 2026-11-07

The raw store holds exactly the valid events the pipeline applied (per batch slice), so replaying
them through the pipeline's own functions (`enrich`, `kpi_window_rows`, `attribute_partition`)
reproduces the live results. Writes are idempotent:

- KPI windows: the windows starting within [since, until] are recomputed (events read up to an hour
  past `until`, so every such window is complete) and compared with the warehouse; what is missing
  is inserted, as rows outside the offset ledger (first/last offset -1), under a token derived from
  their content. Over a live pipeline's data, or a second time, nothing is missing and nothing is
  written; over a lost or partial warehouse it is exactly what is missing. A window holding more than
  the raw store (a forgotten person's events, erased from the raw files while KPI aggregates stay) is
  left as it is and counted in `kpi_windows_ahead`.
- Attribution credits: recomputed with each partition's engine over `lookback_days` of history
  before `since` and written with the live rows' keys (tenant, partition, offset, model, touch):
  the ReplacingMergeTree keeps one row per key, so a replayed credit replaces its equal.

Deleted persons stay deleted: events of identities tombstoned in the raw store (`load_tombstones`,
written by a right-to-be-forgotten request before the raw files are rewritten) are dropped first.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mkt_ray.contract import IDENTITY_FIELDS, EventColumns
from mkt_ray.errors import InputError, MktRayError
from mkt_ray.pipeline import (
    ATTRIBUTION,
    KPI,
    LEDGER_WINDOW,
    PartitionState,
    attribute_partition,
    enrich,
    kpi_window_rows,
)
from mkt_ray.pipeline._tables import KPI_AMOUNTS, KPI_COUNTS
from mkt_ray.rawstore import forgotten_rows, load_tombstones, raw_key, raw_store_exists, read_events
from mkt_ray.registry import PromotedModels
from mkt_ray.settings import Settings, TenantConfig
from mkt_ray.warehouse import Warehouse
from training._jobs import DAY_MS, day_ms, job_settings, job_warehouse, parse_day, print_json, run_job, say

HOUR_MS = 3_600_000
_METRICS = (*KPI_COUNTS, *KPI_AMOUNTS)
_KEY = ("window", "campaign_id", "source", "window_start_ms", "partition")


def replay(settings: Settings, warehouse: Warehouse, raw_uri: str, tenant: str, since: date, until: date) -> dict[str, Any]:
    """Rebuild `tenant`'s KPI windows and credits for since..until (UTC days, inclusive); a summary."""
    if until < since:
        raise MktRayError(f"--until {until} is before --since {since}")
    db = settings.warehouse.database
    config = settings.tenants.get(tenant) or TenantConfig()
    start, end = day_ms(since), day_ms(until) + DAY_MS
    history = start - round(config.lookback_days * DAY_MS)
    events = read_events(raw_uri, tenant, history, end + HOUR_MS, raw_key(settings.raw_store))
    say(f"replaying {len(events):,} archived events of {tenant} ({since} .. {until}, history from "
        f"{since - timedelta(days=config.lookback_days)})")
    forgotten = forgotten_rows(events["tenant_id"], {f: events[f] for f in IDENTITY_FIELDS}, load_tombstones(raw_uri))
    kept = enrich(events.take(~forgotten), settings.tenants, settings.currency).events
    kpi = _backfill_kpis(warehouse, db, tenant, kept, start, end)
    credits = _replay_credits(warehouse, settings, kept, start, end)
    return {"tenant": tenant, "since": since.isoformat(), "until": until.isoformat(), "events_read": len(events),
            "events_forgotten": int(forgotten.sum()), **kpi, "credit_rows_written": credits,
            "totals": replay_totals(warehouse, db, tenant, start, end)}


def _backfill_kpis(warehouse: Warehouse, db: str, tenant: str, events: EventColumns, start: int, end: int) -> dict:
    in_range = events.take((events["ts_ms"] >= start) & (events["ts_ms"] < end + HOUR_MS))
    ranges = {int(p): (-1, -1) for p in np.unique(in_range["partition"]).tolist()}
    rows = kpi_window_rows(in_range, ranges, 0, ledger=False)
    rows = rows.filter(pc.and_(pc.greater_equal(rows["window_start_ms"], start), pc.less(rows["window_start_ms"], end)))
    wanted = _by_key(rows.to_pylist())
    stored = _by_key(dict(zip((*_KEY, *_METRICS), r, strict=True)) for r in warehouse.query_rows(
        f"SELECT {', '.join(_KEY)}, {', '.join(f'sum({m})' for m in _METRICS)} FROM {db}.{KPI} "
        f"WHERE tenant_id = {{t:String}} AND window != {{l:String}} AND window_start_ms >= {{a:Int64}} "
        f"AND window_start_ms < {{b:Int64}} GROUP BY {', '.join(_KEY)}", {"t": tenant, "l": LEDGER_WINDOW, "a": start, "b": end}))
    deltas, ahead = [], 0
    for key in sorted(wanted.keys() | stored.keys()):
        want, have = wanted.get(key, {}), stored.get(key, {})
        diff = {m: want.get(m, 0) - have.get(m, 0) for m in _METRICS}
        for m in KPI_AMOUNTS:  # sums of the same floats in another order: equal within rounding
            if math.isclose(want.get(m, 0.0), have.get(m, 0.0), rel_tol=1e-9, abs_tol=1e-9):
                diff[m] = 0.0
        if any(v < 0 for v in diff.values()):
            ahead += 1
        elif any(v != 0 for v in diff.values()):
            deltas.append({**dict(zip(_KEY, key, strict=True)), "tenant_id": tenant, **diff,
                           "first_offset": -1, "last_offset": -1, "applied_ms": 0})
    if deltas:
        table = pa.Table.from_pylist(deltas, schema=rows.schema)
        token = "replay-" + hashlib.sha256(repr(deltas).encode()).hexdigest()[:32]
        warehouse.insert_arrow(KPI, table, token)
    return {"kpi_windows_compared": len(wanted), "kpi_rows_inserted": len(deltas), "kpi_windows_ahead": ahead}


def _by_key(rows: Any) -> dict[tuple, dict[str, float]]:
    return {tuple(r[k] for k in _KEY): {m: r[m] for m in _METRICS} for r in rows}


def _replay_credits(warehouse: Warehouse, settings: Settings, events: EventColumns, start: int, end: int) -> int:
    """Credits as the live engines computed them, with the tenant's currently promoted fitted values
    (the live pipeline hot-reloads promotions, so a replay matches it for data after the promotion)."""
    models = PromotedModels(settings.registry_uri)
    tenants = sorted(set(events["tenant_id"].tolist()))
    models.refresh(tenants)
    written = 0
    for partition in np.unique(events["partition"]).tolist():
        mine = events.take(events["partition"] == partition)
        state = PartitionState()
        models.install(state.attribution, tenants, settings.tenants)
        rows = attribute_partition(state, mine, settings.tenants, -1)
        ts = rows["conversion_ts_ms"]
        rows = rows.filter(pc.and_(pc.greater_equal(ts, start), pc.less(ts, end)))
        if rows.num_rows:
            warehouse.insert_arrow(ATTRIBUTION, rows)
            written += rows.num_rows
    return written


def replay_totals(warehouse: Warehouse, db: str, tenant: str, start: int, end: int) -> dict[str, Any]:
    """The tenant's warehouse totals over the range: KPI sums (tumbling 1 m) and credits per model/channel."""
    kpi = warehouse.query_rows(
        f"SELECT {', '.join(f'sum({m})' for m in _METRICS)} FROM {db}.{KPI} WHERE tenant_id = {{t:String}} "
        "AND window = 'tumbling_1m' AND window_start_ms >= {a:Int64} AND window_start_ms < {b:Int64}",
        {"t": tenant, "a": start, "b": end})[0]
    credits = warehouse.query_rows(
        f"SELECT model, channel, sum(conversions_credit), sum(revenue_credit) FROM {db}.{ATTRIBUTION} FINAL "
        "WHERE tenant_id = {t:String} AND conversion_ts_ms >= {a:Int64} AND conversion_ts_ms < {b:Int64} "
        "GROUP BY model, channel ORDER BY model, channel", {"t": tenant, "a": start, "b": end})
    attribution: dict[str, dict[str, dict[str, float]]] = {}
    for model, channel, conversions, revenue in credits:
        attribution.setdefault(model, {})[channel] = {"conversions": float(conversions), "revenue": float(revenue)}
    return {"kpis": {m: (int(v or 0) if m in KPI_COUNTS else float(v or 0.0)) for m, v in zip(_METRICS, kpi, strict=True)},
            "attribution": attribution}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="raw store URI (folder or s3://)")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--since", required=True, help="first UTC day, YYYY-MM-DD")
    parser.add_argument("--until", help="last UTC day, YYYY-MM-DD (default: --since)")
    parser.add_argument("--config", type=Path, help="settings YAML (else MKT_ environment and defaults)")
    args = parser.parse_args(argv)
    return run_job(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    since = parse_day(args.since, "--since")
    until = parse_day(args.until, "--until") if args.until else since
    if not raw_store_exists(args.input):
        raise InputError(f"raw store {args.input} does not exist or is not a folder")
    settings = job_settings(args.config, [args.tenant])
    warehouse = job_warehouse(settings)
    try:
        print_json(replay(settings, warehouse, args.input, args.tenant, since, until))
    finally:
        warehouse.close()
    return 0

if __name__ == "__main__":
    raise SystemExit(main())

