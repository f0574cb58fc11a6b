"""One consumed batch, from raw messages to what must be written durably before its offsets commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import msgspec
import numpy as np
import pyarrow as pa

from mkt_ray.contract import BatchDecoder, EventColumns, Rejection, gc_paused
from mkt_ray.pipeline._enrich import EnrichResult
from mkt_ray.pipeline._kpi_rows import kpi_window_rows
from mkt_ray.pipeline._routing import SHARD_COLUMNS, shard_tables
from mkt_ray.pipeline._tables import QUARANTINE_SCHEMA
from mkt_ray.settings import PipelineSettings


class _TenantOnly(msgspec.Struct):
    tenant_id: str


_TENANT_ONLY = msgspec.json.Decoder(_TenantOnly).decode


def tenant_key(raw: bytes) -> bytes | None:
    """The Kafka key of a message: its tenant_id where it can be read (contract: key = tenant_id)."""
    tenant = tenant_hint(raw)
    return tenant.encode() if tenant else None


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
    events: EventColumns  # valid events to apply (replayed offsets left out), as received
    kpi_events: EventColumns  # the same events enriched (canonical channels, base currency): KPIs use these
    rejects: list[Rejection]
    created_ms: np.ndarray  # each event's Kafka timestamp, for event-to-warehouse latency
    kpi_rows: pa.Table
    quarantine_rows: pa.Table
    ranges: dict[int, tuple[int, int]]  # per partition: (first, last) offset applied by this batch
    counts: BatchCounts
    watermarks: dict[int, int]  # per partition: highest valid event time decoded so far
    credit_rows: pa.Table | None = None  # attribution credits of the conversions applied by this batch
    # when asked for, built piece by piece (one chunk per piece, each with its own dictionaries):
    events_arrow: pa.Table | None = None  # the rows of `events.to_arrow()`: the raw archive's input
    shard_slices: dict[int, pa.Table] | None = None  # the rows of `shard_tables(kpi_events, shards)`


# A partition's slice goes through decoding, enrichment, attribution and the Arrow conversions in pieces of
# up to this many rows, so each step reads the Python objects the step before it made while they are still
# in the CPU cache; every stateful step (dedup, outliers, attribution) decides by stream order, never by
# batch bounds, so the result is that of one pass. Measured on 100k events of one partition, all four steps
# (CPU time): 3.6-4.0 µs an event in pieces of 8k-12k rows against 4.5-4.9 µs in one pass. In the pipeline
# the Arrow conversions moved from the writer and archive threads to the member thread, which builds the
# pieces; the ingest members' CPU fell by 0.46 µs an event on average (0.0-0.96 in 12 alternating runs of
# benchmarks/pipeline.py, 100k batches).
PIECE_ROWS = PipelineSettings().piece_rows


def offset_ranges(partitions: np.ndarray, offsets: np.ndarray) -> dict[int, tuple[int, int]]:
    """The (first, last) offset each partition covers in a batch."""
    return {int(p): (int(offsets[partitions == p].min()), int(offsets[partitions == p].max())) for p in np.unique(partitions)}


@gc_paused()  # attribution and enrichment allocate like the decoder does
def process_batch(
    decoder_for: Callable[[int], BatchDecoder] | BatchDecoder,
    values: Sequence[bytes],
    partitions: np.ndarray,
    offsets: np.ndarray,
    now_ms: int,
    applied: Mapping[int, int] | None = None,
    created_ms: np.ndarray | None = None,
    window_rows: bool = True,
    enrich_with: Callable[[EventColumns], EnrichResult] | None = None,
    attribute: Callable[[int, EventColumns, int], pa.Table] | None = None,
    arrow: bool = False,
    shards: int = 0,
    piece_rows: int = PIECE_ROWS,
) -> BatchOutput:
    """Decode a batch partition by partition and build what must be written before it is committed.

    Each partition has its own decoder state (duplicates and outliers are per tenant, and a tenant's
    events share a partition). Offsets up to `applied[p]` were applied before a restart: they are decoded
    again, to rebuild that state, but produce nothing. With `window_rows=False` the KPI rows are only
    the ledger rows (tenant shards compute the window rows). `attribute(partition, events, applied)` gets
    every valid enriched event of a partition slice, replayed ones included, in order and in pieces of up
    to `piece_rows`, and returns their credit rows. `arrow` adds `events_arrow`; `shards` > 0 adds
    `shard_slices`, each built piece by piece (see `PIECE_ROWS`). A reject's `index` is its position in
    `values`.
    """
    if piece_rows < 1:
        raise ValueError(f"piece_rows must be at least 1, not {piece_rows}")
    applied = applied or {}
    created = np.zeros(len(values), np.int64) if created_ms is None else np.asarray(created_ms, np.int64)
    parts: list[EventColumns] = []
    enriched_parts: list[EventColumns] = []
    tables: list[pa.Table] = []
    hops: list[dict[int, pa.Table]] = []
    rejects: list[Rejection] = []
    stamps: list[np.ndarray] = []
    ranges: dict[int, tuple[int, int]] = {}
    watermarks: dict[int, int] = {}
    counts = BatchCounts()
    credits: list[pa.Table] = []
    for partition in dict.fromkeys(partitions.tolist()):
        rows = np.flatnonzero(partitions == partition)
        decoder = decoder_for(partition) if callable(decoder_for) else decoder_for
        cut = applied.get(partition, -1)
        fresh = offsets[rows] > cut
        if fresh.any():
            ranges[partition] = (int(offsets[rows][fresh].min()), int(offsets[rows].max()))
        for piece in np.array_split(rows, -(-len(rows) // piece_rows)):  # even pieces: no small remainder
            piece_offsets = offsets[piece]
            decoded = decoder.decode(_pick(values, piece), partitions[piece], piece_offsets, now_ms=now_ms)
            enriched = enrich_with(decoded.events).events if enrich_with is not None else decoded.events
            if attribute is not None:
                credits.append(attribute(partition, enriched, cut))
            read = int((piece_offsets > cut).sum())
            if not read:
                continue
            applies = decoded.events["offset"] > cut
            events, kpi_events = decoded.events, enriched
            if not applies.all():  # a take copies every column
                events, kpi_events = events.take(applies), kpi_events.take(applies)
            parts.append(events)
            enriched_parts.append(kpi_events)
            if arrow:
                tables.append(events.to_arrow())
            if shards:  # columns enrichment kept are the raw ones: their Arrow arrays are made already
                made = {name: tables[-1].column(name).chunk(0) for name in SHARD_COLUMNS
                        if arrow and kpi_events.data[name] is events.data[name]}
                hops.append(shard_tables(kpi_events, shards, made))
            stamps.append(created[piece][np.searchsorted(piece_offsets, events["offset"])])
            # a reject's index: its position in `values` (the decoder counts within the piece)
            kept_rejects = [replace(r, index=int(piece[r.index])) for r in decoded.rejects if r.offset > cut]
            rejects += kept_rejects
            duplicates = int((piece_offsets[decoded.duplicates] > cut).sum())
            counts.add(BatchCounts(read, len(events), len(kept_rejects), duplicates,
                                   Counter(r.reason.code for r in kept_rejects)))
        if decoder.state.watermark_ms is not None:
            watermarks[partition] = decoder.state.watermark_ms
    events = _joined(parts)
    kpi_events = _joined_enriched(enriched_parts, parts, events)  # each slice enriched once, for attribution and KPIs
    return BatchOutput(
        events, kpi_events, rejects, np.concatenate(stamps) if stamps else np.zeros(0, np.int64),
        kpi_window_rows(kpi_events if window_rows else events.take(np.zeros(len(events), bool)), ranges, now_ms, watermarks),
        quarantine_table(rejects, now_ms), ranges, counts,
        watermarks, pa.concat_tables(credits) if credits else None,
        (pa.concat_tables(tables) if tables else EventColumns.empty().to_arrow()) if arrow else None,
        _joined_slices(hops) if shards else None,
    )


def _pick(values: Sequence[bytes], rows: np.ndarray) -> Sequence[bytes]:
    """`values` at `rows` (ascending): a slice where they are contiguous, as a consumed batch's partitions
    usually are, else a list."""
    if len(rows) and int(rows[-1]) - int(rows[0]) + 1 == len(rows):
        return values[int(rows[0]) : int(rows[-1]) + 1]
    return [values[i] for i in rows.tolist()]


def _joined_slices(hops: list[dict[int, pa.Table]]) -> dict[int, pa.Table]:
    """Each shard's slices of the pieces as one table (chunked: a chunk's dictionaries are its own)."""
    owners = sorted({shard for hop in hops for shard in hop})
    return {shard: pa.concat_tables([hop[shard] for hop in hops if shard in hop]) for shard in owners}


def _joined(parts: list[EventColumns]) -> EventColumns:
    """The parts as one; a single part as it is (columns are never written in place, so sharing is safe)."""
    return parts[0] if len(parts) == 1 else EventColumns.concat(parts)


def _joined_enriched(parts: list[EventColumns], raw_parts: list[EventColumns], raw: EventColumns) -> EventColumns:
    """`_joined(parts)` for the enriched parts of `raw_parts`, whose join is `raw`: a column enrichment kept
    (the same arrays) is taken from `raw` instead of being copied a second time."""
    if len(parts) <= 1:
        return _joined(parts)
    return EventColumns({
        name: raw[name] if all(p.data[name] is r.data.get(name) for p, r in zip(parts, raw_parts, strict=True))
        else np.concatenate([p.data[name] for p in parts])
        for name in parts[0].data})


def quarantine_table(rejects: list[Rejection], now_ms: int) -> pa.Table:
    """Quarantine rows: reason, tenant (where readable), raw bytes, partition, offset, time."""
    return pa.table(
        {
            "reason": [r.reason.code for r in rejects],
            "tenant_id": [tenant_hint(r.raw) or "" for r in rejects],
            "raw": [r.raw for r in rejects],
            "partition": [r.partition for r in rejects],
            "offset": [r.offset for r in rejects],
            "quarantined_ms": [now_ms] * len(rejects),
        },
        schema=QUARANTINE_SCHEMA,
    )
