"""The raw archive's layout: one file per Kafka partition slice, tenant, date and event type, rows in stream order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mkt_ray.contract import EVENT_TYPES as TYPES_BY_CODE
from mkt_ray.contract import BatchDecoder
from mkt_ray.rawstore import archive_partitions, read_raw
from tests.contract.factories import NOW, NOW_MS, TENANTS, encode, make_event

TYPES = ("touchpoint", "conversion", "ad_metrics", "identify")


def _batch(n: int = 400):
    """A decoded batch over 2 tenants, 4 event types, 2 UTC dates and 3 Kafka partitions, shuffled."""
    rng = random.Random(5)
    lines, partitions = [], []
    for i in range(n):
        when = NOW - timedelta(hours=rng.choice([1, 13]), minutes=rng.randrange(60))  # today or yesterday
        event = make_event(rng.choice(TYPES), event_id=f"e{i}", tenant_id=rng.choice(sorted(TENANTS)),
                           timestamp=when.isoformat().replace("+00:00", "Z"))
        lines.append(encode(event))
        partitions.append(rng.randrange(3))
    decoded = BatchDecoder(TENANTS).decode(lines, np.array(partitions), np.arange(n), now_ms=NOW_MS)
    assert len(decoded.events) == n
    return decoded.events


def _reference(events, stems: dict[int, str], keep: np.ndarray) -> dict[str, list[str]]:
    """Plain Python: the relative path of each row's file, and each file's event ids in stream order."""
    files: dict[str, list[str]] = {}
    for i in range(len(events)):
        partition = int(events["partition"][i])
        if partition not in stems or not keep[i]:
            continue
        date = datetime.fromtimestamp(int(events["ts_ms"][i]) / 1000, UTC).strftime("%Y-%m-%d")
        event_type = TYPES_BY_CODE[int(events["event_type"][i])]
        path = f"tenant_id={events['tenant_id'][i]}/date={date}/event_type={event_type}/{stems[partition]}-0.parquet"
        files.setdefault(path, []).append(events["event_id"][i])
    return files


def test_each_partition_slice_tenant_date_and_type_is_one_file_in_stream_order(tmp_path: Path) -> None:
    events = _batch()
    stems = {0: "p0-00000000000000000000-00000000000000000399", 2: "p2-00000000000000000005-00000000000000000398"}
    keep = np.arange(len(events)) % 7 != 3  # e.g. rows of forgotten persons
    expected = _reference(events, stems, keep)
    assert len({path.split("/")[1] for path in expected}) == 2  # the batch spans two dates

    written = archive_partitions(events.to_arrow(), str(tmp_path), stems, keep=keep)

    assert written == sum(map(len, expected.values()))
    found = {str(p.relative_to(tmp_path)): pq.read_table(p)["event_id"].to_pylist() for p in tmp_path.rglob("*.parquet")}
    assert found == expected  # partition 1 (no stem) and the rows not kept are nowhere
    back = read_raw(str(tmp_path))
    rows = {event_id: i for i, event_id in enumerate(events["event_id"].tolist())}
    for event_id, tenant, event_type, cost in zip(*(back[c].to_pylist() for c in ("event_id", "tenant_id", "event_type", "cost")),
                                                   strict=True):
        i = rows[event_id]
        assert (tenant, event_type, cost) == (events["tenant_id"][i], TYPES_BY_CODE[int(events["event_type"][i])], events["cost"][i])


def test_a_replayed_slice_rewrites_the_same_files(tmp_path: Path) -> None:
    events = _batch(120)
    for _ in range(2):
        archive_partitions(events.to_arrow(), str(tmp_path), {}, default="p0-a-b")
    assert read_raw(str(tmp_path)).num_rows == 120

