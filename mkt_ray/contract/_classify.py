"""The reference classifier: one message in, one reason code out (or None when the message is valid).

Plain Python over the generic JSON value, walking the types and limits of `Event` itself, so it cannot
drift from the schema. It is the source of truth for reason codes and their precedence: the fast batch
decoder sends every message it cannot accept outright here, and a parity test holds them together.
Stateful rules (duplicates, outliers) are applied by the decoder on top.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Container
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import msgspec
from msgspec import inspect as mi

from mkt_ray.contract._reasons import Reason
from mkt_ray.contract._rules import epoch_ms, has_pii_key, metadata_invalid, parse_timestamp
from mkt_ray.contract._schema import (
    CONSENT_FIELDS,
    EVENT_FIELDS,
    EVENT_TYPES,
    IDENTITY_FIELDS,
    METRIC_FIELDS,
    PII_NAMES,
    REQUIRED_FIELDS,
    REQUIRED_METADATA,
    SCHEMA_VERSION,
    Event,
    identity_count_needed,
    required_fields,
)

_DAY_MS = 86_400_000
_decode_any = msgspec.json.Decoder().decode
_EVENT_FIELD_SET = frozenset(EVENT_FIELDS)
_METRIC_FIELD_SET = frozenset(METRIC_FIELDS)
_CONSENT_FIELD_SET = frozenset(CONSENT_FIELDS)
_REQUIRED_FIELD_SET = frozenset(REQUIRED_FIELDS)


@dataclass(frozen=True, slots=True)
class Limits:
    """The contract's tunable limits (from `ContractSettings`), in the units the rules use."""

    max_message_bytes: int = 64 * 1024
    max_future_ms: int = 300_000
    retention_ms: int = 90 * _DAY_MS
    # stateful rules, applied by the batch decoder to the state it carries
    dedup_window_ms: int = _DAY_MS
    outlier_min_samples: int = 50
    outlier_threshold: float = 8.0

    @classmethod
    def from_settings(cls, contract: Any) -> Limits:
        return cls(
            max_message_bytes=contract.max_message_bytes,
            max_future_ms=int(contract.max_future_s * 1000),
            retention_ms=int(contract.retention_days * _DAY_MS),
            dedup_window_ms=int(contract.dedup_window_hours * 3_600_000),
            outlier_min_samples=contract.outlier_min_samples,
            outlier_threshold=contract.outlier_threshold,
        )


_DEFAULT_LIMITS = Limits()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> tuple[Reason | None, Any]:
    """Bytes to a JSON value, or the reason they are not one. Numbers too large for a float become inf.

    msgspec parses first (5x faster); the standard library decides what msgspec refuses, because it
    reads `1e999` as inf (non_finite_metric by the contract) where msgspec only says "out of range".
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Reason.INVALID_UTF8, None
    try:
        value = _decode_any(raw)
    except msgspec.DecodeError:
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return Reason.INVALID_JSON, None
    if b"\\u" in raw and not _is_unicode(value):
        return Reason.INVALID_UTF8, None  # a lone surrogate escape: JSON text, but no UTF-8 string holds it
    return None, value


def _is_unicode(value: Any) -> bool:
    """True if every string in a JSON value (keys included) is encodable as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_is_unicode(k) and _is_unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_unicode(v) for v in value)
    return True


def classify(raw: bytes, tenants: Container[str], now_ms: int, limits: Limits = _DEFAULT_LIMITS) -> Reason | None:
    """The single reason this message is rejected for, or None if the stateless rules accept it."""
    if len(raw) > limits.max_message_bytes:
        return Reason.OVERSIZED
    reason, value = parse_json(raw)
    if reason is not None:
        return reason
    if not isinstance(value, dict):
        return Reason.NOT_AN_OBJECT
    obj = {key: item for key, item in value.items() if item is not None}
    return _structural_reason(obj) or _value_reason(obj, tenants, now_ms, limits)


def _structural_reason(obj: dict[str, Any]) -> Reason | None:
    version = obj.get("schema_version")
    if version is not None and not (type(version) is int and version == SCHEMA_VERSION):
        return Reason.UNSUPPORTED_SCHEMA_VERSION
    if _has_pii(obj):
        return Reason.PII_NOT_ALLOWED
    if _has_unknown_field(obj):
        return Reason.UNKNOWN_FIELD
    if "event_type" in obj and obj["event_type"] not in EVENT_TYPES:
        return Reason.UNKNOWN_EVENT_TYPE
    if _has_missing_field(obj):
        return Reason.MISSING_FIELD
    return None


def _has_pii(obj: dict[str, Any]) -> bool:
    if not PII_NAMES.isdisjoint([key.lower() for key in obj]):
        return True
    email = obj.get("email_sha256")
    return has_pii_key(obj.get("metadata")) or (isinstance(email, str) and "@" in email)


def _has_unknown_field(obj: dict[str, Any]) -> bool:
    if not obj.keys() <= _EVENT_FIELD_SET:
        return True
    for name, known in (("performance_metrics", _METRIC_FIELD_SET), ("consent", _CONSENT_FIELD_SET)):
        nested = obj.get(name)
        if isinstance(nested, dict) and not nested.keys() <= known:
            return True
    return False


def _has_missing_field(obj: dict[str, Any]) -> bool:
    if not obj.keys() >= _REQUIRED_FIELD_SET:
        return True
    event_type = obj["event_type"]
    if not obj.keys() >= set(required_fields(event_type)):
        return True
    if sum(name in obj for name in IDENTITY_FIELDS) < identity_count_needed(event_type):
        return True
    key, metadata = REQUIRED_METADATA.get(event_type), obj.get("metadata")
    return key is not None and (metadata is None or (isinstance(metadata, dict) and metadata.get(key) is None))


