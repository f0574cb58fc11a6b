"""What every warehouse backend offers: the embedded chDB engine and a ClickHouse server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Warehouse(Protocol):
    """A ClickHouse-dialect store. Unqualified table names resolve to the configured database.

    `params` fill `{name:Type}` placeholders (see `mkt_ray.warehouse.encode_params` for the types
    accepted); values never become SQL text. Failures raise `WarehouseError`.
    """

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement (DDL, DELETE, INSERT ... SELECT) and discard any result."""
        ...

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """The result as Python tuples (aware datetimes, Decimal, None for NULL)."""
        ...

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """The result as an Arrow table; an empty result keeps its schema."""
        ...

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        """Insert `data`, matching columns by name (omitted columns take their defaults).

        With `dedup_token`, inserting again with the same token is a no-op (even if the data differ),
        as long as the token is among the table's last `non_replicated_deduplication_window` inserts.
        """
        ...

    def close(self) -> None:
        """Release the store; idempotent. Any later call raises WarehouseError."""
        ...
