"""Exactly-once effect: kill ingest members and the store owner mid-stream; totals equal the ground truth.

The ground truth is the generator's own plain-Python account of the same messages (what a clean run
must produce). Transport is at-least-once; the kills force replays, takeovers and retried writes.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import ray

from actors.launcher import Platform
from mkt_ray.kafka import consume_all, produce_lines, topic_end_offsets
from mkt_ray.pipeline import tenant_key
from mkt_ray.rawstore import read_raw
from mkt_ray.settings import PipelineSettings, WarehouseSettings, load_settings
from mkt_ray.warehouse.http_endpoint import EndpointProcess
from mkt_ray.workload import generate_workload

pytestmark = pytest.mark.platform
TENANTS = ["acme", "globex", "initech"]


@pytest.fixture(params=["chdb", "clickhouse"])
def warehouse(request, tmp_path: Path):
    """The embedded chDB store, or a ClickHouse server (chDB behind ClickHouse's HTTP interface) via clickhouse-connect."""
    if request.param == "chdb":
        yield WarehouseSettings()
        return
    with EndpointProcess(tmp_path / "clickhouse") as endpoint:
        yield WarehouseSettings(backend="clickhouse", url=endpoint.url)


@pytest.fixture
def platform(broker, kafka_settings, ray_session, tmp_path: Path, warehouse: WarehouseSettings):
    settings = load_settings(
        data_dir=tmp_path / "data",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tmp_path.name}", partitions=4),
        pipeline=PipelineSettings(ingest_actors=2, batch_size=4000, checkpoint_every_s=0.5, piece_rows=500),
        warehouse=warehouse,
    ).with_tenants(TENANTS)
    with Platform(settings) as running:
        yield running


def _clean_attribution(lines: list[bytes], settings) -> dict:
    """The uninterrupted run: decode in order, enrich, one attribution engine per tenant, summed credits."""
    from mkt_ray.attribution import TenantAttribution
    from mkt_ray.contract import BatchDecoder
    from mkt_ray.pipeline import enrich

    events = BatchDecoder(TENANTS).decode(lines).events
    events = enrich(events, settings.tenants, settings.currency).events
    totals: dict = {}
    for tenant in TENANTS:
        rows = TenantAttribution(settings.tenants[tenant]).apply(events.take(events["tenant_id"] == tenant)).to_pylist()
        for row in rows:
            credit = totals.setdefault(tenant, {}).setdefault(row["model"], {}).setdefault(
                row["channel"], {"conversions": 0.0, "revenue": 0.0})
            credit["conversions"] += row["conversions_credit"]
            credit["revenue"] += row["revenue_credit"]
    return totals


def _produce_slowly(platform: Platform, lines: list[bytes], chunks: int, pause_s: float) -> None:
    size = math.ceil(len(lines) / chunks)
    for i in range(0, len(lines), size):
        produce_lines(platform.kafka_conf, platform.settings.kafka.topic_events, lines[i : i + size], tenant_key)
        time.sleep(pause_s)


