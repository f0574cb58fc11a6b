"""Kafka helpers against the real embedded broker (Tansu): topics, configs, produce, consume, offsets."""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from mkt_ray.embedded import free_port
from mkt_ray.errors import BrokerError
from mkt_ray.kafka import (
    check_applied_within,
    check_topic_identity,
    committed_offsets,
    consume_all,
    consumer_config,
    create_topics,
    produce_lines,
    producer_config,
    queue_message,
    queue_messages,
    table_messages,
    topic_end_offsets,
    topic_id,
    topic_names,
    topic_offset_bounds,
)
from mkt_ray.settings import KafkaSettings

DAY_MS = 86_400_000


def event_line(i: int, tenants: int = 7) -> bytes:
    """A 300-byte JSON line whose first field is its tenant."""
    head = b'{"tenant_id":"t%02d","seq":%08d,"pad":"' % (i % tenants, i)
    return head + b"x" * (300 - len(head) - 2) + b'"}'


def tenant_key(line: bytes) -> bytes:
    return line[14:17]


def test_create_topics_partitions_and_retention(kafka_conf: dict[str, Any], kafka_settings: Callable) -> None:
    kafka = kafka_settings(partitions=3, retention_days=7)
    assert sorted(create_topics(kafka_conf, kafka)) == sorted(topic_names(kafka))
    admin = AdminClient(kafka_conf)
    metadata = admin.list_topics(timeout=10).topics
    assert {name: len(metadata[name].partitions) for name in topic_names(kafka)} == dict.fromkeys(
        topic_names(kafka), 3
    )
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topic_names(kafka)]
    for future in admin.describe_configs(resources).values():
        configs = future.result(timeout=10)
        assert (configs["retention.ms"].value, configs["retention.bytes"].value) == (str(7 * DAY_MS), "-1")


def test_create_topics_twice_is_fine(kafka_conf: dict[str, Any], kafka_settings: Callable) -> None:
    kafka = kafka_settings(partitions=2)
    assert len(create_topics(kafka_conf, kafka)) == 4
    assert create_topics(kafka_conf, kafka) == []
    metadata = AdminClient(kafka_conf).list_topics(timeout=10).topics
    assert [len(metadata[name].partitions) for name in topic_names(kafka)] == [2, 2, 2, 2]


def test_produce_consume_commit_round_trip(kafka_conf: dict[str, Any], new_topic: Callable[..., str]) -> None:
    topic, group, n = new_topic(partitions=4), f"group-{uuid.uuid4().hex[:8]}", 25_000
    lines = [event_line(i) for i in range(n)]
    seen: list[int] = []
    assert produce_lines(kafka_conf, topic, lines, tenant_key, progress=seen.append) == n
    assert seen == [10_000, 20_000, 25_000]

    ends = topic_end_offsets(kafka_conf, topic)
    assert sorted(ends) == [0, 1, 2, 3] and sum(ends.values()) == n
    assert committed_offsets(kafka_conf, group, topic) == {}

    records = consume_all(kafka_conf, topic, max_messages=n, timeout=30, group_id=group)
    assert sorted(value for _, _, _, value in records) == sorted(lines)
    assert all(value is not None and key == tenant_key(value) for _, _, key, value in records)
    # one key, one partition; offsets per partition are exactly 0..count-1
    assert all(len({p for p, _, k, _ in records if k == key}) == 1 for key in {r[2] for r in records})
    per_partition = Counter(p for p, _, _, _ in records)
    assert {p: sorted(o for q, o, _, _ in records if q == p) for p in per_partition} == {
        p: list(range(count)) for p, count in per_partition.items()
    }
    assert dict(per_partition) == {p: end for p, end in ends.items() if end}
    assert committed_offsets(kafka_conf, group, topic) == {p: end for p, end in ends.items() if end}


def test_end_offsets_count_records_not_batches(
    kafka_conf: dict[str, Any], new_topic: Callable[..., str]
) -> None:
    # Tansu's ListOffsets says "last batch base offset + 1"; 3 produce calls of batched records must still read 3 * 1000
    topic = new_topic(partitions=1)
    for _ in range(3):
        produce_lines(kafka_conf, topic, (event_line(i) for i in range(1000)), lambda line: None)
    assert topic_end_offsets(kafka_conf, topic) == {0: 3000}
    assert topic_offset_bounds(kafka_conf, topic) == {0: (0, 3000)}  # nothing removed by retention


