"""Pytest fixtures for the embedded Kafka-compatible broker: one broker for the whole test session.

Imported by tests/conftest.py. Fixtures are factories with keyword defaults where a test needs its own
topic, so tests never share data through a topic name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from mkt_ray.embedded import EmbeddedBroker
from mkt_ray.settings import KafkaSettings


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A running Tansu broker shared by every test of the session; its log is in the session's tmp dir."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture
def kafka_conf(broker: EmbeddedBroker) -> dict[str, Any]:
    """Base librdkafka properties for the session broker (a fresh dict per test)."""
    return KafkaSettings().client_config(broker.bootstrap)


@pytest.fixture
def new_topic(kafka_conf: dict[str, Any]) -> Callable[..., str]:
    """Factory: `new_topic(partitions=4, prefix="test")` creates a uniquely named topic and returns its name."""

    def create(partitions: int = 4, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        topic = NewTopic(name, partitions, 1, config={"retention.ms": "-1", "retention.bytes": "-1"})
        admin = AdminClient(kafka_conf)  # held until the future resolves: a destroyed client fails it
        admin.create_topics([topic])[name].result(timeout=30)
        return name

    return create


@pytest.fixture(scope="session")
def kafka_settings() -> Callable[..., KafkaSettings]:
    """Factory: KafkaSettings whose four topic names are unique to this call; keyword overrides apply."""

    def build(**overrides: Any) -> KafkaSettings:
        tag = uuid.uuid4().hex[:12]
        names = {
            "topic_events": f"events-{tag}",
            "topic_quarantine": f"quarantine-{tag}",
            "topic_signals": f"signals-{tag}",
            "topic_alerts": f"alerts-{tag}",
        }
        return KafkaSettings(**{**names, **overrides})

    return build