def test_kills_mid_stream_change_no_total(platform: Platform) -> None:
    # the server variant adds an HTTP hop per write; fewer events keep its run short, the kills land as densely
    events = 100_000 if platform.settings.warehouse.backend == "chdb" else 20_000
    workload = generate_workload(events, TENANTS, 21, datetime.now(UTC))
    lines = list(workload)
    truth = workload.truth
    platform.wait_until_assigned()
    producer = threading.Thread(target=_produce_slowly, args=(platform, lines, 20, 0.4))
    producer.start()
    victims = [platform.ingest[0], platform.shards[0], platform.store, platform.ingest[1], platform.shards[1],
               platform.ingest[0], platform.ingest[1], platform.shards[0]]
    for victim in victims:
        time.sleep(1.0)
        ray.kill(victim, no_restart=False)
    producer.join()
    platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, platform.settings.kafka.topic_events), 240)

    db = platform.settings.warehouse.database
    totals = platform.kpi_totals()
    assert sum(t["events"] for t in totals.values()) == truth["valid"]
    for tenant, expected in truth["kpis"].items():
        for name in ("impressions", "clicks", "conversions"):
            assert totals[tenant][name] == expected[name], (tenant, name)
        for name in ("cost", "revenue"):
            assert math.isclose(totals[tenant][name], expected[name], rel_tol=1e-9), (tenant, name)
    for window, factor in (("tumbling_1h", 1), ("sliding_5m", 5)):
        (events,), = platform.query(f"SELECT sum(events) FROM {db}.kpi_windows WHERE window = '{window}'")
        assert events == factor * truth["valid"], window
    assert platform.quarantine_counts() == {code: n for code, n in truth["reasons"].items() if n}

    # attribution credits equal a clean run of the same engines over the same events, in order
    expected = _clean_attribution(lines, platform.settings)
    got = platform.attribution_totals()
    assert set(got) == set(expected)
    for tenant, models in expected.items():
        assert set(got[tenant]) == set(models)
        for model, channels in models.items():
            assert set(got[tenant][model]) == set(channels), (tenant, model)
            for channel, credit in channels.items():
                for name in ("conversions", "revenue"):
                    assert math.isclose(got[tenant][model][channel][name], credit[name], rel_tol=1e-9, abs_tol=1e-9)

    # no table holds anything twice
    (rows, distinct), = platform.query(f"SELECT count(), uniqExact(partition, offset) FROM {db}.quarantine FINAL")
    assert rows == distinct == truth["quarantined"]
    ledger = platform.query(f"SELECT partition, first_offset, last_offset FROM {db}.kpi_windows WHERE window = 'ledger' ORDER BY partition, first_offset")
    ends = topic_end_offsets(platform.kafka_conf, platform.settings.kafka.topic_events)
    for partition, end in ends.items():
        ranges = [(a, b) for p, a, b in ledger if p == partition]
        assert sum(b - a + 1 for a, b in ranges) == end, f"partition {partition}: ranges overlap or leave gaps"
    raw = read_raw(platform.settings.raw_uri)
    assert raw.num_rows == truth["valid"]
    assert len(set(zip(raw["tenant_id"].to_pylist(), raw["event_id"].to_pylist(), strict=True))) == truth["valid"]
    assert ray.data.read_parquet(platform.settings.raw_uri).count() == truth["valid"]  # Ray Data reads the archive

    # the quarantine topic holds every rejected message (a replay may repeat one; its headers identify it)
    table = {(p, o): (r, bytes.fromhex(raw)) for r, p, o, raw in platform.query(
        f"SELECT reason, partition, offset, hex(raw) FROM {db}.quarantine FINAL")}  # raw may not be UTF-8
    topic = consume_all(platform.kafka_conf, platform.settings.kafka.topic_quarantine, None, timeout=60, headers=True)
    assert len(topic) >= truth["quarantined"]
    seen = {}
    for _, _, _, value, headers in topic:
        h = {k: v.decode() for k, v in headers}
        seen[(int(h["partition"]), int(h["offset"]))] = (h["reason"], value)
    assert seen.keys() == table.keys()
    assert all(seen[k][0] == table[k][0] for k in table)  # the same reason
    assert all(seen[k][1] == table[k][1] for k in table)  # the raw bytes, byte for byte


@pytest.mark.parametrize(("members", "shards"), [(1, 1), (4, 8)])
def test_member_and_shard_counts_do_not_change_totals(broker, kafka_settings, ray_session, tmp_path: Path,
                                                      members: int, shards: int) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tmp_path.name}", partitions=4),
        pipeline=PipelineSettings(ingest_actors=members, shards=shards, batch_size=2000),
    ).with_tenants(TENANTS)
    workload = generate_workload(8000, TENANTS, 4, datetime.now(UTC))
    lines = list(workload)
    with Platform(settings) as platform:
        platform.wait_until_assigned()
        produce_lines(platform.kafka_conf, settings.kafka.topic_events, lines, tenant_key)
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, settings.kafka.topic_events), 120)
        totals = platform.kpi_totals()
        assert {t: {k: v for k, v in totals[t].items() if k in ("impressions", "clicks", "conversions")}
                for t in totals} == {t: {k: workload.truth["kpis"][t][k] for k in ("impressions", "clicks", "conversions")}
                                     for t in TENANTS}
        assert sum(t["events"] for t in totals.values()) == workload.truth["valid"]
        assert sum(platform.quarantine_counts().values()) == workload.truth["quarantined"]
