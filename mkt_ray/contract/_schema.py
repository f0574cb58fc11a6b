"""The event contract v1, defined once.

Every other representation is derived from these definitions: the fast typed decoder (msgspec decodes
straight into `Event`), the reference classifier (it walks `msgspec.inspect.type_info(Event)` for types
and limits), the JSON Schema for producers (`json_schema()`), and the Arrow column types (`_columns.py`).

An explicit JSON `null` is read as an absent field everywhere.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args, get_type_hints

import msgspec

SCHEMA_VERSION = 1
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
INT64_MAX = 2**63 - 1
_TENANT_RE = re.compile(TENANT_ID_PATTERN)
MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 5

EventType = Literal[
    "touchpoint",
    "conversion",
    "stage_change",
    "personalization",
    "identify",
    "consent",
    "ad_metrics",
    "campaign_launch",
    "campaign_optimize",
    "campaign_terminate",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
EVENT_TYPE_CODE: dict[str, int] = {name: code for code, name in enumerate(EVENT_TYPES)}
USER_LEVEL_TYPES = frozenset({"touchpoint", "conversion", "stage_change", "personalization", "identify", "consent"})
CAMPAIGN_TYPES = frozenset({"touchpoint", "ad_metrics", "campaign_launch", "campaign_optimize", "campaign_terminate"})
IDENTITY_FIELDS: tuple[str, ...] = ("user_id", "anonymous_id", "device_id", "account_id")
# metadata keys an event type must carry (non-empty strings)
REQUIRED_METADATA: dict[str, str] = {"stage_change": "stage", "personalization": "experience_id"}
PII_NAMES = frozenset({"email", "phone", "ip", "ip_address", "name", "first_name", "last_name", "address"})

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# The tenant pattern is published in the JSON Schema and enforced by the reference classifier, but not by
# the typed decoder: a regex per message cost 400 ns there (benchmarks/decode.py), and the fast path
# already requires a registered tenant, whose id the registry validated against the same pattern.
TenantId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=63, extra_json_schema={"pattern": TENANT_ID_PATTERN})
]
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Amount = Annotated[float, msgspec.Meta(ge=0)]


class PerformanceMetrics(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Missing keys count as 0, except `conversions` on a conversion event (1)."""

    impressions: Count | None = 0
    clicks: Count | None = 0
    conversions: Count | None = None  # None: the event type decides (1 on a conversion, else 0)
    cost: Amount | None = 0.0
    revenue: Amount | None = 0.0


class Consent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    analytics: bool | None = None
    personalization: bool | None = None
    advertising: bool | None = None


class Event(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One marketing event, as producers write it to the `marketing-events` topic."""

    schema_version: int
    event_id: Id
    tenant_id: TenantId
    event_type: EventType
    timestamp: datetime
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    campaign_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    device_id: Id | None = None
    account_id: Id | None = None
    email_sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", max_length=64)] | None = None
    performance_metrics: PerformanceMetrics | None = None
    consent: Consent | None = None
    metadata: dict[str, Any] | None = None


def _wire_event() -> type[msgspec.Struct]:
    """`Event` as the fast decoder reads it: the same fields, types and checks, except that `timestamp` stays
    text, which the decoder converts for a whole chunk at once (`mkt_ray.kernels.timestamps`, with the
    contract's own parser for any form that kernel leaves): 0.2-0.4 µs an event less than a datetime each."""
    types = {**get_type_hints(Event, include_extras=True), "timestamp": str}
    names = Event.__struct_fields__
    defaults = dict(zip(names[len(names) - len(Event.__struct_defaults__):], Event.__struct_defaults__, strict=True))
    fields = [(name, types[name], defaults[name]) if name in defaults else (name, types[name]) for name in names]
    return msgspec.defstruct("WireEvent", fields, forbid_unknown_fields=True, omit_defaults=True, gc=False,
                             module=__name__)


WireEvent = _wire_event()
EVENT_FIELDS: tuple[str, ...] = Event.__struct_fields__
REQUIRED_FIELDS: tuple[str, ...] = tuple(
    f.name for f in msgspec.inspect.type_info(Event).fields if f.required
)
METRIC_FIELDS: tuple[str, ...] = PerformanceMetrics.__struct_fields__
CONSENT_FIELDS: tuple[str, ...] = Consent.__struct_fields__


def required_fields(event_type: str) -> tuple[str, ...]:
    """Top-level fields an event of this type must carry, beyond the always-required ones."""
    needed: list[str] = []
    if event_type in CAMPAIGN_TYPES:
        needed += ["source", "campaign_id"]
    if event_type == "consent":
        needed.append("consent")
    if event_type == "identify":
        needed.append("user_id")
    return tuple(needed)


def identity_count_needed(event_type: str) -> int:
    """How many identity fields an event type needs at least (identify: user_id plus one more)."""
    if event_type == "identify":
        return 2
    return 1 if event_type in USER_LEVEL_TYPES else 0


def is_valid_tenant_id(tenant_id: str) -> bool:
    return _TENANT_RE.fullmatch(tenant_id) is not None
