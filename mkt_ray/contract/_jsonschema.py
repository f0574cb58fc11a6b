"""JSON Schema (draft 2020-12) for producers, derived from `Event` and the per-type rules."""

from __future__ import annotations

from typing import Any

import msgspec

from mkt_ray.contract._schema import (
    CAMPAIGN_TYPES,
    EVENT_TYPES,
    IDENTITY_FIELDS,
    PII_NAMES,
    REQUIRED_METADATA,
    SCHEMA_VERSION,
    USER_LEVEL_TYPES,
    Event,
    identity_count_needed,
    required_fields,
)


def _when(event_type: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"event_type": {"const": event_type}}}, "then": then}


def _type_rules(event_type: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    needed = list(required_fields(event_type))
    if needed:
        rules.append(_when(event_type, {"required": needed}))
    count = identity_count_needed(event_type)
    if count:
        identity = {"anyOf": [{"required": [name]} for name in IDENTITY_FIELDS]}
        if count > 1:
            others = [name for name in IDENTITY_FIELDS if name != "user_id"]
            identity = {"anyOf": [{"required": [name]} for name in others]}
        rules.append(_when(event_type, identity))
    key = REQUIRED_METADATA.get(event_type)
    if key:
        metadata = {"type": "object", "required": [key], "properties": {key: {"type": "string", "minLength": 1}}}
        rules.append(_when(event_type, {"required": ["metadata"], "properties": {"metadata": metadata}}))
    return rules


def json_schema() -> dict[str, Any]:
    """The contract v1 as a JSON Schema document producers can validate against."""
    (event_ref,), definitions = msgspec.json.schema_components([Event], ref_template="#/$defs/{name}")
    name = event_ref["$ref"].rsplit("/", 1)[1]
    root = dict(definitions.pop(name))
    root["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    root["properties"]["timestamp"] = {"type": "string", "format": "date-time", "description": "with a zone: Z or +hh:mm"}
    pii = sorted(PII_NAMES)
    root["properties"]["metadata"] = {
        "anyOf": [{"type": "object", "propertyNames": {"not": {"enum": pii}}, "maxProperties": 1000}, {"type": "null"}],
        "description": "free-form, at most 8 KiB as compact JSON and 5 levels deep; no personal-data keys",
    }
    root["allOf"] = [rule for event_type in EVENT_TYPES for rule in _type_rules(event_type)]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mkt-ray.dev/schemas/event-v1.json",
        **root,
        "title": "mkt-ray marketing event, contract v1",
        "description": (
            "One JSON object per Kafka message on `marketing-events`, key = tenant_id. "
            f"User-level types: {', '.join(sorted(USER_LEVEL_TYPES))}. Campaign types need source and campaign_id: "
            f"{', '.join(sorted(CAMPAIGN_TYPES))}. Messages over 64 KiB are rejected; null means absent."
        ),
        "$defs": definitions,
    }
