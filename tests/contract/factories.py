"""Factories for contract test messages: keyword defaults, one valid event per type."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TENANTS = frozenset({"acme", "globex"})

_BY_TYPE: dict[str, dict[str, Any]] = {
    "touchpoint": {"source": "google_ads", "campaign_id": "c1", "anonymous_id": "a1",
                   "performance_metrics": {"impressions": 1, "clicks": 1, "cost": 0.5}},
    "conversion": {"user_id": "u1", "performance_metrics": {"revenue": 42.0}},
    "stage_change": {"user_id": "u1", "metadata": {"stage": "lead"}},
    "personalization": {"user_id": "u1", "metadata": {"experience_id": "hero-banner"}},
    "identify": {"user_id": "u1", "anonymous_id": "a1"},
    "consent": {"user_id": "u1", "consent": {"analytics": True, "advertising": False}},
    "ad_metrics": {"source": "meta", "campaign_id": "c2",
                   "performance_metrics": {"impressions": 1000, "clicks": 30, "conversions": 2, "cost": 55.5}},
    "campaign_launch": {"source": "email", "campaign_id": "c3"},
    "campaign_optimize": {"source": "email", "campaign_id": "c3"},
    "campaign_terminate": {"source": "email", "campaign_id": "c3"},
}


def make_event(event_type: str = "touchpoint", /, *, drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """A valid v1 event of this type as a dict; `overrides` replace fields, `drop` removes them."""
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": f"e-{event_type}",
        "tenant_id": "acme",
        "event_type": event_type,
        "timestamp": (NOW - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
    }
    event.update(json.loads(json.dumps(_BY_TYPE.get(event_type, {}))))
    event.update(overrides)
    for name in drop:
        event.pop(name, None)
    return event


def encode(event: Any) -> bytes:
    return json.dumps(event).encode()
