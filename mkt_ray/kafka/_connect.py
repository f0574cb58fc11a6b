"""First contact with the brokers: fail with the cause in words, not librdkafka's retry loop.

librdkafka reports a TLS or SASL failure only through its error callback and keeps retrying; the call
that needed the broker then times out with "Broker transport failure". `check_brokers` collects those
callback errors and names the cause and the setting that fixes it.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from mkt_ray.errors import BrokerError

# (substring of librdkafka's error text, what it means and which setting fixes it)
_CAUSES = (
    ("certificate verify failed",
     "the broker's TLS certificate is not trusted: kafka.ssl_ca_location must name the CA that signed it "
     "(and the certificate must be valid for the host name in kafka.bootstrap_servers)"),
    ("SSL handshake failed",
     "the TLS handshake failed: check kafka.security_protocol (SSL / SASL_SSL) against the listener, and "
     "kafka.ssl_ca_location, ssl_certificate_location and ssl_key_location"),
    ("SASL authentication",
     "SASL authentication failed: check kafka.sasl_mechanism, sasl_username and sasl_password"),
    ("ssl.ca.location",
     "kafka.ssl_ca_location cannot be read as a PEM file of CA certificates"),
)


def check_brokers(conf: dict[str, Any], timeout: float = 15.0) -> None:
    """Raise BrokerError naming the cause unless the brokers in `conf` answer a Metadata request."""
    errors: list[str] = []
    servers = conf.get("bootstrap.servers")
    protocol = conf.get("security.protocol", "PLAINTEXT")
    try:
        admin = AdminClient({**conf, "error_cb": lambda err: errors.append(str(err)), "log_level": 0})
    except KafkaException as exc:  # a property librdkafka refuses (a CA file that is not PEM, ...)
        raise BrokerError(f"Kafka client settings for {servers} are not usable: {_cause(str(exc))}") from exc
    deadline = time.monotonic() + timeout
    while True:  # in slices, so a TLS or SASL failure (known after the first handshake) ends the wait
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            last = str(exc.args[0]) if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
        admin.poll(0)  # serves error_cb
        if time.monotonic() >= deadline or any(_known(error) for error in errors):
            break
    detail = "; ".join(list(dict.fromkeys([*errors, last]))[:2])  # librdkafka repeats itself
    raise BrokerError(f"cannot reach Kafka at {servers} over {protocol}: {_cause(detail)} (librdkafka: {detail})")


def _known(detail: str) -> bool:
    return any(needle.lower() in detail.lower() for needle, _ in _CAUSES)


def _cause(detail: str) -> str:
    for needle, cause in _CAUSES:
        if needle.lower() in detail.lower():
            return cause
    return ("no broker answered: check kafka.bootstrap_servers, and kafka.security_protocol against what the "
            "listener expects (a TLS listener closes plaintext connections)")
