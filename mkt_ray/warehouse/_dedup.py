"""The check that a table keeps a deduplication log, shared by every backend."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from mkt_ray.errors import WarehouseError

_DEDUP_WINDOW_RE = re.compile(r"non_replicated_deduplication_window\s*=\s*'?(\d+)")


def require_dedup_log(
    query_rows: Callable[[str, Mapping[str, Any]], list[tuple]], database: str, name: str, where: str
) -> None:
    """Refuse a dedup token for a table without a deduplication log: ClickHouse would silently ignore it.

    `where` names the store in the error (a chDB path or a server URL).
    """
    rows = query_rows(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {name:String}",
        {"db": database, "name": name},
    )
    if not rows:
        raise WarehouseError(f"table {database}.{name} does not exist in {where}")
    window = _DEDUP_WINDOW_RE.search(rows[0][0])
    if window is None or int(window.group(1)) == 0:
        raise WarehouseError(
            f"table {database}.{name} keeps no deduplication log, so dedup tokens would be ignored; "
            "add `SETTINGS non_replicated_deduplication_window = <blocks>` to its MergeTree DDL"
        )
