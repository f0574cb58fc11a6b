"""Kafka helpers: topics, tuned client configs, fast produce, offsets. Works with Apache Kafka and Tansu."""

from mkt_ray.kafka._clients import consumer_config, producer_config
from mkt_ray.kafka._connect import check_brokers
from mkt_ray.kafka._consume import consume_all, data_messages
from mkt_ray.kafka._offsets import (
    check_applied_within,
    check_topic_identity,
    committed_offsets,
    topic_end_offsets,
    topic_id,
    topic_offset_bounds,
)
from mkt_ray.kafka._produce import flush_queued, produce_lines, queue_message, queue_messages, table_messages
from mkt_ray.kafka._topics import create_topics, topic_configs, topic_names

__all__ = [
    "check_applied_within",
    "check_brokers",
    "check_topic_identity",
    "committed_offsets",
    "consume_all",
    "data_messages",
    "consumer_config",
    "create_topics",
    "flush_queued",
    "produce_lines",
    "producer_config",
    "queue_message",
    "queue_messages",
    "table_messages",
    "topic_configs",
    "topic_end_offsets",
    "topic_offset_bounds",
    "topic_id",
    "topic_names",
]
