"""The raw archive's layout: one file per Kafka partition slice, tenant, date and event type, rows in stream order."""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mkt_ray.contract import EVENT_TYPES as TYPES_BY_CODE
from mkt_ray.contract import BatchDecoder
from mkt_ray.rawstore import archive_partitions, read_raw
from mkt_ray.rawstore._encryption import read_format
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


@pytest.mark.parametrize("encrypted", [False, True])
def test_each_partition_slice_tenant_date_and_type_is_one_file_in_stream_order(tmp_path: Path, encrypted: bool) -> None:
    events = _batch()
    stems = {0: "p0-00000000000000000000-00000000000000000399", 2: "p2-00000000000000000005-00000000000000000398"}
    keep = np.arange(len(events)) % 7 != 3  # e.g. rows of forgotten persons
    expected = _reference(events, stems, keep)
    assert len({path.split("/")[1] for path in expected}) == 2  # the batch spans two dates
    key = secrets.token_bytes(32) if encrypted else None

    written = archive_partitions(events.to_arrow(), str(tmp_path), stems, key, keep=keep)

    assert written == sum(map(len, expected.values()))
    read = read_format(key) if key else "parquet"
    found = {str(p.relative_to(tmp_path)): ds.dataset(p, format=read).to_table()["event_id"].to_pylist()
             for p in tmp_path.rglob("*.parquet")}
    assert found == expected  # partition 1 (no stem) and the rows not kept are nowhere
    back = read_raw(str(tmp_path), key=key)
    rows = {event_id: i for i, event_id in enumerate(events["event_id"].tolist())}
    for event_id, tenant, event_type, cost in zip(*(back[c].to_pylist() for c in ("event_id", "tenant_id", "event_type", "cost")),
                                                   strict=True):
        i = rows[event_id]
        assert (tenant, event_type, cost) == (events["tenant_id"][i], TYPES_BY_CODE[int(events["event_type"][i])], events["cost"][i])


def test_unlisted_partitions_go_under_the_default_stem_and_text_event_types_work(tmp_path: Path) -> None:
    events = _batch(200)
    table = events.to_arrow()
    table = table.set_column(table.schema.get_field_index("event_type"), "event_type",
                             pc.cast(table["event_type"], pa.string()))  # as a table read back has it
    table = pa.concat_tables([table.slice(0, 90), table.slice(90)])  # two chunks
    stems = {1: "p1-a-b"}
    keep = np.ones(len(events), bool)
    expected = _reference(events, {p: stems.get(p, "rest") for p in range(3)}, keep)

    assert archive_partitions(table, str(tmp_path), stems, default="rest") == 200
    found = {str(p.relative_to(tmp_path)): pq.read_table(p)["event_id"].to_pylist() for p in tmp_path.rglob("*.parquet")}
    assert found == expected
    assert archive_partitions(table, str(tmp_path / "none"), stems, keep=np.zeros(200, bool)) == 0
    assert not (tmp_path / "none").exists()


def test_a_row_without_a_tenant_is_refused_not_filed_elsewhere(tmp_path: Path) -> None:
    table = _batch(10).to_arrow()
    tenants = pa.array([None, *table["tenant_id"].to_pylist()[1:]], pa.string())
    table = table.set_column(table.schema.get_field_index("tenant_id"), "tenant_id", tenants)
    with pytest.raises(ValueError, match="1 rows without a value"):
        archive_partitions(table, str(tmp_path), {}, default="p0-a-b")
    assert not any(tmp_path.rglob("*.parquet"))


def test_a_replayed_slice_rewrites_the_same_files(tmp_path: Path) -> None:
    events = _batch(120)
    for _ in range(2):
        archive_partitions(events.to_arrow(), str(tmp_path), {}, default="p0-a-b")
    assert read_raw(str(tmp_path)).num_rows == 120

