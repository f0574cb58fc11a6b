"""Value rules shared by the reference classifier and the fast decoder, so both apply the same ones."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import msgspec

from mkt_ray.contract._schema import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, PII_NAMES

_JSON_ENCODER = msgspec.json.Encoder()
# A PII key always appears in compact JSON as `"name":` (the names are ASCII), so no match means no PII
# key; the decoder sends a match to the reference classifier. Scanning text is ~20x cheaper than walking.
PII_KEY_TEXT = re.compile(r'"(?:' + "|".join(sorted(PII_NAMES)) + r')":', re.IGNORECASE)


def has_pii_key(value: Any) -> bool:
    """True if any object key, at any depth, names personal data (case-insensitive)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in PII_NAMES:
                return True
            if isinstance(item, (dict, list)) and has_pii_key(item):
                return True
    elif isinstance(value, list):
        return any(isinstance(item, (dict, list)) and has_pii_key(item) for item in value)
    return False


def _depth_and_finite(value: Any) -> tuple[int, bool]:
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return 0, not (isinstance(value, float) and not math.isfinite(value))
    depth, finite = 0, True
    for child in children:
        d, f = _depth_and_finite(child)
        depth, finite = max(depth, d), finite and f
    return depth + 1, finite


def metadata_invalid(metadata: dict[str, Any]) -> bool:
    """The metadata object is deeper than 5, larger than 8 KiB as compact JSON, or holds a non-finite number."""
    depth, finite = _depth_and_finite(metadata)
    if depth > MAX_METADATA_DEPTH or not finite:
        return True
    return len(_JSON_ENCODER.encode(metadata)) > MAX_METADATA_BYTES


def parse_timestamp(text: str) -> datetime | None:
    """An aware datetime from RFC 3339 / ISO-8601 text with a zone; None if malformed or without zone."""
    try:
        parsed = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        return None
    return parsed if parsed.tzinfo is not None else None


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, floored; exact (float seconds resolve 0.25 µs here)."""
    return round(moment.timestamp() * 1_000_000) // 1000