def test_empty_topic_offsets(kafka_conf: dict[str, Any], new_topic: Callable[..., str]) -> None:
    topic = new_topic(partitions=2)
    assert topic_end_offsets(kafka_conf, topic) == {0: 0, 1: 0}
    assert produce_lines(kafka_conf, topic, [], tenant_key) == 0
    assert consume_all(kafka_conf, topic, max_messages=1, timeout=0.5) == []


def test_consume_all_without_group_reads_from_start(
    kafka_conf: dict[str, Any], new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=1)
    produce_lines(kafka_conf, topic, [b"a", b"b", b"c"], lambda line: None)
    assert consume_all(kafka_conf, topic, max_messages=3) == [
        (0, 0, None, b"a"),
        (0, 1, None, b"b"),
        (0, 2, None, b"c"),
    ]
    assert consume_all(kafka_conf, topic, max_messages=2) == [(0, 0, None, b"a"), (0, 1, None, b"b")]


def test_offsets_of_a_missing_topic_is_an_error(kafka_conf: dict[str, Any]) -> None:
    with pytest.raises(BrokerError, match="no partitions"):
        topic_end_offsets({**kafka_conf, "allow.auto.create.topics": False}, f"missing-{uuid.uuid4().hex}")


def test_undeliverable_messages_raise() -> None:
    conf = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 500, "log_level": 0}
    with pytest.raises(BrokerError, match="2 of 2 messages to topic 'nowhere' were not delivered"):
        produce_lines(conf, "nowhere", [b"a", b"b"], lambda line: None)


def test_a_full_producer_queue_drains_and_every_message_arrives(
    kafka_conf: dict[str, Any], new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=1)
    producer = Producer(producer_config({**kafka_conf, "queue.buffering.max.messages": 2, "linger.ms": 0}))
    for i in range(40):  # the queue holds 2: most calls find it full and wait for it to drain
        queue_message(producer, topic, b"m%02d" % i, b"k", headers=[("n", str(i))])
    assert producer.flush(30) == 0
    records = consume_all(kafka_conf, topic, 40, headers=True)
    assert [value for _, _, _, value, _ in records] == [b"m%02d" % i for i in range(40)]
    assert [dict(headers)["n"] for *_, headers in records] == [str(i).encode() for i in range(40)]


def test_many_messages_through_a_full_queue_arrive_in_order_with_their_keys(
    kafka_conf: dict[str, Any], new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=1)
    producer = Producer(producer_config({**kafka_conf, "queue.buffering.max.messages": 3, "linger.ms": 0}))
    pairs = [(b"k%02d" % (i % 5), b"m%02d" % i) for i in range(40)]
    queue_messages(producer, topic, iter(pairs))  # any iterable; the queue holds 3, so most wait for it to drain
    assert producer.flush(30) == 0
    records = consume_all(kafka_conf, topic, 40)
    assert [(key, value) for _, _, key, value in records] == pairs


def test_a_queue_that_never_drains_is_an_error_after_the_wait() -> None:
    conf = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "queue.buffering.max.messages": 1, "log_level": 0}
    producer = Producer(producer_config(conf))
    queue_message(producer, "nowhere", b"first")
    with pytest.raises(BrokerError, match="producer queue for topic 'nowhere' stayed full for 0.3 s"):
        queue_message(producer, "nowhere", b"second", wait_s=0.3)
    producer.purge()


def test_client_configs_keep_caller_keys() -> None:
    base = {"bootstrap.servers": "h:1", "linger.ms": 50}
    produced = producer_config(base)
    assert (produced["linger.ms"], produced["compression.type"], produced["enable.idempotence"]) == (
        50,
        "lz4",
        True,
    )
    consumed = consumer_config({**base, "group.id": "ignored"}, "ingest")
    assert (consumed["group.id"], consumed["enable.auto.commit"], consumed["auto.offset.reset"]) == (
        "ingest",
        False,
        "earliest",
    )
    assert base == {"bootstrap.servers": "h:1", "linger.ms": 50}
    assert KafkaSettings().client_config("h:1") == {
        "bootstrap.servers": "h:1",
        "security.protocol": "PLAINTEXT",
    }


