"""What the replay, quality-report and remediation jobs share: settings, warehouse, dates, output.

A job opens the configured warehouse itself (`open_warehouse`). With the embedded chDB only one
process may hold the data path, so these jobs run while the platform is stopped, or inside it through
the store actor (`StoreClient`), which is how `mkt-ray up` runs the daily report.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from mkt_ray.errors import InputError, MktRayError
from mkt_ray.pipeline import pipeline_ddl
from mkt_ray.settings import Settings, load_settings
from mkt_ray.warehouse import Warehouse, ensure_schema, open_warehouse

DAY_MS = 86_400_000


def say(message: str) -> None:
    print(f"mkt-ray: {message}", file=sys.stderr, flush=True)


def run_job(body: Callable[[], int]) -> int:
    """A job's exit status: `body`'s, or 2 with the error said on stderr where mkt-ray refuses something
    (a bad argument, a warehouse held by a running platform, a missing store): no traceback for those."""
    try:
        return body()
    except MktRayError as exc:
        say(f"error: {exc}")
        return 2


def parse_day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{flag} {text!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-27") from None


def day_ms(day: date) -> int:
    """Epoch ms of the day's UTC midnight."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def yesterday(now: datetime) -> date:
    return (now.astimezone(UTC) - timedelta(days=1)).date()


def job_settings(config: Path | None, tenants: list[str]) -> Settings:
    return load_settings(config).with_tenants(tenants)


def job_warehouse(settings: Settings, extra_ddl: list[str] = ()) -> Warehouse:
    """The configured warehouse with the pipeline's tables (and `extra_ddl`) present."""
    warehouse = open_warehouse(settings)
    ensure_schema(warehouse, [*pipeline_ddl(settings.warehouse.database), *extra_ddl])
    return warehouse


class StoreClient:
    """A `Warehouse` over the platform's store actor, for jobs run inside a running platform."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        import ray

        ray.get(self._store.execute.remote(sql, params))

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        import ray

        return ray.get(self._store.query_rows.remote(sql, params))

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        import ray

        return ray.get(self._store.query_arrow.remote(sql, params))

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        import ray

        ray.get(self._store.insert_arrow.remote(table, data, dedup_token))

    def close(self) -> None:
        """The platform owns the store; nothing to release here."""


def print_json(report: Mapping[str, Any]) -> None:
    print(json.dumps(report, sort_keys=True), flush=True)
