"""Create the platform's topics idempotently, with explicit retention configs.

Tansu 0.6.0 stores only the configs given at creation (DescribeConfigs of a topic created without configs
returns an empty set), so every topic is created with `retention.ms` and `retention.bytes` spelled out.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from mkt_ray.errors import BrokerError
from mkt_ray.kafka._connect import check_brokers
from mkt_ray.settings import KafkaSettings

_MS_PER_DAY = 86_400_000


def topic_names(kafka: KafkaSettings) -> list[str]:
    """The four topics: events, quarantine, signals, alerts."""
    return [kafka.topic_events, kafka.topic_quarantine, kafka.topic_signals, kafka.topic_alerts]


def topic_configs(kafka: KafkaSettings) -> dict[str, str]:
    """Topic-level configs every platform topic is created with."""
    return {"retention.ms": str(kafka.retention_days * _MS_PER_DAY), "retention.bytes": "-1"}


def create_topics(conf: dict[str, Any], kafka: KafkaSettings, timeout: float = 30.0) -> list[str]:
    """Create the four topics with `kafka.partitions` partitions each; an existing topic is left as it is.

    Returns the names of the topics this call created. Waits until the metadata lists every topic. An
    unreachable broker (wrong TLS trust, SASL credentials, address) is a BrokerError naming the cause.
    """
    check_brokers(conf, timeout)
    admin = AdminClient(conf)
    configs = topic_configs(kafka)
    wanted = [NewTopic(name, kafka.partitions, 1, config=configs) for name in topic_names(kafka)]
    futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(
                    f"cannot create topic {name!r} at {conf.get('bootstrap.servers')}: {exc}"
                ) from exc
    _wait_for_metadata(admin, topic_names(kafka), timeout)
    return created


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            topics = admin.list_topics(timeout=max(0.1, deadline - time.monotonic())).topics
        except KafkaException as exc:
            raise BrokerError(f"cannot list topics after creating {names}: {exc}") from exc
        missing = [
            n for n in names if n not in topics or topics[n].error is not None or not topics[n].partitions
        ]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise BrokerError(f"topics {missing} were created but not in the metadata after {timeout:.0f} s")
        time.sleep(0.1)
