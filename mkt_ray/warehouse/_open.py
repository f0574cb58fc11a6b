"""Pick and open the warehouse backend named in the settings."""

from __future__ import annotations

import re

from mkt_ray.errors import WarehouseError
from mkt_ray.settings import Settings
from mkt_ray.warehouse._chdb import ChdbWarehouse
from mkt_ray.warehouse._clickhouse import ClickHouseWarehouse
from mkt_ray.warehouse._protocol import Warehouse

_IDEMPOTENT_RE = re.compile(r"\bIF\s+NOT\s+EXISTS\b", re.IGNORECASE)


def open_warehouse(settings: Settings, lock_timeout_s: float = 0.0) -> Warehouse:
    """The warehouse of `settings.warehouse.backend` (chDB at `settings.chdb_path` by default).

    `lock_timeout_s` applies to chDB only (how long to wait for another process to release the path).
    """
    backend = settings.warehouse.backend
    if backend == "chdb":
        return ChdbWarehouse(settings.chdb_path, settings.warehouse.database, lock_timeout_s=lock_timeout_s)
    if backend == "clickhouse":
        ch = settings.warehouse
        if not ch.url:
            raise WarehouseError(
                "warehouse.backend 'clickhouse' needs warehouse.url (e.g. MKT_WAREHOUSE__URL=https://clickhouse:8443)"
            )
        return ClickHouseWarehouse(ch.url, ch.database, ch.username, ch.password.get_secret_value(),
                                   verify=ch.verify_tls, ca_cert=ch.ca_cert)
    raise WarehouseError(f"unknown warehouse.backend {backend!r}; expected 'chdb' or 'clickhouse'")


def ensure_schema(wh: Warehouse, ddl_statements: list[str]) -> None:
    """Run `CREATE ... IF NOT EXISTS` statements in order, so every start may run them again.

    A statement without IF NOT EXISTS is refused before anything runs: it would work on the first
    start and fail on the next.
    """
    for statement in ddl_statements:
        if not _IDEMPOTENT_RE.search(statement):
            raise WarehouseError(
                f"schema statement is not idempotent (add IF NOT EXISTS): {statement[:200]!r}"
            )
    for statement in ddl_statements:
        wh.execute(statement)
