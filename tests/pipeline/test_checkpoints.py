"""Checkpoint files: a state saved ahead of the ledger (a batch decoded but never written) is dropped at
takeover, so a later keep=1 save (after a right-to-be-forgotten request) is the one that survives."""

from __future__ import annotations

from pathlib import Path

from mkt_ray.pipeline import PartitionState, drop_checkpoints_after, load_checkpoint, save_checkpoint


def _offsets(root: Path, partition: int) -> list[int]:
    return sorted(int(p.stem) for p in (root / "_checkpoints" / f"p{partition}").glob("*.pkl"))


def test_checkpoints_ahead_of_the_ledger_are_dropped_and_keep_one_keeps_the_new_one(tmp_path: Path) -> None:
    uri = str(tmp_path)
    for offset in (99, 199, 299):  # 299: saved for a batch the member never wrote
        save_checkpoint(uri, 3, offset, PartitionState())
    save_checkpoint(uri, 4, 500, PartitionState())
    assert drop_checkpoints_after(uri, 3, 199) == 1  # the ledger is at 199
    assert _offsets(tmp_path, 3) == [99, 199]
    assert _offsets(tmp_path, 4) == [500]  # another partition is untouched
    assert load_checkpoint(uri, 3, at_most=10**9)[0] == 199
    save_checkpoint(uri, 3, 250, PartitionState(), keep=1)  # after a forget: only the state without the person
    assert _offsets(tmp_path, 3) == [250]
    assert drop_checkpoints_after(uri, 7, 0) == 0  # a partition with no checkpoints
