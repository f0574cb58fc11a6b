"""Read a topic back (`consume_all`, a small helper for tests and the CLI), and the ingest loop's filter of
consumed messages (`data_messages`; the loop itself lives in actors/)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from mkt_ray.errors import BrokerError
from mkt_ray.kafka._clients import consumer_config
from mkt_ray.kafka._offsets import _partitions, topic_end_offsets

Record = tuple[int, int, bytes | None, bytes | None]


def consume_all(
    conf: dict[str, Any],
    topic: str,
    max_messages: int | None,
    timeout: float = 10.0,
    group_id: str | None = None,
    headers: bool = False,
) -> list[Record]:
    """Up to `max_messages` records of `topic` as (partition, offset, key, value), in arrival order.

    Without `group_id`, reads every partition from its start with no group. With one, joins that consumer
    group (starting from its committed offsets, else the earliest) and commits what it read before returning.
    Stops at `max_messages` or after `timeout` seconds, whichever comes first; `max_messages=None` means
    every message the topic holds now (its end offsets: exact for topics without transactions). With `headers`, each record
    has a fifth item: the message's headers as a list of (name, bytes).
    """
    if max_messages is None:
        max_messages = sum(topic_end_offsets(conf, topic, timeout).values())
    group = group_id or f"mkt-ray-reader-{uuid.uuid4().hex}"
    consumer = Consumer(consumer_config(conf, group))
    try:
        if group_id is None:
            parts = _partitions(consumer, topic, timeout)
            consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        else:
            consumer.subscribe([topic])
        records = _read(consumer, topic, max_messages, timeout, headers)
        if group_id is not None and records:
            consumer.commit(asynchronous=False)
        return records
    except KafkaException as exc:
        raise BrokerError(f"cannot consume topic {topic!r}: {exc}") from exc
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, max_messages: int, timeout: float, headers: bool = False) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < max_messages and time.monotonic() < deadline:
        for msg in consumer.consume(min(10_000, max_messages - len(records)), 0.1):
            err = msg.error()
            if err is not None:
                raise BrokerError(f"consuming topic {topic!r} partition {msg.partition()}: {err.str()}")
            record = (msg.partition(), msg.offset(), msg.key(), msg.value())
            records.append((*record, msg.headers() or []) if headers else record)
    return records


def data_messages(messages: list[Message]) -> list[Message]:
    """The consumed messages that carry data: partition-end events are dropped, any other error raises
    BrokerError. Errors are checked by a C-level map; only where one is set does a message get a Python call."""
    if list(map(Message.error, messages)).count(None) == len(messages):
        return messages
    return [m for m in messages if not _partition_end(m)]


def _partition_end(message: Message) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() == KafkaError._PARTITION_EOF:
        return True
    raise BrokerError(f"consume failed on {message.topic()}[{message.partition()}]: {error}")