def _value_reason(obj: dict[str, Any], tenants: Container[str], now_ms: int, limits: Limits) -> Reason | None:
    reasons = [check(obj[name]) for name, check in _field_checks() if name in obj]
    reasons.append(_required_metadata_reason(obj))
    tenant = obj["tenant_id"]
    if isinstance(tenant, str) and tenant not in tenants:
        reasons.append(Reason.UNKNOWN_TENANT)
    found = [r for r in reasons if r is not None]
    if found:
        return min(found)
    return _ratio_reason(obj) or _time_reason(obj, now_ms, limits)


Check = Callable[[Any], Reason | None]


@cache
def _field_checks() -> tuple[tuple[str, Check], ...]:
    """One compiled check per top-level field, built once from `Event`'s type information."""
    return tuple((f.name, _compile(f.type)) for f in mi.type_info(Event).fields)


def _compile(info: mi.Type, metric: bool = False) -> Check:
    """A function giving the first reason a present (non-null) value breaks this type or its limits."""
    if isinstance(info, mi.UnionType):
        info = next(t for t in info.types if not isinstance(t, mi.NoneType))
    if isinstance(info, mi.Metadata):  # a limit published in the schema, checked here (see TenantId)
        return _with_pattern(_compile(info.type, metric), (info.extra_json_schema or {}).get("pattern"))
    if isinstance(info, mi.StrType):
        return _with_pattern(_str_check(info), info.pattern)
    if isinstance(info, (mi.IntType, mi.FloatType)):
        return partial(_number_reason, info=info, metric=metric)
    if isinstance(info, mi.BoolType):
        return lambda value: None if type(value) is bool else Reason.INVALID_TYPE
    if isinstance(info, mi.DateTimeType):
        return _timestamp_reason
    if isinstance(info, mi.StructType):
        is_metrics = info.cls.__name__ == "PerformanceMetrics"
        return partial(_struct_reason, checks=tuple((f.name, _compile(f.type, is_metrics)) for f in info.fields))
    if isinstance(info, mi.DictType):
        return _metadata_reason
    return lambda value: None  # the event_type literal was checked as a structural rule


def _with_pattern(check: Check, pattern: str | None) -> Check:
    if pattern is None:
        return check
    fullmatch = re.compile(pattern).fullmatch

    def checked(value: Any) -> Reason | None:
        reason = check(value)
        return reason if reason is not None or fullmatch(value) else Reason.INVALID_VALUE

    return checked


def _str_check(info: mi.StrType) -> Check:
    low, high = info.min_length or 0, info.max_length if info.max_length is not None else math.inf

    def check(value: Any) -> Reason | None:
        if not isinstance(value, str):
            return Reason.INVALID_TYPE
        return None if low <= len(value) <= high else Reason.INVALID_VALUE

    return check


def _timestamp_reason(value: Any) -> Reason | None:
    if not isinstance(value, str):
        return Reason.INVALID_TYPE
    return None if parse_timestamp(value) is not None else Reason.INVALID_VALUE


def _metadata_reason(value: Any) -> Reason | None:
    if not isinstance(value, dict):
        return Reason.INVALID_TYPE
    return Reason.INVALID_VALUE if metadata_invalid(value) else None


def _number_reason(value: Any, info: mi.IntType | mi.FloatType, metric: bool) -> Reason | None:
    if isinstance(info, mi.IntType):
        if type(value) is not int:
            return Reason.INVALID_TYPE
    elif type(value) not in (int, float):
        return Reason.INVALID_TYPE
    number = value if isinstance(info, mi.IntType) else _as_float(value)
    if info.ge is not None and number < info.ge:
        return Reason.NEGATIVE_METRIC if metric else Reason.INVALID_VALUE
    if info.le is not None and number > info.le:
        return Reason.INVALID_VALUE
    if isinstance(number, float) and not math.isfinite(number):
        return Reason.NON_FINITE_METRIC
    return None


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _struct_reason(value: Any, checks: tuple[tuple[str, Check], ...]) -> Reason | None:
    if not isinstance(value, dict):
        return Reason.INVALID_TYPE
    found = [r for name, check in checks if value.get(name) is not None and (r := check(value[name])) is not None]
    return min(found) if found else None


def _required_metadata_reason(obj: dict[str, Any]) -> Reason | None:
    key, metadata = REQUIRED_METADATA.get(obj["event_type"]), obj.get("metadata")
    if key is None or not isinstance(metadata, dict):
        return None
    value = metadata[key]
    if not isinstance(value, str):
        return Reason.INVALID_TYPE
    return None if value else Reason.INVALID_VALUE


def _ratio_reason(obj: dict[str, Any]) -> Reason | None:
    if obj["event_type"] != "ad_metrics":
        return None
    metrics = {k: v for k, v in (obj.get("performance_metrics") or {}).items() if v is not None}
    impressions, clicks = metrics.get("impressions", 0), metrics.get("clicks", 0)
    if clicks > impressions:
        return Reason.CLICKS_EXCEED_IMPRESSIONS
    if metrics.get("conversions", 0) > clicks:
        return Reason.CONVERSIONS_EXCEED_CLICKS
    return None


def _time_reason(obj: dict[str, Any], now_ms: int, limits: Limits) -> Reason | None:
    moment = parse_timestamp(obj["timestamp"])
    assert moment is not None  # checked by the field rules
    ts_ms = epoch_ms(moment)
    if ts_ms > now_ms + limits.max_future_ms:
        return Reason.FUTURE_TIMESTAMP
    if ts_ms < now_ms - limits.retention_ms:
        return Reason.TOO_OLD
    return None

