"""StoreActor on a real local Ray and a real chDB path: reads, writes, and surviving a kill."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pyarrow as pa
import pytest
import ray

from actors.store import start_store_actor
from mkt_ray.errors import WarehouseError
from mkt_ray.settings import Settings

KPI_DDL = (
    "CREATE TABLE IF NOT EXISTS kpi (tenant_id String, campaign String,"
    " window_start DateTime64(3, 'UTC'), clicks UInt64, spend Float64)"
    " ENGINE = MergeTree ORDER BY (tenant_id, campaign, window_start)"
    " SETTINGS non_replicated_deduplication_window = 1000"
)
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
ROWS = [("acme", "spring", T0, 3, 1.25), ("beta", "launch", T0 + dt.timedelta(minutes=5), 8, 0.5)]


def kpi_batch() -> pa.Table:
    columns = list(zip(*ROWS, strict=True))
    return pa.table(
        {
            "tenant_id": columns[0],
            "campaign": columns[1],
            "window_start": pa.array(columns[2], pa.timestamp("ms", "UTC")),
            "clicks": pa.array(columns[3], pa.uint64()),
            "spend": columns[4],
        }
    )


def wait_for_restart(actor, old_pid: int, timeout_s: float = 60.0) -> dict:
    """`ray.kill` returns before the kill lands, so poll until a new incarnation answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = ray.get(actor.ping.remote(), timeout=timeout_s)
        if info["pid"] != old_pid or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


@pytest.fixture
def store(ray_session, tmp_path):
    actor = start_store_actor(Settings(data_dir=tmp_path), name=f"store-{uuid.uuid4().hex[:8]}")
    ray.get(actor.execute.remote(KPI_DDL))
    yield actor
    ray.kill(actor, no_restart=True)


def test_insert_and_read_back_exact_values(store):
    ray.get(store.insert_arrow.remote("kpi", kpi_batch(), "p0:0-1"))
    assert ray.get(store.query_rows.remote("SELECT * FROM kpi ORDER BY tenant_id")) == ROWS
    table = ray.get(store.query_arrow.remote("SELECT * FROM kpi WHERE clicks > {n:UInt64}", {"n": 5}))
    assert table.to_pylist() == [dict(zip(table.column_names, ROWS[1], strict=True))]


def test_refused_sql_raises_warehouse_error_through_ray(store):
    with pytest.raises(WarehouseError):
        ray.get(store.query_rows.remote("SELECT * FROM no_such_table"))


def test_killed_actor_restarts_with_rows_and_dedup_log(store):
    ray.get(store.insert_arrow.remote("kpi", kpi_batch(), "p0:0-1"))
    before = ray.get(store.ping.remote())
    assert before["restarted"] is False

    ray.kill(store, no_restart=False)

    after = wait_for_restart(store, before["pid"])
    assert after["restarted"] is True and after["pid"] != before["pid"]
    assert ray.get(store.query_rows.remote("SELECT * FROM kpi ORDER BY tenant_id")) == ROWS
    ray.get(store.insert_arrow.remote("kpi", kpi_batch(), "p0:0-1"))  # the re-sent batch
    assert ray.get(store.query_rows.remote("SELECT count() FROM kpi")) == [(2,)]
    ray.get(store.insert_arrow.remote("kpi", kpi_batch(), "p0:2-3"))
    assert ray.get(store.query_rows.remote("SELECT count() FROM kpi")) == [(4,)]


def test_close_releases_the_warehouse(store):
    ray.get(store.close.remote())
    with pytest.raises(WarehouseError, match="closed"):
        ray.get(store.query_rows.remote("SELECT 1"))
