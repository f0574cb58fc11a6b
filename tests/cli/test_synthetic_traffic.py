"""`mkt-ray up`'s synthetic traffic: a run started later never repeats an earlier run's event ids (a platform
restarted on the same Kafka would drop repeats as duplicates, and its KPIs would stand still)."""

from __future__ import annotations

import argparse
import json
import threading
from types import SimpleNamespace

from mkt_ray.cli._up import TRAFFIC_CHUNK_S, synthetic_traffic
from mkt_ray.kafka import consume_all
from mkt_ray.settings import KafkaSettings


def test_runs_started_at_different_times_share_no_event_id(kafka_conf, new_topic) -> None:
    topic = new_topic(partitions=1)
    platform = SimpleNamespace(kafka_conf=kafka_conf, settings=SimpleNamespace(kafka=KafkaSettings(topic_events=topic)))
    rate = 20  # one chunk of TRAFFIC_CHUNK_S seconds per run
    args = argparse.Namespace(rate=rate, max_events=int(rate * TRAFFIC_CHUNK_S))
    started = 1_795_950_000.0
    for clock in (started, started + 600):  # the second run ten minutes later
        synthetic_traffic(platform, ["acme", "globex"], args, threading.Event(), clock=lambda at=clock: at)
    values = [value for _, _, _, value in consume_all(kafka_conf, topic, None)]
    runs = [values[: args.max_events], values[args.max_events :]]
    assert [len(run) for run in runs] == [100, 100]
    ids = [{i for i in map(_event_id, run) if i is not None} for run in runs]
    assert all(len(run_ids) > 80 for run_ids in ids)  # a few invalid or repeated messages are part of the traffic
    assert ids[0].isdisjoint(ids[1])


def _event_id(value: bytes) -> str | None:
    """The event id of a message, where it has one (the traffic includes invalid messages of every kind)."""
    try:
        event = json.loads(value)
    except ValueError:
        return None
    return event.get("event_id") if isinstance(event, dict) and isinstance(event.get("event_id"), str) else None
