"""Segment Spec and PostHog capture payloads map to contract events the contract accepts, field by field."""

from __future__ import annotations

import hashlib
import json

from mkt_ray.contract import classify
from mkt_ray.sources import posthog_events, segment_events

NOW_MS = 1_795_000_000_000  # 2026-11-18
TS = "2026-11-18T08:00:00Z"


def _decoded(messages: list[bytes]) -> list[dict]:
    for raw in messages:
        assert classify(raw, {"acme"}, NOW_MS + 3_600_000) is None, raw  # every mapped event is contract-valid
    return [json.loads(raw) for raw in messages]


def test_segment_batch_maps_page_track_identify_and_consent() -> None:
    payload = {"batch": [
        {"type": "page", "messageId": "m1", "anonymousId": "an1", "timestamp": TS, "name": "Home",
         "context": {"campaign": {"name": "spring", "source": "google", "medium": "cpc"}, "ip": "1.2.3.4"}},
        {"type": "track", "messageId": "m2", "userId": "u1", "timestamp": TS, "event": "Order Completed",
         "properties": {"revenue": 25.5, "currency": "EUR", "email": "x@y.z"}},
        {"type": "identify", "messageId": "m3", "userId": "u1", "anonymousId": "an1", "timestamp": TS,
         "traits": {"email": " Ada@Example.com ", "name": "Ada"},
         "context": {"consent": {"categoryPreferences": {"Analytics": False, "Advertising": True}}}},
        {"type": "page", "messageId": "m4", "userId": "u1", "timestamp": TS},
        {"type": "screen_view"},
    ], "context": {"device": {"id": "d1"}}}
    mapped = segment_events(payload, "acme")
    events = _decoded(mapped.messages)
    assert [(e["event_id"], e["event_type"]) for e in events] == [
        ("m1", "touchpoint"), ("m2", "conversion"), ("m3:consent", "consent"), ("m3", "identify")]
    touch, conversion, consent, identify = events
    assert (touch["source"], touch["campaign_id"], touch["anonymous_id"], touch["device_id"]) == (
        "google", "spring", "an1", "d1")
    assert touch["performance_metrics"] == {"clicks": 1}
    assert conversion["performance_metrics"] == {"conversions": 1, "revenue": 25.5}
    assert conversion["metadata"]["currency"] == "EUR" and "email" not in json.dumps(conversion)
    assert consent["consent"] == {"analytics": False, "advertising": True}
    assert identify["email_sha256"] == hashlib.sha256(b"ada@example.com").hexdigest()
    assert (identify["user_id"], identify["anonymous_id"]) == ("u1", "an1")
    assert mapped.skipped == [(3, "no_campaign"), (4, "unsupported_type")]


def test_segment_consent_preference_event_maps_to_consent_only() -> None:
    message = {"type": "track", "event": "Segment Consent Preference Updated", "messageId": "c1", "userId": "u9",
               "timestamp": TS, "context": {"consent": {"categoryPreferences": {"Analytics": True}}}}
    events = _decoded(segment_events(message, "acme").messages)
    assert events == [{"schema_version": 1, "event_id": "c1:consent", "tenant_id": "acme", "event_type": "consent",
                       "timestamp": TS, "consent": {"analytics": True}, "user_id": "u9"}]


def test_posthog_capture_and_batch() -> None:
    single = {"api_key": "phc_x", "event": "$pageview", "distinct_id": "anon-7", "timestamp": TS, "uuid": "p1",
              "properties": {"$is_identified": False, "utm_source": "meta", "utm_campaign": "fall",
                             "$current_url": "https://x.test/?email=a@b.c"}}
    events = _decoded(posthog_events(single, "acme").messages)
    assert [(e["event_type"], e["anonymous_id"], e["source"], e["campaign_id"]) for e in events] == [
        ("touchpoint", "anon-7", "meta", "fall")]
    batch = {"api_key": "phc_x", "batch": [
        {"event": "$identify", "timestamp": TS, "uuid": "p2",
         "properties": {"distinct_id": "u5", "$anon_distinct_id": "anon-7"}},
        {"event": "$opt_in", "distinct_id": "u5", "timestamp": TS, "uuid": "p3"},
        {"event": "purchase", "distinct_id": "u5", "timestamp": TS, "properties": {"revenue": 12, "currency": "USD"}},
        {"event": "clicked", "distinct_id": "u5", "timestamp": TS, "uuid": "p5",
         "properties": {"consent": {"analytics": False}}},
    ]}
    mapped = posthog_events(batch, "acme")
    events = _decoded(mapped.messages)
    assert [e["event_type"] for e in events] == ["identify", "consent", "conversion", "consent"]
    assert (events[0]["user_id"], events[0]["anonymous_id"]) == ("u5", "anon-7")
    assert events[1]["consent"] == {"analytics": True} and events[3]["consent"] == {"analytics": False}
    assert events[2]["performance_metrics"] == {"conversions": 1, "revenue": 12}
    again = _decoded(posthog_events(batch, "acme").messages)
    assert events[2]["event_id"] == again[2]["event_id"]  # no uuid: a stable id, so a resend is a duplicate
    assert mapped.skipped == []  # the last one carried consent: mapped, though it has no campaign
