"""StoreActor: the one process that owns the warehouse; everyone else reads and writes through it.

chDB lets one process open a data path, so the embedded warehouse needs a single owner. A ClickHouse
server needs none (Serve replicas and jobs call `open_warehouse` themselves); the pipeline's actors still
reach it through this actor by name, which then only forwards, many calls at once. The actor is
thin: it opens `open_warehouse(settings)` and forwards. It restarts after a crash (`max_restarts=-1`)
and reopens the same path, so on-disk rows and the dedup log survive; calls in flight are retried
(`max_task_retries=-1`), which is why writes that matter carry a dedup token.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mkt_ray.kafka import check_applied_within, check_topic_identity
from mkt_ray.pipeline import KPI, use_system_arrow_pool
from mkt_ray.pipeline._tables import topic_id_sql
from mkt_ray.settings import Settings
from mkt_ray.warehouse import Warehouse, open_warehouse, split_table

if TYPE_CHECKING:
    from confluent_kafka import Consumer

# A restarted actor may start while its predecessor still holds the chDB lock for a moment.
_REOPEN_LOCK_TIMEOUT_S = 30.0
# Calls in flight at once against a ClickHouse server (the client is thread-safe without a session).
_SERVER_CONCURRENCY = 16
# KPI rows kept for read models to catch up from; one that falls further behind reloads its tenants
_KPI_LOG_ROWS = 500_000


class KpiLog:
    """The KPI rows this store inserted, in order, numbered: what the query API's read models
    (serve_apps/_read_model.py) apply to stay equal to the `kpi_windows` table without querying it.

    It starts when a read model first asks (`snapshot`), so a platform without one pays nothing. An insert
    is logged only if it added rows: a batch whose dedup token the table already holds adds none, which
    the table's row count tells. Anything else that may change the table (SQL naming it, rows that do
    not add up) starts a new epoch, and read models on the old one reload. A restarted store is a new epoch.
    It relies on the chDB store actor running one call at a time (a snapshot and its log position are
    one call); with a ClickHouse server replicas query the server and never ask for it.
    """

    def __init__(self, warehouse: Warehouse, database: str) -> None:
        self._warehouse = warehouse
        self._database = database
        self._table = f"{database}.{KPI}"
        self.epoch = uuid.uuid4().hex
        self.seq = 0
        self._entries: deque[tuple[int, pa.Table]] = deque()
        self._rows = 0
        self._count: int | None = None  # the table's rows when the log last saw it; None: not started

    def _table_rows(self) -> int:
        return int(self._warehouse.query_rows(f"SELECT count() FROM {self._table}")[0][0])

    def _restart(self) -> None:
        self.epoch, self._entries, self._rows = uuid.uuid4().hex, deque(), 0
        self._count = self._table_rows()

    def snapshot(self, tenant: str) -> tuple[str, int, pa.Table]:
        """One tenant's KPI sums per (window, campaign, source, start) now, and the log position they
        include (one actor call: no insert lands between the two)."""
        if self._count is None:
            self._restart()
        table = self._warehouse.query_arrow(
            "SELECT window, campaign_id, source, window_start_ms, sum(impressions) AS impressions, "
            "sum(clicks) AS clicks, sum(conversions) AS conversions, sum(cost) AS cost, sum(revenue) AS revenue "
            f"FROM {self._table} WHERE tenant_id = {{tenant:String}} "
            "GROUP BY window, campaign_id, source, window_start_ms", {"tenant": tenant})
        return self.epoch, self.seq, table

    def since(self, epoch: str, seq: int) -> tuple[str, int, list[tuple[int, pa.Table]] | None]:
        """The inserts after `seq` of `epoch`, or None where the caller must reload (another epoch, or
        entries it needs were dropped)."""
        if epoch != self.epoch or seq > self.seq:
            return self.epoch, self.seq, None
        if seq == self.seq:
            return self.epoch, seq, []
        if not self._entries or self._entries[0][0] > seq + 1:
            return self.epoch, self.seq, None
        return self.epoch, self.seq, [entry for entry in self._entries if entry[0] > seq]

    def inserted(self, table: str, data: pa.Table) -> None:
        """After an insert into `table`: log it if it is the KPI table and added its rows."""
        if self._count is None or split_table(table, self._database) != (self._database, KPI):
            return
        count = self._table_rows()
        if count == self._count:  # deduplicated: the table already held this batch
            return
        if count != self._count + data.num_rows:
            self._restart()
            return
        self._count, self.seq = count, self.seq + 1
        self._entries.append((self.seq, data))
        self._rows += data.num_rows
        while self._rows > _KPI_LOG_ROWS and len(self._entries) > 1:
            self._rows -= self._entries.popleft()[1].num_rows

    def executed(self, sql: str) -> None:
        """After SQL that may have changed the KPI table (a DELETE, an INSERT ... SELECT, DDL): new epoch."""
        if self._count is not None and KPI in sql:
            self._restart()


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StoreActor:
    """Owns one `Warehouse` (see `mkt_ray.warehouse.Warehouse` for what each method does)."""

    def __init__(self, settings: Settings) -> None:
        use_system_arrow_pool()
        self._warehouse = open_warehouse(settings, lock_timeout_s=_REOPEN_LOCK_TIMEOUT_S)
        self._kpi_log = KpiLog(self._warehouse, settings.warehouse.database)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._warehouse.execute(sql, params)
        self._kpi_log.executed(sql)

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self._warehouse.query_rows(sql, params)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._warehouse.query_arrow(sql, params)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self._warehouse.insert_arrow(table, data, dedup_token)
        self._kpi_log.inserted(table, data)

    def kpi_snapshot(self, tenant: str) -> tuple[str, int, pa.Table]:
        """See `KpiLog.snapshot`."""
        return self._kpi_log.snapshot(tenant)

    def kpi_since(self, epoch: str, seq: int) -> tuple[str, int, list[tuple[int, pa.Table]] | None]:
        """See `KpiLog.since`."""
        return self._kpi_log.since(epoch, seq)

    def ping(self) -> dict[str, Any]:
        """Liveness, plus the process id and whether this is a restarted incarnation."""
        return {"pid": os.getpid(), "restarted": ray.get_runtime_context().was_current_actor_reconstructed}

    def close(self) -> None:
        """Close the warehouse (the actor stays up; later calls raise WarehouseError)."""
        self._warehouse.close()


def start_store_actor(
    settings: Settings, name: str = "mkt-store", namespace: str | None = None
) -> ActorHandle:
    """Start the named store actor and return its handle (not detached: it ends with the job).

    For chDB the path is made absolute here and the actor is pinned to this node, so a restart
    reopens the same files instead of an empty directory on another node. For a server it may run anywhere.
    """
    options: dict[str, Any] = {"name": name, "namespace": namespace, "lifetime": None}
    if settings.warehouse.backend != "chdb":
        # a ClickHouse server has no single owner: this actor is a stateless pass-through for the pipeline's
        # actors (which address the store by name), and serves their calls side by side
        options["max_concurrency"] = _SERVER_CONCURRENCY
    else:
        chdb_path = settings.chdb_path.expanduser().resolve()
        warehouse = settings.warehouse.model_copy(update={"chdb_path": chdb_path})
        settings = settings.model_copy(update={"warehouse": warehouse})
        node_id = ray.get_runtime_context().get_node_id()
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    return StoreActor.options(**options).remote(settings)


def check_same_topic(consumer: Consumer, store: ActorHandle, conf: dict[str, Any], settings: Settings,
                     ledger: Mapping[int, int], applied_at: dict[int, int]) -> None:
    """Refuse a takeover of partitions of an events topic the warehouse's ledger (`ledger`: the highest applied
    offset per partition) was not written from: another topic, or one deleted and created again, told by its
    name and id (recorded in the warehouse, through the store actor), and by partitions that end at or before
    their applied offset (`applied_at`, the partitions taken over; a broker that lost messages)."""
    topic, (query, insert) = settings.kafka.topic_events, topic_id_sql(settings.warehouse.database)

    def recorded() -> tuple[str, str] | None:
        rows = ray.get(store.query_rows.remote(query))
        return (rows[0][0], rows[0][1]) if rows else None

    def record(name: str, found: str) -> None:
        ray.get(store.execute.remote(insert, {"topic": name, "id": found, "ms": int(time.time() * 1000)}))

    check_topic_identity(conf, topic, recorded, record, applied=any(last >= 0 for last in ledger.values()))
    check_applied_within(consumer, conf, topic, applied_at)
