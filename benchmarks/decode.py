"""Batch decoder throughput against a pydantic-model-per-event baseline, on the same seeded messages.

    python -m benchmarks.decode [--events 200000] [--batch 10000] [--seed 7]

Prints one JSON line. Both sides run in this process on one core (CPU time, `time.process_time`), over
the same `mkt-ray generate` messages (3% invalid of every reason code, 1% duplicates). The baseline is
the straightforward way to do the same job in Python: pydantic v2 `model_validate_json` per message
into a model with the same field types and limits, a dict of seen event ids for duplicates, and the
valid models turned into the same numpy columns. It still does less than the decoder (no precedence of
reasons, no per-type rules, no outliers, no registry or time checks). `pydantic_validate_only` is the
per-message validation alone, the floor of any pydantic-based decoder.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mkt_ray.contract import EVENT_TYPES, BatchDecoder
from mkt_ray.workload import generate_workload

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
Id = Annotated[str, Field(min_length=1, max_length=128)]
Count = Annotated[int, Field(ge=0, strict=True)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metrics(_Strict):
    impressions: Count | None = None
    clicks: Count | None = None
    conversions: Count | None = None
    cost: Amount | None = None
    revenue: Amount | None = None


class Consent(_Strict):
    analytics: bool | None = None
    personalization: bool | None = None
    advertising: bool | None = None


class PydanticEvent(_Strict):
    schema_version: Literal[1]
    event_id: Id
    tenant_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    event_type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    timestamp: datetime
    source: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    campaign_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    device_id: Id | None = None
    account_id: Id | None = None
    email_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    performance_metrics: Metrics | None = None
    consent: Consent | None = None
    metadata: dict[str, Any] | None = None


def _validate_only(messages: list[bytes]) -> tuple[float, int]:
    started = time.process_time()
    valid = 0
    for raw in messages:
        try:
            PydanticEvent.model_validate_json(raw)
            valid += 1
        except ValidationError:
            pass
    return time.process_time() - started, valid


_TEXT = ("event_id", "tenant_id", "event_type", "source", "campaign_id", "user_id", "anonymous_id", "device_id")
_METRICS = ("impressions", "clicks", "conversions", "cost", "revenue")


def _baseline(messages: list[bytes], batch: int) -> tuple[float, int]:
    """Validate each message with pydantic, drop repeats of an event id, build the same kind of columns."""
    started = time.process_time()
    seen: set[tuple[str, str]] = set()
    valid = 0
    for i in range(0, len(messages), batch):
        events = []
        for raw in messages[i : i + batch]:
            try:
                event = PydanticEvent.model_validate_json(raw)
            except ValidationError:
                continue
            if (event.tenant_id, event.event_id) not in seen:
                seen.add((event.tenant_id, event.event_id))
                events.append(event)
        columns = {name: np.array([getattr(e, name) for e in events], dtype=object) for name in _TEXT}
        columns["ts_ms"] = np.array([int(e.timestamp.timestamp() * 1000) for e in events], dtype=np.int64)
        for name in _METRICS:
            values = [getattr(e.performance_metrics, name) if e.performance_metrics else None for e in events]
            columns[name] = np.array([v or 0 for v in values], dtype=np.float64)
        valid += len(events)
    return time.process_time() - started, valid


def _decoder(messages: list[bytes], tenants: list[str], batch: int, now_ms: int) -> tuple[float, int]:
    decoder = BatchDecoder(tenants)
    started = time.process_time()
    valid = 0
    for i in range(0, len(messages), batch):
        valid += len(decoder.decode(messages[i : i + batch], now_ms=now_ms).events)
    return time.process_time() - started, valid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    tenants = ["acme", "globex", "initech"]
    messages = list(generate_workload(args.events, tenants, args.seed, NOW))
    now_ms = int(NOW.timestamp() * 1000)
    gc.collect()
    _decoder(messages[: args.batch], tenants, args.batch, now_ms)  # warm-up (imports, caches)
    decoder_s, decoder_valid = _decoder(messages, tenants, args.batch, now_ms)
    baseline_s, baseline_valid = _baseline(messages, args.batch)
    validate_s, _ = _validate_only(messages)
    print(json.dumps({
        "benchmark": "decode",
        "events": len(messages),
        "batch": args.batch,
        "seed": args.seed,
        "decoder_events_per_s": round(len(messages) / decoder_s),
        "decoder_valid": decoder_valid,
        "pydantic_events_per_s": round(len(messages) / baseline_s),
        "pydantic_valid": baseline_valid,
        "speedup": round(baseline_s / decoder_s, 2),
        "pydantic_validate_only_events_per_s": round(len(messages) / validate_s),
        "goal_events_per_s": 500_000,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
