"""Kafka over TLS: the embedded broker behind a generated self-signed certificate.

Admin (topic creation), producer and consumer (with and without a group, as the ingest members read)
all take their security properties from `KafkaSettings.client_config`; a client that does not trust the
certificate, or speaks plaintext to the TLS listener, gets our error naming the cause.
"""

from __future__ import annotations

import socket
import ssl
import uuid
from collections.abc import Iterator

import pytest

from mkt_ray.embedded import CertificatePair, EmbeddedBroker, self_signed_certificate
from mkt_ray.errors import BrokerError
from mkt_ray.kafka import check_brokers, consume_all, create_topics, produce_lines, topic_end_offsets
from mkt_ray.settings import KafkaSettings


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertificatePair]:
    root = tmp_path_factory.mktemp("certs")
    return {"server": self_signed_certificate(root / "server"), "stranger": self_signed_certificate(root / "stranger")}


@pytest.fixture(scope="module")
def tls_broker(certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("tls-broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path, tls=certs["server"]) as running:
        yield running


def tls_settings(ca, **overrides) -> KafkaSettings:
    tag = uuid.uuid4().hex[:10]
    return KafkaSettings(security_protocol="SSL", ssl_ca_location=ca, topic_events=f"tls-events-{tag}",
                         topic_quarantine=f"tls-q-{tag}", topic_signals=f"tls-s-{tag}", topic_alerts=f"tls-a-{tag}",
                         partitions=2, **overrides)


def test_the_listener_speaks_tls_with_the_generated_certificate(tls_broker, certs):
    host, port = tls_broker.bootstrap.split(":")
    context = ssl.create_default_context(cafile=str(certs["server"].cert))
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        served = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
    assert served.strip() == certs["server"].cert.read_text().strip()


def test_produce_and_consume_through_tls(tls_broker, certs):
    settings = tls_settings(certs["server"].cert)
    conf = settings.client_config(tls_broker.bootstrap)
    assert (conf["security.protocol"], conf["ssl.ca.location"]) == ("SSL", str(certs["server"].cert))
    assert sorted(create_topics(conf, settings)) == sorted(
        [settings.topic_events, settings.topic_quarantine, settings.topic_signals, settings.topic_alerts])
    lines = [f'{{"n": {i}, "tenant_id": "t{i % 3}"}}'.encode() for i in range(500)]
    assert produce_lines(conf, settings.topic_events, lines, lambda line: line[-4:-2]) == 500
    assert sum(topic_end_offsets(conf, settings.topic_events).values()) == 500
    read = consume_all(conf, settings.topic_events, 500, timeout=30)
    assert sorted(value for _, _, _, value in read) == sorted(lines)
    grouped = consume_all(conf, settings.topic_events, 500, timeout=30, group_id=f"g-{uuid.uuid4().hex[:8]}")
    assert len(grouped) == 500


def test_untrusted_certificate_is_a_clear_error(tls_broker, certs):
    settings = tls_settings(certs["stranger"].cert)
    with pytest.raises(BrokerError, match="TLS certificate is not trusted: kafka.ssl_ca_location must name the CA"):
        create_topics(settings.client_config(tls_broker.bootstrap), settings, timeout=20)


def test_plaintext_client_against_the_tls_listener_is_a_clear_error(tls_broker):
    conf = KafkaSettings().client_config(tls_broker.bootstrap)
    with pytest.raises(BrokerError, match=r"over PLAINTEXT: no broker answered: .*security_protocol"):
        check_brokers(conf, timeout=3)


def test_unreadable_ca_file_is_a_clear_error(tls_broker, tmp_path):
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(BrokerError, match="ssl_ca_location cannot be read"):
        check_brokers(tls_settings(bogus).client_config(tls_broker.bootstrap), timeout=3)
