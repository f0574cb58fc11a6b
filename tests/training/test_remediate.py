"""Remediation after a rule change (max allowed future skew raised): exactly the messages the new rule
accepts are produced again to marketing-events, once; a second run re-injects nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors.launcher import Platform
from mkt_ray.kafka import consume_all, produce_lines, topic_end_offsets
from mkt_ray.settings import PipelineSettings, load_settings

pytestmark = pytest.mark.platform
MINUTE = 60_000


def _event(i: int, ts_ms: int, **metrics) -> bytes:
    stamp = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"schema_version": 1, "event_id": f"e{i}", "tenant_id": "acme", "event_type": "ad_metrics",
                       "timestamp": stamp, "source": "meta", "campaign_id": "c1",
                       "performance_metrics": {"impressions": 10, **metrics}}).encode()


def _remediate(settings, data_dir: Path, max_future_s: int) -> dict:
    env = {**os.environ, "MKT_DATA_DIR": str(data_dir), "MKT_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "MKT_KAFKA__TOPIC_EVENTS": settings.kafka.topic_events, "MKT_CONTRACT__MAX_FUTURE_S": str(max_future_s),
           "MKT_TENANTS": json.dumps({"acme": {}})}
    done = subprocess.run([sys.executable, "-m", "training.remediate", "--tenant", "acme", "--reason", "future_timestamp"],
                          capture_output=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def test_rule_change_reinjects_exactly_the_newly_valid_messages_once(broker, kafka_settings, ray_session, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    tag = tmp_path.name.replace("_", "-")
    settings = load_settings(
        data_dir=tmp_path / "data",
        kafka=kafka_settings(bootstrap_servers=broker.bootstrap, consumer_group=f"g-{tag}", partitions=1),
        pipeline=PipelineSettings(ingest_actors=1, shards=1),
        tenants={"acme": {}},
    )
    soon = [_event(10 + i, now + 20 * MINUTE) for i in range(3)]  # 20 min ahead: refused at 300 s, fine at 3600 s
    lines = [_event(1, now - MINUTE), *soon[:2], _event(2, now + 180 * MINUTE), _event(3, now - MINUTE, impressions=-1),
             soon[2], _event(4, now - 2 * MINUTE)]
    with Platform(settings) as platform:
        platform.wait_until_assigned()
        produce_lines(platform.kafka_conf, settings.kafka.topic_events, lines, lambda _: b"acme")
        platform.wait_until_applied(topic_end_offsets(platform.kafka_conf, settings.kafka.topic_events), 180)
        assert platform.quarantine_counts() == {"future_timestamp": 4, "negative_metric": 1}
        conf = platform.kafka_conf
    first = _remediate(settings, tmp_path / "data", 3600)
    assert first == {"tenant": "acme", "reason": "future_timestamp", "examined": 4, "reinjected": 3,
                     "still_invalid": {"future_timestamp": 1}}
    second = _remediate(settings, tmp_path / "data", 3600)
    assert second == {"tenant": "acme", "reason": "future_timestamp", "examined": 1, "reinjected": 0,
                      "still_invalid": {"future_timestamp": 1}}
    assert topic_end_offsets(conf, settings.kafka.topic_events) == {0: len(lines) + 3}  # three more, no others
    topic = consume_all(conf, settings.kafka.topic_events, len(lines) + 3, timeout=60)
    assert [value for *_, value in topic] == [*lines, *soon]  # the three, in their original order, once
    assert all(key == b"acme" for _, _, key, _ in topic[len(lines):])