def test_table_messages_equal_a_row_by_row_reference() -> None:
    table = pa.table({
        "tenant_id": ["acme", "acme", "globex"], "campaign_id": ["c1", None, "c/2"], "start": [0, 60_000, -5],
        "ctr": [0.1, float("nan"), 1 / 3], "events": [1, 2, None], "rule": ["", "ctr_below", ""],
    })
    got = table_messages(table, ("tenant_id", "campaign_id", "start", "rule"))
    expected = [("/".join(str(row[k]) for k in ("tenant_id", "campaign_id", "start", "rule")).encode(),
                 {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
                for row in table.to_pylist()]
    assert [(key, json.loads(value)) for key, value in got] == expected
    assert [key for key, _ in got] == [b"acme/c1/0/", b"acme/None/60000/ctr_below", b"globex/c/2/-5/"]
    assert got[0][1] == b'{"tenant_id":"acme","campaign_id":"c1","start":0,"ctr":0.1,"events":1,"rule":""}'
    assert table_messages(table.slice(0, 0), ("tenant_id",)) == []


def test_a_topic_created_again_has_another_id(kafka_conf: dict[str, Any], new_topic: Callable[..., str]) -> None:
    name = new_topic(partitions=1)
    first = topic_id(kafka_conf, name)
    assert first is not None and first == topic_id(kafka_conf, name)  # Tansu gives topics ids; stable
    admin = AdminClient(kafka_conf)
    admin.delete_topics([name])[name].result(timeout=30)
    admin.create_topics([NewTopic(name, 1, 1, config={"retention.ms": "-1"})])[name].result(timeout=30)
    assert topic_id(kafka_conf, name) not in (None, first)


def test_topic_identity_records_a_topic_and_refuses_another_once_offsets_were_applied(
        kafka_conf: dict[str, Any], new_topic: Callable[..., str]) -> None:
    name = new_topic(partitions=1)
    current, other_id = (name, topic_id(kafka_conf, name)), "AaIoU6+ZdTCGj6x7OG9riA"
    stored: list[tuple[str, str]] = []

    def check(before: tuple[str, str] | None, applied: bool) -> list[tuple[str, str]]:
        stored.clear()
        check_topic_identity(kafka_conf, name, lambda: before, lambda *row: stored.append(row), applied)
        return list(stored)

    assert check(None, applied=False) == [current]  # first seen: recorded
    assert check(None, applied=True) == [current]  # a ledger from before topics were recorded: recorded
    assert check(current, applied=True) == []  # the same topic: nothing to do
    assert check((name, other_id), applied=False) == [current]  # nothing applied from the other: recorded
    assert check(("events-old", other_id), applied=False) == [current]
    assert check((name, ""), applied=True) == [current]  # recorded from a broker without ids: the name matches
    with pytest.raises(BrokerError) as created_again:
        check((name, other_id), applied=True)
    assert str(created_again.value) == (
        f"topic '{name}' was deleted and created again (its id is {current[1]}; the warehouse has applied offsets "
        f"of the topic with id {other_id}): its messages up to those offsets would be skipped; point the platform "
        "at a fresh warehouse.database and raw store for this topic, or at the topic it ran on")
    with pytest.raises(BrokerError, match=f"the warehouse has applied offsets of topic 'events-old', not of '{name}': "
                                          f"the messages of '{name}' up to those offsets would be skipped"):
        check(("events-old", current[1]), applied=True)
    assert stored == []  # refused: the record stays


def test_applied_offsets_beyond_a_partitions_end_are_refused(
        kafka_conf: dict[str, Any], new_topic: Callable[..., str]) -> None:
    """For brokers without topic ids, and brokers that lost messages: where a partition ends decides."""
    name = new_topic(partitions=2)
    producer = Producer(kafka_conf)
    for i in range(10):
        producer.produce(name, b"m%d" % i, partition=0)
    producer.flush(30)
    consumer = Consumer({**kafka_conf, "group.id": f"g-{uuid.uuid4().hex}"})
    try:
        check_applied_within(consumer, kafka_conf, name, {0: 9, 1: -1})  # the last message applied: fine
        with pytest.raises(BrokerError, match=r"holds fewer messages than the warehouse has applied \(partition 0 "
                                              r"ends at offset 10 but 10 was applied\)"):
            check_applied_within(consumer, kafka_conf, name, {0: 10, 1: -1})
    finally:
        consumer.close()
