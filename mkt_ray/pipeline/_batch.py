"""One consumed batch, from raw messages to what must be written durably before its offsets commit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import msgspec
import numpy as np
import pyarrow as pa

from mkt_ray.contract import BatchDecoder, DecodedBatch
from mkt_ray.pipeline._kpi_rows import kpi_minute_table
from mkt_ray.pipeline._tables import QUARANTINE_SCHEMA


class _TenantOnly(msgspec.Struct):
    tenant_id: str


_TENANT_ONLY = msgspec.json.Decoder(_TenantOnly).decode


def tenant_hint(raw: bytes) -> str | None:
    """The tenant_id of a message if it can be read, without validating anything else."""
    try:
        return _TENANT_ONLY(raw).tenant_id
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


@dataclass
class BatchCounts:
    """What happened to every message read; read == valid + quarantined + duplicate."""

    read: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicate: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, other: BatchCounts) -> None:
        self.read += other.read
        self.valid += other.valid
        self.quarantined += other.quarantined
        self.duplicate += other.duplicate
        self.reasons.update(other.reasons)

    def as_dict(self) -> dict:
        return {"read": self.read, "valid": self.valid, "quarantined": self.quarantined,
                "duplicate": self.duplicate, "reasons": dict(self.reasons)}


@dataclass
class BatchOutput:
    decoded: DecodedBatch
    kpi_rows: pa.Table
    quarantine_rows: pa.Table
    ranges: dict[int, tuple[int, int]]
    counts: BatchCounts


def offset_ranges(partitions: np.ndarray, offsets: np.ndarray) -> dict[int, tuple[int, int]]:
    """The (first, last) offset each partition covers in a batch."""
    return {int(p): (int(offsets[partitions == p].min()), int(offsets[partitions == p].max())) for p in np.unique(partitions)}


def process_batch(decoder: BatchDecoder, values: list[bytes], partitions: np.ndarray, offsets: np.ndarray, now_ms: int) -> BatchOutput:
    """Decode a batch and build its KPI rows (with the offset ledger) and quarantine rows."""
    decoded = decoder.decode(values, partitions, offsets, now_ms=now_ms)
    ranges = offset_ranges(partitions, offsets)
    quarantine = pa.table(
        {
            "reason": [r.reason.code for r in decoded.rejects],
            "tenant_id": [tenant_hint(r.raw) or "" for r in decoded.rejects],
            "raw": [r.raw for r in decoded.rejects],
            "partition": [r.partition for r in decoded.rejects],
            "offset": [r.offset for r in decoded.rejects],
            "quarantined_ms": [now_ms] * len(decoded.rejects),
        },
        schema=QUARANTINE_SCHEMA,
    )
    counts = BatchCounts(
        read=decoded.read, valid=len(decoded.events), quarantined=len(decoded.rejects),
        duplicate=len(decoded.duplicates), reasons=Counter(decoded.reason_counts()),
    )
    return BatchOutput(decoded, kpi_minute_table(decoded.events, ranges, now_ms), quarantine, ranges, counts)
