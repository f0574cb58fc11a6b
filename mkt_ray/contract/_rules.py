"""Value rules shared by the reference classifier and the fast decoder, so both apply the same ones."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np

from mkt_ray.contract._schema import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, PII_NAMES

_JSON_ENCODER = msgspec.json.Encoder()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
# A key that `has_pii_key` flags appears in compact JSON as `"name":` once the text is lower-cased as that
# check lower-cases keys, so texts without any of these hold no PII key.
_PII_KEY_TEXTS = tuple(f'"{name}":' for name in sorted(PII_NAMES))


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


def pii_key_suspects(texts: list[str]) -> np.ndarray:
    """For each compact JSON text, whether it may hold a personal-data key (`has_pii_key` decides).

    A chunk's texts are lower-cased and searched as one string, one substring search per name; only a
    chunk with a hit is searched text by text. On the generator's traffic (3 in 10 events carry metadata)
    this cost 56 ns an event against 197 for a case-insensitive regex over each text (2-core machine).
    """
    joined = "\x00".join(texts).lower()
    if not any(key in joined for key in _PII_KEY_TEXTS):
        return np.zeros(len(texts), bool)
    return np.fromiter((any(key in text.lower() for key in _PII_KEY_TEXTS) for text in texts), bool, len(texts))


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
    """Milliseconds since the epoch of an aware datetime, floored; exact at any date (integer arithmetic)."""
    return (moment - _EPOCH) // _MILLISECOND
