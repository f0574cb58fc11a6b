"""Invalid messages, each crafted so that the contract gives it exactly one chosen reason code.

Every message starts as a valid event (fresh event id, registered tenant, in-span time) and receives
one flaw, in one of several variants per reason, so quarantine sees the shapes producers really send.
The `outlier` reason is made elsewhere (`_outliers.py`): it depends on what the stream already holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from mkt_ray.contract import Reason
from mkt_ray.workload._random import DrawStream

Event = dict[str, Any]
_ENCODE = msgspec.json.Encoder().encode
_DAY_MS = 86_400_000
_MAX_MESSAGE = 64 * 1024
_SENTINEL = 7_654_321.25  # replaced in the bytes, for what JSON encoders refuse to write


@dataclass(slots=True)
class InvalidContext:
    """What the crafters need: draws, fresh valid events by type, the clock and unknown tenant ids."""

    draws: DrawStream
    base: Callable[[str], Event]  # a fresh valid event of that type
    now_ms: int
    unknown_tenants: tuple[str, ...]

    def pick_base(self, *types: str) -> Event:
        return self.base(self.draws.pick(types))


def craft_invalid(reason: Reason, ctx: InvalidContext) -> bytes:
    """One message whose single reason (in the contract's precedence) is `reason` (not `outlier`)."""
    return _CRAFTERS[reason](ctx)


def _oversized(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "personalization", "ad_metrics")
    event["metadata"] = {"blob": "x" * (_MAX_MESSAGE + ctx.draws.below(4096))}
    return _ENCODE(event)


def _invalid_utf8(ctx: InvalidContext) -> bytes:
    raw = _ENCODE(ctx.pick_base("touchpoint", "conversion", "stage_change"))
    cut = raw.index(b'"event_id":"') + len(b'"event_id":"')
    bad = ctx.draws.pick((b"\xff", b"\xc3\x28", b"\xe9t\xe9", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"))
    return raw[:cut] + bad + raw[cut:]


def _invalid_json(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion", "ad_metrics")
    raw = _ENCODE(event)
    variant = ctx.draws.below(4)
    if variant == 0:
        return raw[: 1 + ctx.draws.below(len(raw) - 1)]  # truncated
    if variant == 1:
        return raw[:-1] + b",}"  # trailing comma
    if variant == 2:
        event["performance_metrics"] = {"impressions": 1, "cost": _SENTINEL}
        return _ENCODE(event).replace(repr(_SENTINEL).encode(), ctx.draws.pick((b"NaN", b"Infinity")))
    return raw + raw  # two objects in one message


def _not_an_object(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion")
    return ctx.draws.pick((_ENCODE([event]), _ENCODE(event["event_type"]), b"null", b"42", b"[]", b"true"))


def _unsupported_schema_version(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion", "ad_metrics", "identify")
    event["schema_version"] = ctx.draws.pick((2, 0, 3, "1", True, 1.5))
    return _ENCODE(event)


def _pii_not_allowed(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "identify", "conversion")
    variant = ctx.draws.below(5)
    if variant == 0:
        event["email"] = "redacted@example.invalid"
    elif variant == 1:
        event["ip"] = "192.0.2.10"  # TEST-NET-1, a documentation address
    elif variant == 2:
        event["metadata"] = {"phone": "+00 000 0000"}
    elif variant == 3:
        event["metadata"] = {"form": {"First_Name": "redacted"}}
    else:
        event["email_sha256"] = "redacted@example.invalid"
    return _ENCODE(event)


def _unknown_field(ctx: InvalidContext) -> bytes:
    variant = ctx.draws.below(3)
    if variant == 0:
        event = ctx.pick_base("touchpoint", "conversion", "stage_change")
        event["utm_term"] = "spring-sale"
    elif variant == 1:
        event = ctx.base("touchpoint")
        event["performance_metrics"]["views"] = 3
    else:
        event = ctx.base("consent")
        event["consent"]["marketing"] = True
    return _ENCODE(event)


def _unknown_event_type(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion")
    event["event_type"] = ctx.draws.pick(("page_view", "click", "Touchpoint", "purchase", "ad_metric"))
    return _ENCODE(event)


def _missing_field(ctx: InvalidContext) -> bytes:
    event_type, field = ctx.draws.pick((
        ("touchpoint", "event_id"), ("conversion", "timestamp"), ("ad_metrics", "tenant_id"),
        ("touchpoint", "campaign_id"), ("ad_metrics", "source"), ("touchpoint", "anonymous_id"),
        ("stage_change", "metadata"), ("personalization", "metadata"), ("consent", "consent"),
        ("identify", "anonymous_id"), ("conversion", "schema_version"),
    ))
    event = ctx.base(event_type)
    if ctx.draws.chance(0.5):
        event.pop(field)
    else:
        event[field] = None  # an explicit null is an absent field
    return _ENCODE(event)


def _invalid_type(ctx: InvalidContext) -> bytes:
    event = ctx.base(ctx.draws.pick(("touchpoint", "stage_change", "consent")))
    kind = event["event_type"]
    variant = ctx.draws.below(3)
    if kind == "touchpoint":
        event["performance_metrics"]["impressions" if variant else "clicks"] = ctx.draws.pick((True, "1", 1.5))
    elif kind == "stage_change":
        field, value = (("event_id", 12_345), ("timestamp", 1_764_244_800), ("metadata", {"stage": 3}))[variant]
        event[field] = value
    else:
        event["consent"]["analytics"] = ctx.draws.pick(("yes", 1, "false"))
    return _ENCODE(event)


def _invalid_value(ctx: InvalidContext) -> bytes:
    event = ctx.base(ctx.draws.pick(("touchpoint", "identify", "stage_change")))
    variant, kind = ctx.draws.below(4), event["event_type"]
    if variant == 0:
        event["timestamp"] = event["timestamp"][:19]  # no zone
    elif variant == 1:
        event["event_id"] = ctx.draws.pick(("", "e" * 129))
    elif variant == 2:
        event["tenant_id"] = ctx.draws.pick(("Acme Corp", "-acme", "ACME"))
    elif kind == "identify":
        event["email_sha256"] = "AB" * 32
    elif kind == "stage_change":
        event["metadata"] = {"stage": ""}
    else:
        event["metadata"] = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}  # depth 6
    return _ENCODE(event)


def _unknown_tenant(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion", "ad_metrics", "identify")
    event["tenant_id"] = ctx.draws.pick(ctx.unknown_tenants)
    return _ENCODE(event)


def _negative_metric(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion", "ad_metrics")
    metrics = event["performance_metrics"]
    name = {"touchpoint": "impressions", "conversion": "revenue", "ad_metrics": "cost"}[event["event_type"]]
    metrics[name] = -1 if name == "impressions" else -round(1 + 99 * ctx.draws.uniform(), 2)
    return _ENCODE(event)


def _non_finite_metric(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("conversion", "ad_metrics")
    event["performance_metrics"]["revenue" if event["event_type"] == "conversion" else "cost"] = _SENTINEL
    return _ENCODE(event).replace(repr(_SENTINEL).encode(), ctx.draws.pick((b"1e999", b"2e308", b"1E+400")))


def _clicks_exceed_impressions(ctx: InvalidContext) -> bytes:
    event = ctx.base("ad_metrics")
    metrics = event["performance_metrics"]
    metrics["clicks"] = metrics["impressions"] + 1 + ctx.draws.below(50)
    return _ENCODE(event)


def _conversions_exceed_clicks(ctx: InvalidContext) -> bytes:
    event = ctx.base("ad_metrics")
    metrics = event["performance_metrics"]
    metrics["conversions"] = metrics["clicks"] + 1 + ctx.draws.below(5)
    return _ENCODE(event)


def _future_timestamp(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion", "ad_metrics", "stage_change")
    event["timestamp"] = _iso(ctx.now_ms + _DAY_MS + ctx.draws.below(3_600_000))
    return _ENCODE(event)


def _too_old(ctx: InvalidContext) -> bytes:
    event = ctx.pick_base("touchpoint", "conversion", "ad_metrics", "stage_change")
    event["timestamp"] = _iso(ctx.now_ms - 120 * _DAY_MS - ctx.draws.below(3_600_000))
    return _ENCODE(event)


def _iso(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_CRAFTERS: dict[Reason, Callable[[InvalidContext], bytes]] = {
    Reason.OVERSIZED: _oversized,
    Reason.INVALID_UTF8: _invalid_utf8,
    Reason.INVALID_JSON: _invalid_json,
    Reason.NOT_AN_OBJECT: _not_an_object,
    Reason.UNSUPPORTED_SCHEMA_VERSION: _unsupported_schema_version,
    Reason.PII_NOT_ALLOWED: _pii_not_allowed,
    Reason.UNKNOWN_FIELD: _unknown_field,
    Reason.UNKNOWN_EVENT_TYPE: _unknown_event_type,
    Reason.MISSING_FIELD: _missing_field,
    Reason.INVALID_TYPE: _invalid_type,
    Reason.INVALID_VALUE: _invalid_value,
    Reason.UNKNOWN_TENANT: _unknown_tenant,
    Reason.NEGATIVE_METRIC: _negative_metric,
    Reason.NON_FINITE_METRIC: _non_finite_metric,
    Reason.CLICKS_EXCEED_IMPRESSIONS: _clicks_exceed_impressions,
    Reason.CONVERSIONS_EXCEED_CLICKS: _conversions_exceed_clicks,
    Reason.FUTURE_TIMESTAMP: _future_timestamp,
    Reason.TOO_OLD: _too_old,
}
