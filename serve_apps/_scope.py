"""The storage side of tenant isolation: every API query runs through a `TenantReader`.

A reader is bound to one tenant (the token's, after `auth.authorize`) and refuses SQL that does not
filter on `tenant_id = {tenant:String}`; it injects that parameter itself and refuses a caller's own
`tenant` parameter. Values from requests only ever travel as `{name:Type}` parameters, never as SQL text.

Where the rows come from is a `QueryRunner`: the embedded warehouse's owner (`StoreActorRunner`, since
chDB lets one process open its path) or any `Warehouse` the replica may open itself, such as a
ClickHouse server (`WarehouseRunner`). The queries above this layer do not know which.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import ray

from mkt_ray.warehouse import Warehouse, quote_identifier

if TYPE_CHECKING:
    from serve_apps._queries import PerformanceQuery
    from serve_apps._read_model import KpiReadModel

_TENANT_FILTER = re.compile(r"\btenant_id\s*=\s*\{tenant:String\}")


class QueryRunner(Protocol):
    """Runs one parameterised SELECT and returns its rows as Arrow."""

    async def query_arrow(self, sql: str, params: Mapping[str, Any]) -> pa.Table: ...


class StoreActorRunner:
    """Queries through the named `StoreActor` that owns the embedded warehouse (found lazily, so a
    replica may start before the store and keeps working across the store's restarts)."""

    def __init__(self, store_name: str, namespace: str | None) -> None:
        self.store_name = store_name
        self.namespace = namespace
        self._handle: Any = None

    async def query_arrow(self, sql: str, params: Mapping[str, Any]) -> pa.Table:
        return await self.call("query_arrow", sql, dict(params))

    async def call(self, method: str, *args: Any) -> Any:
        """Any of the store actor's methods (the read model's `kpi_snapshot` and `kpi_since`)."""
        if self._handle is None:
            self._handle = ray.get_actor(self.store_name, namespace=self.namespace)
        return await getattr(self._handle, method).remote(*args)


class WarehouseRunner:
    """Queries a `Warehouse` this process may open itself (a ClickHouse server, or chDB in one process),
    off the event loop."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    async def query_arrow(self, sql: str, params: Mapping[str, Any]) -> pa.Table:
        return await asyncio.to_thread(self.warehouse.query_arrow, sql, dict(params))


class TenantReader:
    """Reads one tenant's rows: `query` runs only SQL scoped by `tenant_id = {tenant:String}`."""

    def __init__(self, runner: QueryRunner, database: str, tenant: str, kpis: KpiReadModel | None = None) -> None:
        self.runner = runner
        self.tenant = tenant
        self._database = quote_identifier(database)
        self._kpis = kpis

    async def performance_from_memory(self, q: PerformanceQuery, after: tuple[float, str, str, int] | None,
                                      limit: int) -> pa.Table | None:
        """This tenant's performance page from the replica's read model, or None where SQL must answer."""
        if self._kpis is None:
            return None
        return await self._kpis.performance(self.tenant, q, after, limit)

    def table(self, name: str) -> str:
        """The quoted, database-qualified name of one of the platform's tables."""
        return f"{self._database}.{quote_identifier(name)}"

    async def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        if not _TENANT_FILTER.search(sql):
            raise ValueError(f"query is not scoped to a tenant (needs `tenant_id = {{tenant:String}}`): {sql[:200]!r}")
        if params and "tenant" in params:
            raise ValueError("the `tenant` parameter is set by the reader, never by the caller")
        return await self.runner.query_arrow(sql, {**(params or {}), "tenant": self.tenant})
