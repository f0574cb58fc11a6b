"""Decoder-state checkpoints per Kafka partition, stored beside the raw archive.

The partition's state (the decoder's accepted event ids and outlier statistics, which decide which
events are valid, and the tenants' attribution engines) must be taken over as of some offset, and the
stream replayed from there. Checkpoints are pickles named `_checkpoints/p{partition}/{offset:020d}.pkl` under the raw
store URI (a local folder or s3://); names starting with `_` are ignored by Parquet dataset readers.

They hold identity ids (event ids only as hashes), so where the raw store is encrypted (`raw_store.encryption_key`) they
are sealed under the same key (AES-GCM, bound to their partition and offset). A checkpoint is a pickle,
and loading one runs what it holds: with a key set, an unsealed one (written before encryption was
turned on, or planted by someone without the key) is refused unless `raw_store.read_plain_checkpoints`
says to read it, and the partition has no sealed one; then the partition's checkpoints are sealed in place.
"""

from __future__ import annotations

import logging
import pickle

import pyarrow.fs as pafs

from mkt_ray.pipeline._attribution import PartitionState
from mkt_ray.rawstore import RawKeyError, is_sealed, raw_filesystem, seal, unseal

log = logging.getLogger("mkt_ray.checkpoint")
_KEEP = 3  # older checkpoints are removed once a newer one is written


def _folder(root: str, partition: int) -> str:
    return f"{root.rstrip('/')}/_checkpoints/p{partition}"


def _offsets(fs: pafs.FileSystem, folder: str) -> list[int]:
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return sorted(int(i.base_name.split(".")[0]) for i in infos if i.base_name.endswith(".pkl"))


def _label(partition: int, offset: int) -> str:
    return f"checkpoint p{partition}/{offset:020d}"


def save_checkpoint(uri: str, partition: int, offset: int, state: PartitionState, keep: int = _KEEP,
                    key: bytes | None = None) -> None:
    """Durably record `state` as of `offset` (the last offset it includes), sealed under `key` if given;
    keeps the newest `keep` (1 after a right-to-be-forgotten request: older states still hold the
    forgotten person)."""
    fs, root = raw_filesystem(uri)
    folder = _folder(root, partition)
    fs.create_dir(folder, recursive=True)
    temp, final = f"{folder}/.{offset:020d}.tmp", f"{folder}/{offset:020d}.pkl"
    with fs.open_output_stream(temp) as out:
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(data if key is None else seal(data, key, _label(partition, offset)))
    fs.move(temp, final)
    for old in _offsets(fs, folder)[:-keep]:
        fs.delete_file(f"{folder}/{old:020d}.pkl")


def drop_checkpoints_after(uri: str, partition: int, offset: int) -> int:
    """Delete the checkpoints newer than `offset` (the partition's ledger at takeover): a member saves a
    batch's state before the batch is written, so one that stopped in between leaves a state the ledger
    never reached. Left there, it would outrank (and, with keep=1, outlive) the checkpoints written later."""
    fs, root = raw_filesystem(uri)
    folder = _folder(root, partition)
    stale = [o for o in _offsets(fs, folder) if o > offset]
    for old in stale:
        fs.delete_file(f"{folder}/{old:020d}.pkl")
    return len(stale)


def load_checkpoint(uri: str, partition: int, at_most: int, key: bytes | None = None,
                    read_plain: bool = False) -> tuple[int, PartitionState] | None:
    """The newest checkpoint whose offset is at most `at_most`, as (offset, state); None if there is none.
    A sealed one needs `key` (RawKeyError without it or with another). With `key`, an unsealed one is
    RawKeyError, unless `read_plain` and the partition has no sealed checkpoint (all were written before
    encryption was turned on): then every checkpoint of the partition is sealed in place, so the setting
    matters for one restart only."""
    fs, root = raw_filesystem(uri)
    folder = _folder(root, partition)
    usable = [o for o in _offsets(fs, folder) if o <= at_most]
    if not usable:
        return None
    with fs.open_input_stream(f"{folder}/{usable[-1]:020d}.pkl") as data:
        blob = data.read()
    if key is not None and read_plain and not is_sealed(blob):
        _seal_in_place(fs, folder, partition, key)
    else:
        blob = unseal(blob, key, _label(partition, usable[-1]))
    return usable[-1], pickle.loads(blob)  # noqa: S301 - our own files: sealed, or vouched for by the operator


def _seal_in_place(fs: pafs.FileSystem, folder: str, partition: int, key: bytes) -> None:
    """Seal every checkpoint of a partition that has no sealed one (RawKeyError if it has)."""
    blobs = {}
    for offset in _offsets(fs, folder):
        with fs.open_input_stream(f"{folder}/{offset:020d}.pkl") as data:
            blobs[offset] = data.read()
    sealed = [offset for offset, blob in blobs.items() if is_sealed(blob)]
    if sealed:
        raise RawKeyError(
            f"checkpoints of partition {partition} are sealed (the newest at offset {sealed[-1]}), and one beside "
            "them is not: it was not written before encryption was turned on, and is not loaded even with "
            "raw_store.read_plain_checkpoints; delete the unsealed ones to resume from the sealed")
    for offset, blob in blobs.items():
        temp = f"{folder}/.{offset:020d}.tmp"
        with fs.open_output_stream(temp) as out:
            out.write(seal(blob, key, _label(partition, offset)))
        fs.move(temp, f"{folder}/{offset:020d}.pkl")
    log.warning("sealed %d plain checkpoints of partition %d under the raw store's key", len(blobs), partition)
