"""Durable state that names offsets of a topic that is gone. A platform started again on the embedded broker
(what a second `make run` does) gets new topics starting at offset 0: the earlier run's offset-bound data is
set aside and the new run counts every event of its own, even events whose ids the earlier run accepted. On a
Kafka of one's own, a topic that ends before the warehouse's ledger (created again) is refused at takeover,
while a plain restart takes over at the ledger."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from actors.launcher import Platform
from mkt_ray.embedded import earlier_runs, set_aside_earlier_run
from mkt_ray.errors import MktRayError
from mkt_ray.kafka import create_topics, produce_lines, topic_end_offsets
from mkt_ray.pipeline import KPI, LEDGER_WINDOW, pipeline_ddl
from mkt_ray.rawstore import load_tombstones, save_tombstones
from mkt_ray.settings import KafkaSettings, PipelineSettings, WarehouseSettings, load_settings
from mkt_ray.warehouse import open_warehouse
from mkt_ray.warehouse.http_endpoint import EndpointProcess

MINUTE = 60_000


def _event(i: int, ts_ms: int, impressions: int) -> bytes:
    stamp = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"schema_version": 1, "event_id": f"e{i}", "tenant_id": "acme", "event_type": "ad_metrics",
                       "timestamp": stamp, "source": "meta", "campaign_id": "c1",
                       "performance_metrics": {"impressions": impressions}}).encode()


def _run(settings, lines: list[bytes], said: list[str]) -> dict[str, dict[str, float]]:
    with Platform(settings, say=said.append) as platform:
        platform.wait_until_assigned()
        topic = settings.kafka.topic_events
        produce_lines(platform.kafka_conf, topic, lines, lambda _: b"acme")
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, topic), 60)
        return platform.kpi_totals()


@pytest.mark.platform
def test_a_second_start_on_the_embedded_broker_counts_its_own_events(ray_session, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", kafka=KafkaSettings(partitions=1, consumer_group="g-restart"),
        pipeline=PipelineSettings(ingest_actors=1, shards=1), tenants={"acme": {}})
    assert settings.kafka.bootstrap_servers is None  # the embedded broker, started by each Platform
    base = (int(time.time() * 1000) // MINUTE - 10) * MINUTE
    said: list[str] = []
    first = _run(settings, [_event(i, base + i, impressions=1) for i in range(40)], said)
    assert first["acme"]["impressions"] == 40 and first["acme"]["events"] == 40
    save_tombstones(settings.raw_uri, "acme", ["f" * 64])  # a person forgotten during the first run
    # the second run repeats ids e0..e24 (a duplicate only within one stream) on fewer offsets than the first
    second = _run(settings, [_event(i, base + MINUTE + i, impressions=3) for i in range(25)], said)
    assert second == {"acme": {"events": 25, "impressions": 75, "clicks": 0, "conversions": 0, "cost": 0.0, "revenue": 0.0}}
    earlier = [p for p in (settings.data_dir / "previous").iterdir()]
    assert len(earlier) == 1 and sorted(p.name for p in earlier[0].iterdir()) == ["raw", "warehouse"]
    assert any(m.startswith(f"the previous run's warehouse and raw Parquet moved to {earlier[0]}:") for m in said)
    runs, size = earlier_runs(settings.data_dir)
    assert runs == 1 and size > 0
    assert f"{earlier[0].parent} holds 1 earlier run(s), {size / 2**20:,.1f} MiB; delete those you no longer need" in said
    assert load_tombstones(settings.raw_uri)["acme"] == frozenset({"f" * 64})  # still forgotten


def test_set_aside_moves_only_stores_that_hold_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    warehouse, raw, models = data / "warehouse", data / "raw", data / "models"
    assert set_aside_earlier_run(data, {"warehouse": warehouse, "raw": raw}) is None  # a first run: nothing
    assert earlier_runs(data) == (0, 0)
    (raw / "_tombstones").mkdir(parents=True)
    (raw / "_tombstones" / "acme.json").write_text("[]")
    assert set_aside_earlier_run(data, {"warehouse": warehouse, "raw": raw}) is None  # tombstones alone are no run
    warehouse.mkdir()
    (warehouse / "store").write_text("w")
    (raw / "tenant_id=acme").mkdir()
    models.mkdir()
    now = datetime(2026, 11, 29, 12, 0, 5, tzinfo=UTC)
    moved = set_aside_earlier_run(data, {"warehouse": warehouse, "raw": raw}, now)
    assert moved == data / "previous" / "2026-11-29T12-00-05Z"
    assert (moved / "warehouse" / "store").read_text() == "w" and (moved / "raw" / "tenant_id=acme").is_dir()
    assert not warehouse.exists() and sorted(p.name for p in raw.iterdir()) == ["_tombstones"]
    assert (raw / "_tombstones" / "acme.json").read_text() == "[]" and models.is_dir()
    warehouse.mkdir()
    (warehouse / "store").write_text("w2")
    assert set_aside_earlier_run(data, {"warehouse": warehouse}, now) == data / "previous" / "2026-11-29T12-00-05Z-1"
    assert earlier_runs(data) == (2, len("w") + len("[]") + len("w2"))  # files' bytes: store, tombstones, store


@pytest.mark.platform
def test_the_embedded_broker_refuses_a_clickhouse_database_with_applied_offsets(ray_session, tmp_path: Path) -> None:
    with EndpointProcess(tmp_path / "clickhouse") as endpoint:
        settings = load_settings(
            data_dir=tmp_path / "data", kafka=KafkaSettings(partitions=1, consumer_group="g-ch"),
            pipeline=PipelineSettings(ingest_actors=1, shards=1), tenants={"acme": {}},
            warehouse=WarehouseSettings(backend="clickhouse", url=endpoint.url))
        with open_warehouse(settings) as warehouse:
            for statement in pipeline_ddl(settings.warehouse.database):
                warehouse.execute(statement)
            warehouse.execute(f"INSERT INTO {settings.warehouse.database}.{KPI} (window, tenant_id, partition, "
                              f"first_offset, last_offset) VALUES ('{LEDGER_WINDOW}', 'acme', 0, 0, 39)")
        with pytest.raises(MktRayError, match="holds the offsets an earlier run applied"), Platform(settings, say=print):
            pass


@pytest.mark.platform
def test_a_topic_created_again_is_refused_and_a_plain_restart_is_not(broker, kafka_settings, ray_session,
                                                                       tmp_path: Path) -> None:
    def settings_for(kafka):
        return load_settings(data_dir=tmp_path / "data", kafka=kafka, pipeline=PipelineSettings(ingest_actors=1, shards=1),
                             tenants={"acme": {}})

    base = (int(time.time() * 1000) // MINUTE - 10) * MINUTE
    settings = settings_for(kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group="g-first", partitions=1))
    said: list[str] = []
    assert _run(settings, [_event(i, base + i, impressions=1) for i in range(40)], said)["acme"]["events"] == 40
    # the same warehouse on another topic, holding more messages than were applied (offsets alone cannot tell it
    # from the original; its id does), and on one holding fewer: as if the topic had been created again
    for held in (45, 10):
        again = settings_for(kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{held}", partitions=1))
        create_topics(settings.kafka.client_config(broker.bootstrap), again.kafka)
        produce_lines(again.kafka.client_config(broker.bootstrap), again.kafka.topic_events,
                      [_event(100 + i, base + i, impressions=5) for i in range(held)], lambda _: b"acme")
        with Platform(again, say=said.append) as platform:
            with pytest.raises(MktRayError, match=f"the warehouse has applied offsets of topic "
                                                  f"'{settings.kafka.topic_events}', not of '{again.kafka.topic_events}'"):
                platform.wait_until_assigned()
            assert platform.kpi_totals()["acme"]["events"] == 40  # nothing of the other topic counted
    # a restart on the topic it ran on takes over at the ledger (the broker's watermark answer may fall short
    # of the end, as Tansu's does for a batch of many messages: then the end is read exactly)
    assert _run(settings, [_event(200 + i, base + i, impressions=2) for i in range(5)], said)["acme"] == {
        "events": 45, "impressions": 50, "clicks": 0, "conversions": 0, "cost": 0.0, "revenue": 0.0}
    # the topic deleted and created again under its name, with more messages than were applied: told by its id
    conf, topic = settings.kafka.client_config(broker.bootstrap), settings.kafka.topic_events
    admin = AdminClient(conf)  # held until the future resolves: a destroyed client fails it
    admin.delete_topics([topic])[topic].result(timeout=30)
    create_topics(conf, settings.kafka)
    produce_lines(conf, topic, [_event(300 + i, base + i, impressions=7) for i in range(60)], lambda _: b"acme")
    with Platform(settings, say=said.append) as platform:
        with pytest.raises(MktRayError, match=f"topic '{topic}' was deleted and created again"):
            platform.wait_until_assigned()
        assert platform.kpi_totals()["acme"]["events"] == 45
