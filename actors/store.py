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
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mkt_ray.settings import Settings
from mkt_ray.warehouse import open_warehouse

# A restarted actor may start while its predecessor still holds the chDB lock for a moment.
_REOPEN_LOCK_TIMEOUT_S = 30.0
# Calls in flight at once against a ClickHouse server (the client is thread-safe without a session).
_SERVER_CONCURRENCY = 16


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StoreActor:
    """Owns one `Warehouse` (see `mkt_ray.warehouse.Warehouse` for what each method does)."""

    def __init__(self, settings: Settings) -> None:
        self._warehouse = open_warehouse(settings, lock_timeout_s=_REOPEN_LOCK_TIMEOUT_S)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._warehouse.execute(sql, params)

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self._warehouse.query_rows(sql, params)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._warehouse.query_arrow(sql, params)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        self._warehouse.insert_arrow(table, data, dedup_token)

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
