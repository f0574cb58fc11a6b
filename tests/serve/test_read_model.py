"""The API replica's read model of kpi_windows answers campaigns/performance exactly as the table does.

A real StoreActor owns a real chDB; rows go in as the pipeline writes them (`insert_arrow` with dedup
tokens). Every page the read model serves is compared, all pages walked by cursor, with the plain-Python
reference (tests/serve/_reference.py) over the rows the table holds: after the first load, after more
inserts (new and already known windows), after a batch re-sent with its token (the table drops it, so
must the model), after a DELETE on the table (the store starts a new epoch and the model reloads), and for
tenants the model does not hold (over its row budget, or a window start it cannot represent), which SQL answers.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from actors.store import start_store_actor
from mkt_ray.pipeline import KPI, pipeline_ddl
from mkt_ray.pipeline._tables import KPI_SCHEMA
from mkt_ray.settings import load_settings
from serve_apps._queries import PerformanceQuery, Span, performance_items, performance_page
from serve_apps._read_model import KpiReadModel
from serve_apps._scope import StoreActorRunner, TenantReader
from tests.serve import _reference as ref

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEPS = {"tumbling_1m": 60_000, "tumbling_1h": 3_600_000, "sliding_5m": 60_000}
CAMPAIGNS = ("spring", "summer", "x' OR '1'='1", "c-4", "Ünïcode")
SOURCES = ("google", "meta", "email")
QUERIES: list[dict[str, Any]] = [
    {"granularity": "1m", "from": "2026-01-01T02:00:00Z", "to": "2026-01-01T05:30:00Z"},
    {"granularity": "1m", "sort": "-cost"},
    {"granularity": "5m_sliding", "sort": "clicks", "campaign_id": "summer"},
    {"granularity": "1h", "sort": "-revenue", "source": "meta"},
    {"granularity": "total", "sort": "-impressions"},
    {"granularity": "total", "from": "2026-01-01T12:00:00Z", "source": "google", "campaign_id": "spring"},
    {"granularity": "1m", "campaign_id": "no-such-campaign"},
    {"granularity": "1m", "sort": "-conversions", "from": "2026-01-01T00:00:30Z", "to": "2026-01-01T00:10:00Z"},
]


def _rows(rng: random.Random, tenants: tuple[str, ...], count: int, first_offset: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        kind = rng.choice(list(STEPS))
        impressions = rng.randint(0, 500)
        clicks = rng.randint(0, min(impressions, 60))
        conversions = rng.randint(0, clicks)
        rows.append({"window": kind, "tenant_id": rng.choice(tenants), "campaign_id": rng.choice(CAMPAIGNS),
                     "source": rng.choice(SOURCES),
                     "window_start_ms": T0_MS + rng.randrange(86_400_000 // STEPS[kind]) * STEPS[kind],
                     "events": impressions + clicks + conversions, "impressions": impressions, "clicks": clicks,
                     "conversions": conversions, "cost": round(rng.uniform(0, 90), 2),
                     "revenue": round(rng.uniform(0, 300), 2) if conversions else 0.0, "partition": 0,
                     "first_offset": first_offset + n, "last_offset": first_offset + n, "applied_ms": T0_MS})
    return rows


def _query(params: dict[str, Any]) -> PerformanceQuery:
    span = Span(ref.ms(params.get("from"), -ref.FOREVER), ref.ms(params.get("to"), ref.FOREVER))
    return PerformanceQuery(span, params.get("granularity", "total"), params.get("campaign_id"),
                            params.get("source"), params.get("sort", "window_start"), limit=7)


async def _all_pages(reader: TenantReader, params: dict[str, Any]) -> list[dict[str, Any]]:
    q, items, cursor = _query(params), [], None
    while True:
        table, cursor = await performance_page(reader, q, cursor)
        items += performance_items(table, q.granularity)
        if cursor is None:
            return items


async def _check(reader: TenantReader, rows: list[dict[str, Any]], from_memory: bool) -> None:
    """Every query's pages equal the reference; `from_memory` says whether the read model answered."""
    answered = await reader.performance_from_memory(_query(QUERIES[0]), None, 1)
    assert (answered is not None) == from_memory
    for params in QUERIES:
        expected = ref.performance({"kpi_windows": rows}, reader.tenant, params)
        ref.assert_same(await _all_pages(reader, params), expected)


def test_read_model_pages_equal_the_reference_through_inserts_duplicates_and_deletes(
        ray_session: None, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    name = f"mkt-store-rm-{uuid.uuid4().hex[:8]}"
    store = start_store_actor(settings, name=name)
    db = settings.warehouse.database
    for statement in pipeline_ddl(db):
        ray.get(store.execute.remote(statement))
    runner = StoreActorRunner(name, ray.get_runtime_context().namespace)
    rng = random.Random(5)

    def insert(rows: list[dict[str, Any]], token: str) -> None:
        ray.get(store.insert_arrow.remote(KPI, pa.Table.from_pylist(rows, schema=KPI_SCHEMA), token))

    async def scenario() -> None:
        model = KpiReadModel(runner.call, staleness_ms=0, max_rows=100_000)
        readers = {t: TenantReader(runner, db, t, model) for t in ("acme", "globex")}
        first = [_rows(rng, ("acme", "globex"), 900, 1000 * i) for i in range(3)]
        table_rows = [row for chunk in first for row in chunk]
        for i, chunk in enumerate(first):
            insert(chunk, f"kpi-{i}")
        for reader in readers.values():
            await _check(reader, [r for r in table_rows if r["tenant_id"] == reader.tenant], from_memory=True)

        # more batches: windows already held and new ones; a re-sent batch the table drops; a ledger row
        more = _rows(rng, ("acme", "globex"), 700, 10_000)
        insert(more, "kpi-more")
        insert(first[0], "kpi-0")
        ledger = {**more[0], "window": "ledger", "impressions": 10**6}
        insert([ledger], "kpi-ledger")
        table_rows += more
        for reader in readers.values():
            await _check(reader, [r for r in table_rows if r["tenant_id"] == reader.tenant], from_memory=True)

        # rows leave the table behind the log's back: the store starts a new epoch, the model reloads
        ray.get(store.execute.remote(f"DELETE FROM {db}.{KPI} WHERE tenant_id = 'acme' AND campaign_id = 'spring'"))
        table_rows = [r for r in table_rows if not (r["tenant_id"] == "acme" and r["campaign_id"] == "spring")]
        for reader in readers.values():
            await _check(reader, [r for r in table_rows if r["tenant_id"] == reader.tenant], from_memory=True)

        # what the model cannot hold is read with SQL, with the same answers
        odd = _rows(rng, ("initech",), 300, 20_000)
        odd[7]["window_start_ms"] += 1  # not a whole minute
        insert(odd, "kpi-odd")
        await _check(TenantReader(runner, db, "initech", model), odd, from_memory=False)
        small = KpiReadModel(runner.call, staleness_ms=0, max_rows=100)
        await _check(TenantReader(runner, db, "acme", small), [r for r in table_rows if r["tenant_id"] == "acme"],
                     from_memory=False)

    try:
        asyncio.run(scenario())
    finally:
        ray.get(store.close.remote())
        ray.kill(store)
