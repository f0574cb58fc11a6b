"""Segment Spec messages (track, page, screen, identify, group, alias; single or `{"batch": [...]}`) to
contract v1 events. The mapping table is in README ("CDP sources"); field names follow the Segment Spec.

Only what the contract can hold is copied: identities, the campaign from `context.campaign` (Segment's
UTM object), revenue and currency. Traits and properties are never copied (they may carry personal
data); `traits.email` becomes `email_sha256`. Consent comes from `context.consent.categoryPreferences`
(Segment Consent Management): a message carrying it yields a contract `consent` event first.
"""

from __future__ import annotations

from typing import Any

from mkt_ray.sources._common import MappedBatch, base_event, consent_event, email_sha256, metrics

CONSENT_EVENT = "Segment Consent Preference Updated"
# Segment category ids are chosen per workspace; these (lower-cased) names map onto the contract's flags
_CATEGORY_FLAGS = {"analytics": "analytics", "performance": "analytics", "advertising": "advertising",
                   "marketing": "advertising", "targeting": "advertising", "personalization": "personalization",
                   "functional": "personalization"}


def segment_events(payload: Any, tenant: str) -> MappedBatch:
    """Map a Segment payload (one message or a batch) for `tenant`; see the module notes."""
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        shared = payload.get("context") if isinstance(payload.get("context"), dict) else {}
        messages = [{**m, "context": {**shared, **_dict(m.get("context"))}} if isinstance(m, dict) else m
                    for m in payload["batch"]]
    else:
        messages = [payload]
    return MappedBatch.of(messages, tenant, _map_message)


def _map_message(message: dict[str, Any], tenant: str, position: int, out: MappedBatch) -> None:
    kind, context = message.get("type"), _dict(message.get("context"))
    event_id, ts = message.get("messageId"), message.get("timestamp") or message.get("originalTimestamp")
    ids = {"user_id": message.get("userId"), "anonymous_id": message.get("anonymousId"),
           "device_id": _dict(context.get("device")).get("id"), "account_id": context.get("groupId")}
    ids = {k: v for k, v in ids.items() if v is not None}
    flags = consent_flags(context)
    if flags:
        out.add(consent_event(tenant, event_id, ts, flags, ids))
    if kind == "track" and message.get("event") == CONSENT_EVENT:
        if not flags:
            out.skip(position, "no_consent_preferences")
        return
    event = _main_event(kind, message, context, tenant, event_id, ts, ids)
    if isinstance(event, str):
        if not flags:  # a message that only carried consent was mapped in full
            out.skip(position, event)
        return
    out.add(event)


def _main_event(kind: Any, message: dict[str, Any], context: dict[str, Any], tenant: str, event_id: Any,
                ts: Any, ids: dict[str, Any]) -> dict[str, Any] | str:
    """The contract event of one message, or the reason there is none."""
    campaign = _dict(context.get("campaign"))
    channel = {"source": campaign.get("source"), "campaign_id": campaign.get("name")}
    if kind in ("track", "page", "screen"):
        props = _dict(message.get("properties"))
        name = message.get("event") if kind == "track" else message.get("name")
        revenue = props.get("revenue", props.get("total"))
        meta = {"cdp": "segment", "cdp_event": name, "currency": props.get("currency")}
        meta = {k: v for k, v in meta.items() if v is not None}
        if kind == "track" and revenue is not None:
            return base_event(tenant, event_id, "conversion", ts, **ids, **channel,
                              performance_metrics=metrics(conversions=1, revenue=revenue), metadata=meta)
        if channel["source"] is None or channel["campaign_id"] is None:
            return "no_campaign"
        clicks = 1 if kind != "track" else None  # a page or screen reached through a UTM link is a click-through
        return base_event(tenant, event_id, "touchpoint", ts, **ids, **channel,
                          performance_metrics=metrics(clicks=clicks), metadata=meta)
    if kind in ("identify", "group", "alias"):
        linked = dict(ids)
        if kind == "group":
            linked["account_id"] = message.get("groupId")
        if kind == "alias":
            linked["anonymous_id"] = message.get("previousId")
        email = email_sha256(_dict(message.get("traits")).get("email"))
        if linked.get("user_id") is None or sum(v is not None for v in linked.values()) < 2:
            return "nothing_to_link"
        return base_event(tenant, event_id, "identify", ts, **linked, email_sha256=email)
    return "unsupported_type"


def consent_flags(context: dict[str, Any]) -> dict[str, bool]:
    """Contract consent flags from `context.consent.categoryPreferences` (category ids matched by name)."""
    preferences = _dict(_dict(context.get("consent")).get("categoryPreferences"))
    flags: dict[str, bool] = {}
    for category, granted in preferences.items():
        flag = _CATEGORY_FLAGS.get(str(category).lower())
        if flag is not None and isinstance(granted, bool):
            flags[flag] = flags.get(flag, True) and granted  # two categories on one flag: both must grant
    return flags


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
