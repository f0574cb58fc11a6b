"""The collector's backpressure over real HTTP: 429 with `Retry-After` while every request slot of the replica
is held by a request whose body is still arriving (and 202 once they end); 503 with `Retry-After` when the
producer queue stays full because Kafka takes nothing."""

from __future__ import annotations

import inspect
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from ray import serve

from mkt_ray.embedded import free_port
from mkt_ray.sources import EventCollector
from tests.serve._platform_api import event

pytestmark = pytest.mark.platform
SLOTS = inspect.signature(EventCollector).parameters["max_in_flight"].default  # the replica's collector's


def _hold(url: str, token: str) -> socket.socket:
    """A POST whose headers promise a body that never finishes: it keeps one collector slot."""
    parts = urlsplit(url)
    held = socket.create_connection((parts.hostname, parts.port), timeout=30)
    held.sendall((f"POST /v1/events HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[").encode())
    return held


def test_a_full_replica_answers_429_with_retry_after_then_serves_again(serve_api) -> None:
    token = serve_api.token("acme", "service")
    headers = {"Authorization": f"Bearer {token}"}
    body = json.dumps([event("bp-1", "touchpoint", 5, tenant="acme", source="meta", campaign_id="c", user_id="u")])
    held = [_hold(serve_api.url, token) for _ in range(SLOTS)]
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline:  # the held requests reach the replica one by one
            answer = httpx.post(serve_api.url + "/v1/events", content=b"[]", headers=headers, timeout=30)
            if answer.status_code == 429:
                break
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 429, answer.text if answer else "no answer"
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["error"] == "too_many_requests"
    finally:
        for connection in held:
            connection.close()
    deadline = time.monotonic() + 60
    while True:  # the held requests end as their clients go, and give their slots back
        answer = httpx.post(serve_api.url + "/v1/events", content=body, headers=headers, timeout=30)
        if answer.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1


def test_a_producer_queue_kafka_does_not_drain_answers_503_with_retry_after(serve_api) -> None:
    """A second app whose Kafka listens nowhere and whose producer queue holds 2 messages: 5 valid events
    fill it, the collector waits `queue_wait_s` (2 s) for room, then refuses the request."""
    kafka = serve_api.settings.kafka.model_copy(update={
        "bootstrap_servers": f"127.0.0.1:{free_port()}", "extra": {"queue.buffering.max.messages": "2"}})
    settings = serve_api.settings.model_copy(update={"kafka": kafka})
    from serve_apps.query import build_app

    serve.run(build_app(settings, (serve_api.store_name, serve_api.namespace)), name="mkt-api-stalled",
              route_prefix="/stalled")
    try:
        body = json.dumps([event(f"q-{n}", "touchpoint", 5, tenant="acme", source="meta", campaign_id="c", user_id="u")
                           for n in range(5)])
        answer = httpx.post(serve_api.url + "/stalled/v1/events", content=body, timeout=120,
                            headers={"Authorization": f"Bearer {serve_api.token('acme', 'service')}"})
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "2"
        assert answer.json()["error"] == "overloaded" and "producer queue" in answer.json()["message"]
    finally:
        serve.delete("mkt-api-stalled")
