"""What the CDP mappers share: the mapped batch, timestamps, hashed e-mails, and consent events.

A mapper turns one vendor payload into contract v1 messages (JSON bytes). It never validates them:
the collector runs every mapped message through the contract code like any other, so a mapped event
that breaks the contract gets the contract's reason code. A vendor message the mapping has no contract
event for is *skipped* with a source-level reason (`no_campaign`, `unsupported_type`, ...), so the
caller sees it instead of losing it silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mkt_ray.contract import SCHEMA_VERSION

_ENCODE = msgspec.json.Encoder().encode


@dataclass
class MappedBatch:
    """Contract messages mapped from a vendor payload, and the vendor messages that map to none."""

    messages: list[bytes] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (position in the payload, reason)

    def add(self, event: dict[str, Any]) -> None:
        self.messages.append(_ENCODE({k: v for k, v in event.items() if v is not None}))

    def skip(self, position: int, reason: str) -> None:
        self.skipped.append((position, reason))

    @classmethod
    def of(cls, items: list[Any], tenant: str,
           map_one: Callable[[dict[str, Any], str, int, MappedBatch], None]) -> MappedBatch:
        """Each vendor message mapped by `map_one(message, tenant, position, batch)`; non-objects are skipped."""
        out = cls()
        for position, item in enumerate(items):
            if isinstance(item, dict):
                map_one(item, tenant, position, out)
            else:
                out.skip(position, "not_an_object")
        return out


def base_event(tenant: str, event_id: Any, event_type: str, timestamp: Any, **fields: Any) -> dict[str, Any]:
    """A contract event with the always-required fields first; None-valued fields are dropped on encode."""
    return {"schema_version": SCHEMA_VERSION, "event_id": _text(event_id), "tenant_id": tenant,
            "event_type": event_type, "timestamp": timestamp, **fields}


def email_sha256(email: Any) -> str | None:
    """The contract's only form of an e-mail: SHA-256 hex of the trimmed, lower-cased address."""
    if not isinstance(email, str) or "@" not in email:
        return None
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def consent_event(tenant: str, event_id: Any, timestamp: Any, flags: dict[str, bool],
                  identities: dict[str, Any]) -> dict[str, Any]:
    """A contract `consent` event carrying the flags a vendor message stated (id = vendor id + `:consent`)."""
    return base_event(tenant, f"{_text(event_id)}:consent", "consent", timestamp, consent=flags, **identities)


def metrics(**values: Any) -> dict[str, Any] | None:
    """A performance_metrics object of the given non-None values, or None when there are none."""
    present = {k: v for k, v in values.items() if v is not None}
    return present or None


def _text(value: Any) -> Any:
    """Vendor ids may be numbers; the contract wants strings (anything else is left for the contract to refuse)."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
