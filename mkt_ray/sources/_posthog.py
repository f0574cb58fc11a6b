"""PostHog capture payloads (`/capture`, `/i/v0/e`: one event; `/batch`: `{"batch": [...]}`) to contract v1
events. The mapping table is in README ("CDP sources"); field names follow PostHog's capture API.

`distinct_id` (top level, or `properties.distinct_id`) is the person: `user_id`, or `anonymous_id` when
`properties.$is_identified` is false (posthog-js marks anonymous events so). `$identify` links
`properties.$anon_distinct_id` to it, `$create_alias` links `properties.alias`. UTM properties
(`utm_source`, `utm_campaign`) make a touchpoint, a `revenue` property a conversion. Consent: the
`$opt_in` event (posthog-js `opt_in_capturing()`) grants analytics; PostHog has no consent property of
its own, so a `consent` property holding the contract's flags is read as one. Properties are otherwise
never copied (they may carry personal data).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from mkt_ray.sources._common import MappedBatch, base_event, consent_event, metrics

_CANONICAL = msgspec.json.Encoder(order="sorted").encode
_FLAGS = ("analytics", "personalization", "advertising")


def posthog_events(payload: Any, tenant: str) -> MappedBatch:
    """Map a PostHog payload (one event or a batch) for `tenant`; see the module notes."""
    items = payload["batch"] if isinstance(payload, dict) and isinstance(payload.get("batch"), list) else [payload]
    return MappedBatch.of(items, tenant, _map_item)


def _map_item(item: dict[str, Any], tenant: str, position: int, out: MappedBatch) -> None:
    props = item.get("properties") if isinstance(item.get("properties"), dict) else {}
    name, ts = item.get("event"), item.get("timestamp")
    # without a uuid the id is a hash of the event itself, so a re-sent event is still a duplicate
    event_id = item.get("uuid") or hashlib.sha256(_CANONICAL(item)).hexdigest()[:40]
    distinct = item.get("distinct_id", props.get("distinct_id"))
    who = "anonymous_id" if props.get("$is_identified") is False else "user_id"
    ids = {k: v for k, v in {who: distinct, "device_id": props.get("$device_id")}.items() if v is not None}
    flags = _consent_flags(name, props)
    if flags:
        out.add(consent_event(tenant, event_id, ts, flags, ids))
    event = _main_event(name, props, tenant, event_id, ts, distinct, ids)
    if isinstance(event, str):
        if not flags:
            out.skip(position, event)
        return
    out.add(event)


def _main_event(name: Any, props: dict[str, Any], tenant: str, event_id: Any, ts: Any, distinct: Any,
                ids: dict[str, Any]) -> dict[str, Any] | str:
    if name == "$opt_in":
        return "consent_only"
    if name in ("$identify", "$create_alias"):
        other = props.get("$anon_distinct_id") if name == "$identify" else props.get("alias")
        if distinct is None or other is None:
            return "nothing_to_link"
        return base_event(tenant, event_id, "identify", ts, user_id=distinct, anonymous_id=other,
                          device_id=props.get("$device_id"))
    meta = {k: v for k, v in {"cdp": "posthog", "cdp_event": name, "currency": props.get("currency")}.items()
            if v is not None}
    channel = {"source": props.get("utm_source"), "campaign_id": props.get("utm_campaign")}
    if props.get("revenue") is not None:
        return base_event(tenant, event_id, "conversion", ts, **ids, **channel,
                          performance_metrics=metrics(conversions=1, revenue=props["revenue"]), metadata=meta)
    if channel["source"] is None or channel["campaign_id"] is None:
        return "no_campaign"
    clicks = 1 if name in ("$pageview", "$screen") else None  # a view reached through a UTM link is a click-through
    return base_event(tenant, event_id, "touchpoint", ts, **ids, **channel,
                      performance_metrics=metrics(clicks=clicks), metadata=meta)


def _consent_flags(name: Any, props: dict[str, Any]) -> dict[str, bool]:
    if name == "$opt_in":
        return {"analytics": True}
    stated = props.get("consent")
    if not isinstance(stated, dict):
        return {}
    return {flag: stated[flag] for flag in _FLAGS if isinstance(stated.get(flag), bool)}
