"""End offsets and committed offsets of a topic's partitions.

Tansu 0.6.0 answers ListOffsets(latest) with the *base offset of the last record batch* + 1 rather than the
offset after its last record (1,000 messages in one batch report 1, not 1,000), while the high watermark in its
Fetch responses is right. So end offsets are read from a fetch at (ListOffsets - 1): on Apache Kafka that is
the last record and gives the same answer as ListOffsets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from mkt_ray.errors import BrokerError


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        reason = meta.error if meta is not None else "not found"
        raise BrokerError(f"topic {topic!r} has no partitions ({reason}); create it first (create_topics)")
    return sorted(meta.partitions)


def _offset_reader(conf: dict[str, Any], group_id: str | None = None) -> Consumer:
    group = group_id or f"mkt-ray-offsets-{uuid.uuid4().hex}"
    return Consumer({**conf, "group.id": group, "enable.auto.commit": False, "enable.partition.eof": True})


def topic_end_offsets(conf: dict[str, Any], topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The high watermark (offset after the last message) of every partition of `topic`."""
    return {p: high for p, (_, high) in topic_offset_bounds(conf, topic, timeout).items()}


def topic_offset_bounds(conf: dict[str, Any], topic: str, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
    """(low, high) watermarks of every partition of `topic`: the first offset still held (retention removes
    older ones) and the offset after the last message."""
    consumer = _offset_reader(conf)
    try:
        parts = _partitions(consumer, topic, timeout)
        listed = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout) for p in parts}
        ends = {p: high for p, (low, high) in listed.items() if high <= low}
        probe = [TopicPartition(topic, p, high - 1) for p, (low, high) in listed.items() if high > low]
        ends.update(_fetched_high_watermarks(consumer, topic, probe, timeout))
        return {p: (min(listed[p][0], ends[p]), ends[p]) for p in sorted(ends)}
    except KafkaException as exc:
        raise BrokerError(f"cannot read the end offsets of topic {topic!r}: {exc}") from exc
    finally:
        consumer.close()


def _fetched_high_watermarks(
    consumer: Consumer, topic: str, probe: list[TopicPartition], timeout: float
) -> dict[int, int]:
    """Fetch once at each probe offset and read the high watermark the Fetch response carried."""
    if not probe:
        return {}
    consumer.assign(probe)
    pending = {tp.partition for tp in probe}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.1):
            err = msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise BrokerError(f"fetching topic {topic!r} partition {msg.partition()}: {err.str()}")
            pending.discard(msg.partition())
    if pending:
        raise BrokerError(
            f"topic {topic!r} partitions {sorted(pending)} did not answer a fetch in {timeout:.0f} s"
        )
    return {tp.partition: consumer.get_watermark_offsets(tp, cached=True)[1] for tp in probe}


def committed_offsets(conf: dict[str, Any], group: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The offsets `group` committed on each partition of `topic`; partitions with no commit are left out."""
    consumer = _offset_reader(conf, group)
    try:
        parts = _partitions(consumer, topic, timeout)
        committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(
            f"cannot read the offsets group {group!r} committed on topic {topic!r}: {exc}"
        ) from exc
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}


_FRESH_STORES = "point the platform at a fresh warehouse.database and raw store for this topic, or at the topic it ran on"


def check_applied_within(consumer: Consumer, conf: dict[str, Any], topic: str, applied: dict[int, int],
                         timeout: float = 10.0) -> None:
    """BrokerError where a partition of `topic` ends at or before the offset the warehouse says was applied
    there: the topic was created again (offsets restart at 0) or the broker lost messages, and its messages up
    to that offset would be taken for applied ones. The member's watermark answer first; Tansu's can fall short
    of the end (module docstring), so a partition it leaves in doubt is read exactly."""
    claimed = {p: a for p, a in applied.items() if a >= 0}
    doubtful = [p for p, a in claimed.items()
                if consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] <= a]
    if not doubtful:
        return
    ends = topic_end_offsets(conf, topic, timeout)
    behind = {p: ends.get(p, 0) for p in doubtful if ends.get(p, 0) <= claimed[p]}
    if behind:
        where = ", ".join(f"partition {p} ends at offset {end} but {claimed[p]} was applied" for p, end in behind.items())
        raise BrokerError(
            f"topic {topic!r} holds fewer messages than the warehouse has applied ({where}): it was created again "
            f"or the broker lost messages. Its messages up to the applied offsets would be skipped; {_FRESH_STORES}")


_NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"  # the all-zero id: a broker that gives topics no id


def topic_id(conf: dict[str, Any], topic: str, timeout: float = 10.0) -> str | None:
    """The id the broker gave `topic` when it was created (Kafka 2.8+ and Tansu; a topic deleted and created
    again gets a new one), as text; None where the broker gives topics no id."""
    admin = AdminClient(conf)
    try:
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic].result()
    except KafkaException as exc:
        raise BrokerError(f"cannot describe topic {topic!r}: {exc.args[0] if exc.args else exc}") from exc
    found = str(described.topic_id) if described.topic_id is not None else None
    return None if found in (None, _NO_TOPIC_ID) else found


def check_topic_identity(conf: dict[str, Any], topic: str, recorded: Callable[[], tuple[str, str] | None],
                         record: Callable[[str, str], None], applied: bool, timeout: float = 10.0) -> None:
    """BrokerError where `topic` is not the topic the warehouse's ledger was written from while offsets were
    `applied`: `recorded()` names that topic and its id (see `topic_id`; "" where the broker gives none), and
    another name, or the same name with another id (deleted and created again), is refused. Unlike
    `check_applied_within`, this tells such a topic from the original however many messages it holds. A topic
    first seen, or seen while nothing was applied, is `record`ed."""
    current = (topic, topic_id(conf, topic, timeout) or "")
    before = recorded()
    if before == current:
        return
    if before is not None and applied:
        (name, before_id), now_id = before, current[1]
        if name != topic:
            raise BrokerError(
                f"the warehouse has applied offsets of topic {name!r}, not of {topic!r}: the messages of {topic!r} up "
                f"to those offsets would be skipped; {_FRESH_STORES}")
        if before_id and now_id and before_id != now_id:
            raise BrokerError(
                f"topic {topic!r} was deleted and created again (its id is {now_id}; the warehouse has applied "
                f"offsets of the topic with id {before_id}): its messages up to those offsets would be skipped; "
                f"{_FRESH_STORES}")
    record(*current)
