"""The backlog `mkt-ray up` reports: messages on the events topic that the warehouse's ledger has not reached."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from actors.launcher import Platform
from mkt_ray.kafka import produce_lines, topic_end_offsets
from mkt_ray.settings import KafkaSettings, PipelineSettings, load_settings
from tests.contract.factories import encode, make_event


@pytest.mark.platform
def test_backlog_is_the_messages_not_applied_yet(ray_session, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", kafka=KafkaSettings(partitions=2, consumer_group="g-backlog"),
        pipeline=PipelineSettings(ingest_actors=1, shards=1), tenants={"acme": {}})
    said: list[str] = []
    with Platform(settings, say=said.append) as platform:
        platform.wait_until_assigned()
        conf, topic = platform.kafka_conf, settings.kafka.topic_events
        assert platform.backlog() == 0  # nothing produced yet
        # one tenant, so one of the two partitions: the other has no message and no ledger entry
        produce_lines(conf, topic, [encode(make_event("ad_metrics", event_id=f"e{i}")) for i in range(40)],
                      lambda _: b"acme")
        platform.wait_until_applied(topic_end_offsets(conf, topic), 60)
        assert platform.backlog() == 0
        ray.kill(platform.ingest[0], no_restart=True)  # nothing consumes from here on
        produce_lines(conf, topic, [encode(make_event("ad_metrics", event_id=f"later{i}")) for i in range(25)],
                      lambda _: b"acme")
        assert platform.backlog() == 25
        assert sorted(topic_end_offsets(conf, topic).values()) == [0, 65]
