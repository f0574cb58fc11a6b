"""The collector's logic on the real broker: verdicts per message, idempotent retries, backpressure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mkt_ray.embedded import free_port
from mkt_ray.errors import BackpressureError
from mkt_ray.kafka import consume_all
from mkt_ray.sources import BodyError, EventCollector, RecentIds, TooManyRequests, split_body


def _event(event_id: str, tenant: str = "acme", **extra: object) -> bytes:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return json.dumps({"schema_version": 1, "event_id": event_id, "tenant_id": tenant, "event_type": "touchpoint",
                       "timestamp": ts, "source": "meta", "campaign_id": "c1", "user_id": "u1", **extra}).encode()


def test_split_body_reads_arrays_and_ndjson_exactly() -> None:
    assert split_body(b' [ {"a": 1.50},\n{"b":[2]} ] ', 10) == [b'{"a": 1.50}', b'{"b":[2]}']
    assert split_body(b'{"a":1}\r\n\n{"b":2}\n', 10) == [b'{"a":1}', b'{"b":2}']
    for body, code in ((b"  ", "empty_body"), (b"[1, 2", "invalid_json"), (b"[1,2,3]", "too_many_events")):
        with pytest.raises(BodyError) as caught:
            split_body(body, 2)
        assert caught.value.code == code


def test_recent_ids_stay_bounded() -> None:
    recent = RecentIds(3)
    recent.add([("t", str(i)) for i in range(5)])
    assert len(recent) == 3 and ("t", "1") not in recent and ("t", "4") in recent


def test_collect_produces_valid_events_once(kafka_conf, new_topic) -> None:
    topic = new_topic(partitions=2)
    collector = EventCollector(kafka_conf, topic, ["acme", "globex"])
    body = [_event("e1"), _event("e2"), _event("e1"), _event("e3", tenant="globex"), _event("e4", colour="red"),
            b"not json"]
    verdict = collector.collect("acme", body)
    assert verdict.body() == {"accepted": 2, "duplicates": 1, "rejected": 3,
                              "reasons": {"tenant_mismatch": 1, "unknown_field": 1, "invalid_json": 1},
                              "errors": [{"index": 3, "reason": "tenant_mismatch"},
                                         {"index": 4, "reason": "unknown_field"},
                                         {"index": 5, "reason": "invalid_json"}]}
    retry = collector.collect("acme", [_event("e2"), _event("e5")])  # a client retrying with one new event
    assert (retry.accepted, retry.duplicates) == (1, 1)
    records = consume_all(kafka_conf, topic, 4, timeout=2)  # one more than expected: a repeat would show
    assert sorted(json.loads(value)["event_id"] for _, _, _, value in records) == ["e1", "e2", "e5"]
    assert {key for _, _, key, _ in records} == {b"acme"}
    collector.close()


def test_backpressure_when_slots_or_the_producer_queue_are_full() -> None:
    nowhere = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "queue.buffering.max.messages": 2}
    collector = EventCollector(nowhere, "events", ["acme"], max_in_flight=1, queue_wait_s=0.2, flush_timeout_s=0.2)
    with collector.slot(), pytest.raises(TooManyRequests) as caught, collector.slot():
        pass
    assert caught.value.retry_after == 1.0
    with pytest.raises(BackpressureError) as full:
        collector.collect("acme", [_event(f"e{i}") for i in range(5)])
    assert not isinstance(full.value, TooManyRequests) and full.value.retry_after >= 1.0
    assert len(collector.recent) == 0  # nothing was confirmed, so a retry sends everything again
