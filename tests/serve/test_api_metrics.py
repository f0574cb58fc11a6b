"""Requests through real Serve are counted in the API latency histogram of Ray's Prometheus endpoint,
labelled by route template and status (never by the raw path)."""

from __future__ import annotations

import time

from tests.observability._scrape import scrape

ROUTE = "/v1/tenants/{tenant}/campaigns/performance"


def _counts() -> dict[str, float]:
    samples = scrape().get("ray_mkt_api_latency_ms_count", [])
    totals: dict[str, float] = {}
    for labels, value in samples:
        if labels.get("route") == ROUTE:
            totals[labels["status"]] = totals.get(labels["status"], 0.0) + value
    return totals


def test_requests_are_exported_by_route_and_status(serve_api):
    before = _counts()
    for _ in range(5):
        assert serve_api.get("/v1/tenants/acme/campaigns/performance").status_code == 200
    for _ in range(3):  # another tenant's data: 403 from the same route
        assert serve_api.get("/v1/tenants/globex/campaigns/performance", tenant="acme").status_code == 403
    expected = {"200": before.get("200", 0.0) + 5, "403": before.get("403", 0.0) + 3}
    deadline = time.monotonic() + 60  # Ray exports metrics every few seconds
    while (after := _counts()) != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert after == expected
