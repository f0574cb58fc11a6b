"""Embedded stand-ins for the production services: the Kafka-compatible broker (Tansu)."""

from mkt_ray.embedded._broker import EmbeddedBroker, free_port

__all__ = ["EmbeddedBroker", "free_port"]
