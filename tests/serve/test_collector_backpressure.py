"""The collector's 429 over real HTTP: with every request slot of the replica held by a request whose body
is still arriving, the next request is refused at once with `Retry-After`, and served again once they end."""

from __future__ import annotations

import inspect
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

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
