"""Late data: valid events applied after their 1-minute window had closed.

A tenant's windows close when its partition's watermark minus the allowed lateness passes their end
(`_closing.py`), and closing runs between batches, so an event is late exactly when its tumbling
1-minute window ended at or before (watermark before its batch - allowed lateness). It still adds to
its stored window; the count tells the daily quality report how much arrived too late for the
signals and alerts. Rows are keyed by the batch slice, so a replayed batch replaces its rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from mkt_ray.contract import EventColumns, factorize
from mkt_ray.settings import TenantConfig

MINUTE_MS = 60_000
LATE_SCHEMA = pa.schema([
    ("tenant_id", pa.string()), ("partition", pa.int32()), ("first_offset", pa.int64()),
    ("window_start_ms", pa.int64()), ("late_events", pa.int64()), ("max_delay_ms", pa.int64()),
    ("applied_ms", pa.int64()),
])


def late_rows(
    events: EventColumns,
    watermarks_before: Mapping[int, int | None],
    tenants: Mapping[str, TenantConfig],
    ranges: Mapping[int, tuple[int, int]],
    applied_ms: int,
) -> pa.Table:
    """Per (tenant, partition slice, minute window): how many of the batch's events came late, and by
    how much at most (ms past the window's closing point)."""
    if len(events) == 0:
        return LATE_SCHEMA.empty_table()
    partition = events["partition"].astype(np.int64)
    mark = np.full(len(events), np.iinfo(np.int64).min // 2)  # no watermark yet: nothing is late
    for p in np.unique(partition).tolist():  # per partition and per tenant, not per event
        if watermarks_before.get(p) is not None:
            mark[partition == p] = watermarks_before[p]
    lateness = _lateness_ms(events["tenant_id"], tenants)
    window_end = events["ts_ms"] // MINUTE_MS * MINUTE_MS + MINUTE_MS
    delay = (mark - lateness) - window_end
    late = delay >= 0
    if not late.any():
        return LATE_SCHEMA.empty_table()
    codes, keys = factorize(events["tenant_id"][late], partition[late], window_end[late] - MINUTE_MS)
    counts = np.bincount(codes)
    worst = np.zeros(len(keys), np.int64)
    np.maximum.at(worst, codes, delay[late])
    return pa.Table.from_pylist([
        {"tenant_id": t, "partition": p, "first_offset": ranges[p][0], "window_start_ms": w,
         "late_events": int(counts[i]), "max_delay_ms": int(worst[i]), "applied_ms": applied_ms}
        for i, (t, p, w) in enumerate(keys)
    ], schema=LATE_SCHEMA)


def _lateness_ms(tenant_ids: np.ndarray, tenants: Mapping[str, TenantConfig]) -> np.ndarray | int:
    """Each event's allowed lateness (ms): one number when every tenant has the same, as they usually do
    (told from the registry, without reading the batch), or when the batch's tenants share it; else one
    column comparison per tenant (not a dict lookup per event)."""
    default = TenantConfig()
    registry = {(cfg or default).allowed_lateness_ms for cfg in tenants.values()} | {default.allowed_lateness_ms}
    if len(registry) == 1:
        return registry.pop()
    names = dict.fromkeys(tenant_ids.tolist())
    lateness_of = {t: (tenants.get(t) or default).allowed_lateness_ms for t in names}
    if len(set(lateness_of.values())) == 1:
        return next(iter(lateness_of.values()))
    lateness = np.zeros(len(tenant_ids), np.int64)
    for tenant, ms in lateness_of.items():
        lateness[tenant_ids == tenant] = ms
    return lateness
