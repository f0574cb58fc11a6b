"""KPI window rows of a batch against a plain-Python reference; replayed offsets produce nothing."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest

from mkt_ray.contract import BatchDecoder
from mkt_ray.pipeline import LEDGER_WINDOW, kpi_window_rows, process_batch
from mkt_ray.workload import generate_workload

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TENANTS = ["acme", "globex"]
KINDS = {"tumbling_1m": (60_000, 60_000), "tumbling_1h": (3_600_000, 3_600_000), "sliding_5m": (300_000, 60_000)}


def _reference(events) -> dict[tuple, list]:
    """Plain Python: add each valid event into every window of every kind that contains its time."""
    sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0.0, 0.0])
    for e in events.to_arrow().to_pylist():
        for kind, (size, step) in KINDS.items():
            last_start = e["ts_ms"] // step * step
            for start in range(last_start - size + step, last_start + 1, step):
                row = sums[(kind, e["partition"], e["tenant_id"], e["campaign_id"] or "", e["source"] or "", start)]
                row[0] += 1
                row[1] += e["impressions"]
                row[2] += e["clicks"]
                row[3] += e["conversions"]
                row[4] += e["cost"]
                row[5] += e["revenue"]
    return sums


def _batch(n: int = 6000, seed: int = 5):
    lines = list(generate_workload(n, TENANTS, seed, NOW))
    partitions = np.array([i % 3 for i in range(len(lines))], np.int32)
    offsets = np.arange(len(lines), dtype=np.int64) + 1000
    return lines, partitions, offsets


def test_window_rows_of_every_kind_equal_the_reference_and_carry_the_ledger() -> None:
    lines, partitions, offsets = _batch()
    out = process_batch(BatchDecoder(TENANTS), lines, partitions, offsets, NOW_MS)
    expected = _reference(out.events)
    rows = [r for r in out.kpi_rows.to_pylist() if r["window"] != LEDGER_WINDOW]
    assert len(rows) == len(expected) and {r["window"] for r in rows} == set(KINDS)
    for r in rows:
        want = expected[(r["window"], r["partition"], r["tenant_id"], r["campaign_id"], r["source"], r["window_start_ms"])]
        assert [r["events"], r["impressions"], r["clicks"], r["conversions"]] == want[:4]
        assert math.isclose(r["cost"], want[4], rel_tol=1e-12, abs_tol=1e-9)
        assert math.isclose(r["revenue"], want[5], rel_tol=1e-12, abs_tol=1e-9)
        assert (r["first_offset"], r["last_offset"]) == out.ranges[r["partition"]]
    ledger = [(r["partition"], r["first_offset"], r["last_offset"]) for r in out.kpi_rows.to_pylist() if r["window"] == LEDGER_WINDOW]
    assert sorted(ledger) == [(p, *out.ranges[p]) for p in range(3)]
    assert out.ranges == {p: (int(offsets[partitions == p].min()), int(offsets[partitions == p].max())) for p in range(3)}


def test_replayed_offsets_rebuild_state_but_produce_nothing() -> None:
    lines, partitions, offsets = _batch(3000)
    clean_decoders = {p: BatchDecoder(TENANTS) for p in range(3)}
    clean = process_batch(clean_decoders.__getitem__, lines, partitions, offsets, NOW_MS)
    cut = {0: int(offsets[1500]), 1: int(offsets[-1]), 2: 999}  # partly, wholly and not applied before
    decoders = {p: BatchDecoder(TENANTS) for p in range(3)}
    replay = process_batch(decoders.__getitem__, lines, partitions, offsets, NOW_MS, applied=cut)
    assert set(replay.ranges) == {0, 2} and replay.ranges[0][0] == offsets[1500] + 3 - (offsets[1500] - 1000) % 3
    fresh = (clean.events["offset"] > np.vectorize(cut.get)(clean.events["partition"]))
    assert replay.events["event_id"].tolist() == clean.events["event_id"][fresh].tolist()
    assert replay.counts.read == sum(int((offsets[partitions == p] > c).sum()) for p, c in cut.items())
    assert [r.offset for r in replay.rejects] == [r.offset for r in clean.rejects if r.offset > cut[r.partition]]


def test_a_partition_slice_without_valid_events_still_gets_a_ledger_row() -> None:
    out = process_batch(BatchDecoder(TENANTS), [b"{", b"[]"], np.array([4, 4], np.int32), np.array([7, 8]), NOW_MS)
    assert [(r["window"], r["partition"], r["events"], r["first_offset"], r["last_offset"])
            for r in out.kpi_rows.to_pylist()] == [(LEDGER_WINDOW, 4, 0, 7, 8)]
    assert out.counts.quarantined == 2 and out.quarantine_rows.column("reason").to_pylist() == ["invalid_json", "not_an_object"]


def test_empty_batch_has_no_rows() -> None:
    events = BatchDecoder(TENANTS).decode([], now_ms=NOW_MS).events
    assert kpi_window_rows(events, {}, NOW_MS).num_rows == 0


def test_kpi_rows_use_enriched_channels_and_currency_while_raw_events_stay_as_received() -> None:
    from functools import partial

    from mkt_ray.pipeline import enrich
    from mkt_ray.settings import CurrencySettings, TenantConfig
    from tests.contract.factories import encode, make_event

    lines = [
        encode(make_event("ad_metrics", event_id="a", timestamp="2026-11-27T11:00:10Z", source="AdWords",
                          performance_metrics={"impressions": 10, "cost": 10.0}, metadata={"currency": "EUR"})),
        encode(make_event("ad_metrics", event_id="b", timestamp="2026-11-27T11:00:20Z", source="google",
                          performance_metrics={"impressions": 5, "cost": 2.0})),
    ]
    enricher = partial(enrich, tenants={"acme": TenantConfig()}, currency=CurrencySettings(rates={"EUR": 1.5}))
    out = process_batch(BatchDecoder(TENANTS), lines, np.zeros(2, np.int32), np.arange(2), NOW_MS, enrich_with=enricher)
    assert out.events["source"].tolist() == ["AdWords", "google"]
    rows = [r for r in out.kpi_rows.to_pylist() if r["window"] == "tumbling_1m"]
    assert [(r["source"], r["impressions"], r["cost"]) for r in rows] == [("google_ads", 15, 17.0)]


def test_a_batch_over_two_partitions_joins_enriched_and_raw_columns_row_for_row() -> None:
    from functools import partial

    from mkt_ray.pipeline import enrich
    from mkt_ray.settings import CurrencySettings, TenantConfig
    from tests.contract.factories import encode, make_event

    raw = [("a", "AdWords", 10.0, "EUR"), ("b", "meta", 4.0, None), ("c", "google", 2.0, None), ("d", "fb", 1.0, "EUR")]
    lines = [encode(make_event("ad_metrics", event_id=i, source=s, performance_metrics={"impressions": 1, "cost": c},
                               **({"metadata": {"currency": cur}} if cur else {}))) for i, s, c, cur in raw]
    enricher = partial(enrich, tenants={"acme": TenantConfig()}, currency=CurrencySettings(rates={"EUR": 1.5}))
    out = process_batch(BatchDecoder(TENANTS), lines, np.array([0, 1, 0, 1], np.int32), np.array([0, 0, 1, 1]), NOW_MS,
                        enrich_with=enricher)
    order = ["a", "c", "b", "d"]  # partition by partition, each in offset order
    assert out.events["event_id"].tolist() == order and out.kpi_events["event_id"].tolist() == order
    assert out.events["source"].tolist() == ["AdWords", "google", "meta", "fb"]
    assert out.kpi_events["source"].tolist() == ["google_ads", "google_ads", "meta", "meta"]
    assert out.events["cost"].tolist() == [10.0, 2.0, 4.0, 1.0]
    assert out.kpi_events["cost"].tolist() == [15.0, 2.0, 4.0, 1.5]
    assert out.kpi_events["partition"].tolist() == [0, 0, 1, 1]


def test_a_batch_in_pieces_of_any_size_gives_what_one_pass_gives(tmp_path) -> None:
    """Decode, enrichment, attribution and the Arrow outputs piece by piece: the same output as one pass
    (every stateful step decides by stream order), including replayed offsets and rejects."""
    from functools import partial

    from mkt_ray.pipeline import (
        PartitionState,
        attribute_partition,
        enrich,
        shard_events,
        shard_tables,
        tenant_partitions,
    )
    from mkt_ray.rawstore import archive_partitions, read_raw, slice_name
    from mkt_ray.settings import CurrencySettings, TenantConfig

    lines, partitions, offsets = _batch(3000, seed=11)
    tenants = {t: TenantConfig() for t in TENANTS}
    cut = {0: int(offsets[1200]), 1: 999}

    def run(piece_rows: int):
        decoders = {p: BatchDecoder(TENANTS) for p in range(3)}
        states = {p: PartitionState() for p in range(3)}
        return process_batch(decoders.__getitem__, lines, partitions, offsets, NOW_MS, applied=cut,
                             created_ms=offsets * 7, window_rows=True,
                             enrich_with=partial(enrich, tenants=tenants, currency=CurrencySettings(rates={"EUR": 1.5})),
                             attribute=lambda p, events, applied: attribute_partition(states[p], events, tenants, applied),
                             arrow=True, shards=2, piece_rows=piece_rows)

    def _row_key(row: dict) -> tuple:
        return tuple((name, repr(value)) for name, value in sorted(row.items()))

    def columns(events) -> dict[str, list]:
        return {name: events[name].tolist() for name in events.data}

    def archived(out, name: str) -> list[dict]:
        """The raw store's rows after archiving `events_arrow`, every third event left out (a keep mask)."""
        stems = {p: slice_name(p, first, last) for p, (first, last) in out.ranges.items()}
        keep = np.arange(len(out.events)) % 3 != 0
        archive_partitions(out.events_arrow, str(tmp_path / name), stems, keep=keep)
        return sorted(read_raw(str(tmp_path / name)).to_pylist(), key=lambda row: (row["partition"], row["offset"]))

    with pytest.raises(ValueError, match="piece_rows must be at least 1, not 0"):
        run(0)
    whole = run(10**9)
    assert whole.counts.quarantined and whole.counts.duplicate and whole.credit_rows.num_rows  # every path is taken
    assert whole.events_arrow.equals(whole.events.to_arrow())
    assert all(lines[r.index] == r.raw for r in whole.rejects)  # a reject's index is its position in the batch
    expected_slices = shard_tables(whole.kpi_events, 2)
    expected_raw = archived(whole, "whole")
    assert len(expected_raw) == len(whole.events) - -(-len(whole.events) // 3)
    for piece_rows in (1, 97, 1000):
        out = run(piece_rows)
        assert columns(out.events) == columns(whole.events) and columns(out.kpi_events) == columns(whole.kpi_events)
        assert [(r.index, r.reason, r.raw, r.partition, r.offset) for r in out.rejects] == \
            [(r.index, r.reason, r.raw, r.partition, r.offset) for r in whole.rejects]
        assert out.counts.as_dict() == whole.counts.as_dict()
        assert out.created_ms.tolist() == whole.created_ms.tolist()
        assert (out.ranges, out.watermarks) == (whole.ranges, whole.watermarks)
        assert out.kpi_rows.to_pylist() == whole.kpi_rows.to_pylist()
        assert out.quarantine_rows.to_pylist() == whole.quarantine_rows.to_pylist()
        # rows of a slice come tenant by tenant, so pieces interleave tenants: the same rows, in another order
        assert sorted(map(_row_key, out.credit_rows.to_pylist())) == sorted(map(_row_key, whole.credit_rows.to_pylist()))
        assert out.events_arrow.equals(whole.events_arrow)
        assert set(out.shard_slices) == set(expected_slices)
        for shard, table in out.shard_slices.items():
            assert columns(shard_events(table)) == columns(shard_events(expected_slices[shard]))
            assert tenant_partitions(table) == tenant_partitions(expected_slices[shard])
        assert archived(out, f"pieces-{piece_rows}") == expected_raw
