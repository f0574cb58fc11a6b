"""The collector through real Serve, Kafka and the pipeline: posted events (contract, Segment, PostHog)
appear in the KPIs exactly once; malformed input gets a 4xx with reasons."""

from __future__ import annotations

import json

import pytest

from serve_apps.collector import MAX_BODY_BYTES
from tests.serve._platform_api import event, metric_totals, platform_api, platform_settings

pytestmark = pytest.mark.platform
TOUCH = {"source": "google_ads", "campaign_id": "spring", "user_id": "u1"}


def _touch(n: int, tenant: str = "acme") -> dict:
    return event(f"t{n}", "touchpoint", 30 - n, tenant=tenant, **TOUCH,
                 performance_metrics={"impressions": 1 + n % 3, "clicks": n % 2, "cost": 0.25 * n})


def test_posted_events_reach_the_kpis_once(broker, serve_api, tmp_path) -> None:
    settings = platform_settings(broker.bootstrap, tmp_path / "data", ["acme", "globex"])
    first = [_touch(n) for n in range(12)]
    conversion = event("c1", "conversion", 2, user_id="u1", performance_metrics={"revenue": 40.0})
    with platform_api(settings, serve_api.url) as api:
        body = [*first, first[0], _touch(9, tenant="globex"), {**_touch(50), "colour": "red"}]
        answer = api.request("POST", "/v1/events", content=json.dumps(body))
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"accepted": 12, "duplicates": 1, "rejected": 2,
                                 "reasons": {"tenant_mismatch": 1, "unknown_field": 1},
                                 "errors": [{"index": 13, "reason": "tenant_mismatch"},
                                            {"index": 14, "reason": "unknown_field"}]}
        ndjson = "\n".join(json.dumps(e) for e in [*first[:4], conversion])  # a retry with one new event
        answer = api.request("POST", "/v1/events", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
        assert (answer.status_code, answer.json()["accepted"], answer.json()["duplicates"]) == (202, 1, 4)

        ts = event("x", "touchpoint", 3)["timestamp"]
        segment = {"batch": [{"type": "page", "messageId": "s1", "anonymousId": "an1", "timestamp": ts,
                              "context": {"campaign": {"name": "fall", "source": "meta"}}},
                             {"type": "page", "messageId": "s2", "anonymousId": "an1", "timestamp": ts}]}
        answer = api.request("POST", "/v1/sources/segment", json=segment)
        assert (answer.status_code, answer.json()["accepted"], answer.json()["skip_reasons"]) == (
            202, 1, {"no_campaign": 1})
        posthog = {"api_key": "phc", "event": "purchase", "distinct_id": "u1", "timestamp": ts, "uuid": "ph1",
                   "properties": {"revenue": 7.5}}
        assert api.request("POST", "/v1/sources/posthog", json=posthog).json()["accepted"] == 1

        bad = api.request("POST", "/v1/events", content=b'{"event_id": 1}\n[not json')
        assert bad.status_code == 422 and bad.json()["reasons"] == {"missing_field": 1, "invalid_json": 1}
        assert api.request("POST", "/v1/events", content=b"[1, 2").json()["error"] == "invalid_json"
        assert api.request("POST", "/v1/events", content=b" ").status_code == 400
        huge = api.request("POST", "/v1/events", content=b"x" * (MAX_BODY_BYTES + 1))
        assert (huge.status_code, huge.json()["error"]) == (413, "body_too_large")
        assert api.request("POST", "/v1/events", role="analyst", content=json.dumps(first)).status_code == 403
        assert api.request("POST", "/v1/events", tenant="globex", content=json.dumps(first)).json()["reasons"] == {
            "tenant_mismatch": 12}

        api.wait_until_applied()
        stats = api.platform.stats()
        assert (stats["valid"], stats["duplicate"], stats["quarantined"]) == (15, 0, 0)
        mapped = [event("s1", "touchpoint", 3, source="meta", campaign_id="fall", performance_metrics={"clicks": 1}),
                  event("ph1", "conversion", 3, performance_metrics={"revenue": 7.5})]
        assert api.platform.kpi_totals() == metric_totals([*first, conversion, *mapped])
