"""TenantShard: owns a subset of tenants (`shard_for(tenant, S)`): their KPI windows and window closing.

`window_rows` runs the Numba window kernels over a shard's slice of a batch; the ingest member writes
all shards' rows in its one KPI insert (the commit point). `close` runs after that commit: for each of
its tenants (those it has stored rows for, and the batch's, which the caller passes) whose partition
watermark moved, it closes the windows that are now past the allowed lateness, reads their totals
from the warehouse, and writes signals, data-quality signals and alerts (tables keyed by window, so a
repeat after a crash changes nothing) and sends them to the `analytics-signals` and `analytics-alerts`
topics. Its only state, a horizon per tenant and window kind,
is stored after each pass and reloaded by a restarted shard.

The two run in separate threads (concurrency groups of one each): a batch's window rows, a pure
computation, never wait behind the previous batch's close pass, which waits on warehouse queries and
the broker. Close passes run one at a time, as do window_rows calls.
"""

from __future__ import annotations

import logging
from typing import Any

import confluent_kafka as ck  # through the module: see actors/ingest.py
import pyarrow as pa
import pyarrow.compute as pc
import ray

from mkt_ray.kafka import flush_queued, producer_config, queue_messages, table_messages
from mkt_ray.kernels import WINDOW_KINDS
from mkt_ray.pipeline import (
    KPI,
    LEDGER_WINDOW,
    kpi_window_rows,
    shard_events,
    shard_for,
    use_system_arrow_pool,
)
from mkt_ray.pipeline._closing import alert_table, closed_windows, closing_query, signal_table
from mkt_ray.pipeline._kpi_rows import warm_up
from mkt_ray.pipeline._tables import ALERTS, HORIZONS, SIGNALS
from mkt_ray.settings import Settings

log = logging.getLogger("mkt_ray.shard")
_NEVER = -(2**62)


# 0.1 CPU: up to 8 shards and 4 members fit a 2-CPU laptop; Ray CPUs only gate placement, not use
@ray.remote(num_cpus=0.1, max_restarts=-1, max_task_retries=-1, concurrency_groups={"rows": 1, "close": 1})
class TenantShard:
    def __init__(self, settings: Settings, bootstrap: str, store_name: str, index: int, shards: int) -> None:
        use_system_arrow_pool()
        self._settings, self._index, self._shards = settings, index, shards
        self._store = ray.get_actor(store_name)
        self._producer = ck.Producer(producer_config(settings.kafka.client_config(bootstrap)))
        self._db = settings.warehouse.database
        self._partition_of = self._known_tenants()
        self._horizons = self._stored_horizons()
        self._closed = {"windows": 0, "alerts": 0, "quality": 0}
        warm_up()  # load the window kernels now, not in the first batch's window_rows call

    @ray.method(concurrency_group="rows")
    def window_rows(self, events: pa.Table, ranges: dict[int, tuple[int, int]], applied_ms: int) -> pa.Table:
        """KPI rows of every window kind for this shard's slice of a batch (`shard_tables`; the ingest
        member adds the ledger)."""
        return kpi_window_rows(shard_events(events), ranges, applied_ms, ledger=False)

    @ray.method(concurrency_group="close")
    def close(self, watermarks: dict[int, int], now_ms: int, seen: dict[str, int] | None = None) -> dict[str, int]:
        """Close what the partitions' watermarks allow, for every tenant of this shard; returns counters.
        `seen` maps the tenants of the batch just committed (this shard's) to their partition."""
        self._partition_of.update(seen or {})
        spans = []
        for tenant, partition in sorted(self._partition_of.items()):
            if partition not in watermarks or tenant not in self._settings.tenants:
                continue
            horizon = watermarks[partition] - self._settings.tenants[tenant].allowed_lateness_ms
            for window, _, _ in WINDOW_KINDS:
                before = self._horizons.get((tenant, window), _NEVER)
                if horizon > before:
                    spans.append((tenant, window, before, horizon))
        if not spans:
            return dict(self._closed)
        sql, params = closing_query(self._db, spans)
        windows = closed_windows(ray.get(self._store.query_arrow.remote(sql, params)))
        tenants = windows["tenant_id"]
        alerts = [alert_table(windows.filter(pc.equal(tenants, t)), self._settings.tenants[t].thresholds, now_ms)
                  for t in sorted(set(tenants.to_pylist()))]
        self._publish(windows, pa.concat_tables(alerts) if alerts else None, now_ms)
        advanced = [{"tenant_id": t, "window": w, "horizon_ms": h} for t, w, _, h in spans]
        ray.get(self._store.insert_arrow.remote(HORIZONS, pa.Table.from_pylist(advanced)))
        self._horizons.update({(t, w): h for t, w, _, h in spans})
        return dict(self._closed)

    def stats(self) -> dict[str, Any]:
        return {"index": self._index, "tenants": sorted(self._partition_of), **self._closed}

    def _publish(self, windows: pa.Table, alerts: pa.Table | None, now_ms: int) -> None:
        signals = signal_table(windows, now_ms)
        if signals.num_rows:
            ray.get(self._store.insert_arrow.remote(SIGNALS, signals))
            self._send(self._settings.kafka.topic_signals, signals)
        if alerts is not None and alerts.num_rows:
            ray.get(self._store.insert_arrow.remote(ALERTS, alerts))
            self._send(self._settings.kafka.topic_alerts, alerts)
        quality = pc.sum(pc.equal(signals["kind"], "quality")).as_py() or 0
        self._closed["windows"] += windows.num_rows
        self._closed["quality"] += quality
        self._closed["alerts"] += alerts.num_rows if alerts is not None else 0

    def _send(self, topic: str, table: pa.Table) -> None:
        """Each row to `topic`, keyed by its window and rule (a repeat after a crash has the same key)."""
        queue_messages(self._producer, topic,
                       table_messages(table, ("tenant_id", "window", "campaign_id", "source", "window_start_ms", "rule")))
        flush_queued(self._producer, topic)

    def _known_tenants(self) -> dict[str, int]:
        rows = ray.get(self._store.query_rows.remote(
            f"SELECT DISTINCT tenant_id, partition FROM {self._db}.{KPI} WHERE window != '{LEDGER_WINDOW}'"))
        return {t: int(p) for t, p in rows if shard_for(t, self._shards) == self._index}

    def _stored_horizons(self) -> dict[tuple[str, str], int]:
        rows = ray.get(self._store.query_rows.remote(
            f"SELECT tenant_id, window, max(horizon_ms) FROM {self._db}.{HORIZONS} GROUP BY tenant_id, window"))
        return {(t, w): int(h) for t, w, h in rows if shard_for(t, self._shards) == self._index}


def shard_names(count: int, suffix: str) -> list[str]:
    """The names of a platform's `count` shard actors (ingest members look them up by name)."""
    return [f"mkt-shard-{i}-{suffix}" for i in range(count)]


def start_shards(settings: Settings, bootstrap: str, store_name: str, suffix: str) -> list[Any]:
    """S shard actors, named so that they can be found again."""
    count = settings.pipeline.shards
    return [TenantShard.options(name=name).remote(settings, bootstrap, store_name, i, count)
            for i, name in enumerate(shard_names(count, suffix))]
