"""Quarantine reason codes, in the contract's precedence order (the first that applies wins)."""

from __future__ import annotations

import enum


class Reason(enum.IntEnum):
    """Why a message was rejected. Lower value = higher precedence; 0 is never used."""

    OVERSIZED = 1
    INVALID_UTF8 = 2
    INVALID_JSON = 3
    NOT_AN_OBJECT = 4
    UNSUPPORTED_SCHEMA_VERSION = 5
    PII_NOT_ALLOWED = 6
    UNKNOWN_FIELD = 7
    UNKNOWN_EVENT_TYPE = 8
    MISSING_FIELD = 9
    INVALID_TYPE = 10
    INVALID_VALUE = 11
    UNKNOWN_TENANT = 12
    NEGATIVE_METRIC = 13
    NON_FINITE_METRIC = 14
    CLICKS_EXCEED_IMPRESSIONS = 15
    CONVERSIONS_EXCEED_CLICKS = 16
    FUTURE_TIMESTAMP = 17
    TOO_OLD = 18
    OUTLIER = 19

    @property
    def code(self) -> str:
        """The wire name of the reason, as stored in quarantine (`invalid_json`)."""
        return self.name.lower()

    @classmethod
    def from_code(cls, code: str) -> Reason:
        return cls[code.upper()]


REASON_CODES: tuple[str, ...] = tuple(r.code for r in Reason)
