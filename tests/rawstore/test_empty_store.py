"""A raw store with no events yet (a folder not made, or one holding only checkpoints and tombstones) reads
as empty, and reading never makes the folder: a deletion before any event is archived, a replay of a
quiet day, a typo in a path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mkt_ray.contract import BatchDecoder
from mkt_ray.rawstore import (
    archive_events,
    linked_nodes,
    raw_store_exists,
    read_events,
    read_raw,
    save_tombstones,
    slice_name,
)
from tests.contract.factories import NOW_MS, TENANTS, encode, make_event


def _stores(tmp_path: Path) -> dict[str, Path]:
    only_state = tmp_path / "only-state"
    (only_state / "_checkpoints").mkdir(parents=True)
    save_tombstones(str(only_state), "acme", ["0" * 64])
    return {"missing": tmp_path / "missing", "only checkpoints and tombstones": only_state}


@pytest.mark.parametrize("kind", ["missing", "only checkpoints and tombstones"])
def test_a_store_without_events_reads_as_empty(tmp_path: Path, kind: str) -> None:
    store = _stores(tmp_path)[kind]
    uri = str(store)
    assert linked_nodes(uri, "acme", ["user_id:u1", "email:a@x"]) == {"user_id:u1", "email:a@x"}
    events = read_events(uri, "acme", 0, NOW_MS)
    assert len(events) == 0 and "ts_ms" in events.data
    table = read_raw(uri, "acme")
    assert table.num_rows == 0 and {"ts_ms", "user_id", "tenant_id", "date", "event_type"} <= set(table.column_names)
    assert raw_store_exists(uri) is (kind != "missing")
    assert store.exists() is (kind != "missing")  # reading made no folder


def test_a_store_with_other_tenants_events_reads_as_empty_for_this_one(tmp_path: Path) -> None:
    line = encode(make_event("touchpoint", event_id="e1", tenant_id="globex", user_id="u1"))
    decoded = BatchDecoder(TENANTS).decode([line], np.zeros(1, np.int32), np.zeros(1, np.int64), now_ms=NOW_MS)
    assert archive_events(decoded.events, str(tmp_path), slice_name(0, 0, 0)) == 1
    assert linked_nodes(str(tmp_path), "acme", ["user_id:u1"]) == {"user_id:u1"}
    assert len(read_events(str(tmp_path), "acme", 0, NOW_MS + 1)) == 0
    assert len(read_events(str(tmp_path), "globex", 0, NOW_MS + 1)) == 1
