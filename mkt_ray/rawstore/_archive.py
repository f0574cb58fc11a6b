"""Write the raw archive with pyarrow.parquet and read it with pyarrow.dataset (local folders and s3://
through pyarrow.fs).

Each applied batch writes files named after the partition and offset range it covers, so a batch
replayed after a crash rewrites the same files instead of adding copies: the archive stays exact.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mkt_ray.contract import EventColumns
from mkt_ray.rawstore._encryption import RawKeyError, file_encryption, read_format

if TYPE_CHECKING:
    import pyarrow.dataset as ds

_DAY_MS = 86_400_000
_DICTIONARY_COLUMNS = ("source", "campaign_id")  # the few text columns that repeat within a file
_WRITERS = 4  # raw files written at once
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@cache
def raw_partitioning() -> ds.Partitioning:
    """The archive's hive layout, `tenant_id=/date=/event_type=/`.

    pyarrow.dataset is imported where the archive is read, never at import: it imports pandas (~0.5 s of
    CPU), and most processes that import this package (tenant shards, the store, Serve replicas, the
    writers, which use pyarrow.parquet) never read the archive.
    """
    import pyarrow.dataset as ds

    return ds.partitioning(
        pa.schema([("tenant_id", pa.string()), ("date", pa.string()), ("event_type", pa.string())]), flavor="hive")


def raw_filesystem(uri: str, create: bool = False) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root folder (no trailing slash) of a raw store URI: a local folder, which
    `create` makes where it is missing (writers only: a reader must not leave a folder behind a typo),
    or an `s3://` (any pyarrow.fs) URI."""
    if "://" in uri:
        filesystem, root = pafs.FileSystem.from_uri(uri)
    else:
        filesystem, root = pafs.LocalFileSystem(), str(uri)
        if create:
            filesystem.create_dir(root, recursive=True)
    return filesystem, root.rstrip("/") or "/"


def raw_store_exists(uri: str) -> bool:
    """Whether the store's root folder is there (an object store's prefix always is: an empty one lists
    nothing)."""
    return _root_exists(uri, *raw_filesystem(uri))


def _root_exists(uri: str, filesystem: pafs.FileSystem, root: str) -> bool:
    return "://" in uri or filesystem.get_file_info(root).type == pafs.FileType.Directory


def archive_events(events: EventColumns, uri: str, batch_name: str, key: bytes | None = None) -> int:
    """Write one batch of valid events under `uri`; returns the rows written. With `key` (see
    `raw_key`), every file is encrypted (Parquet modular encryption, AES-GCM, footer included)."""
    return archive_partitions(events.to_arrow(), uri, {}, key, default=batch_name) if len(events) else 0


def archive_partitions(
    table: pa.Table, uri: str, stems: Mapping[int, str], key: bytes | None = None,
    keep: np.ndarray | None = None, default: str | None = None,
) -> int:
    """Write the rows of each Kafka partition in `stems` (by the table's `partition` column) to files named
    after that partition's stem (`slice_name`); rows of other partitions go under `default`, or nowhere
    if it is None; rows `keep` marks False are not written. Returns the rows written.

    One file per partition, tenant, date and event type: the rows are ordered by those once (a stable
    sort, so each file keeps stream order) and each file is a slice of one `take`, written by one Parquet
    writer, a few files at once. About half the CPU of `pyarrow.dataset.write_dataset` partitioning the
    same table (0.75 against 1.38 µs an event on a 100k batch: it writes dozens of small files, and the
    per-file cost dominates).
    """
    if table.num_rows == 0:
        return 0
    names = [*stems.values(), default]
    stem_codes = np.full(table.num_rows, len(stems) if default is not None else -1, np.int64)
    if stems:
        partitions = table["partition"].to_numpy()
        for code, partition in enumerate(stems):
            stem_codes[partitions == partition] = code
    if keep is not None:
        stem_codes[~keep] = -1
    tenants, tenant_codes = _codes(table["tenant_id"])
    types, type_codes = _codes(table["event_type"])
    days, day_codes = np.unique(table["ts_ms"].to_numpy() // _DAY_MS, return_inverse=True)
    dates = [day_of(day * _DAY_MS) for day in days.tolist()]  # each distinct day formatted once
    group = ((stem_codes * len(tenants) + tenant_codes) * len(days) + day_codes) * len(types) + type_codes
    order = np.flatnonzero(stem_codes >= 0)
    order = order[np.argsort(group[order], kind="stable")]
    if not len(order):
        return 0
    sorted_groups = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]).tolist()
    body = table.drop_columns(["tenant_id", "event_type"]).take(order)
    filesystem, root = raw_filesystem(uri, create=True)
    files: dict[str, pa.Table] = {}
    folders: dict[str, None] = {}
    for start, stop in zip(starts, [*starts[1:], len(order)], strict=True):
        code = int(sorted_groups[start])
        code, type_code = divmod(code, len(types))
        code, day_code = divmod(code, len(days))
        stem_code, tenant_code = divmod(code, len(tenants))
        date = dates[day_code]
        folder = "/".join([root, *(f"{name}={quote(value, safe='')}" for name, value in (
            ("tenant_id", tenants[tenant_code]), ("date", date), ("event_type", types[type_code])))])
        folders[folder] = None
        files[f"{folder}/{names[stem_code]}-0.parquet"] = body.slice(start, stop - start)
    for folder in folders:  # once each: partition slices share folders
        filesystem.create_dir(folder, recursive=True)
    # a few files at once (the writer releases the GIL): on an object store each file is a round trip
    list(_writers().map(lambda path: write_parquet(filesystem, path, files[path], key), files))
    return len(order)


def _writers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="raw-archive")
        return _pool


def day_of(ms: int) -> str:
    """The UTC date (YYYY-MM-DD) of an epoch-milliseconds time: the raw store's `date=` partition value."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def write_parquet(filesystem: pafs.FileSystem, path: str, table: pa.Table, key: bytes | None) -> None:
    """One raw Parquet file (encrypted under `key` when given; see `file_encryption`)."""
    encryption = file_encryption(key) if key is not None else None
    # ids and JSON text are nearly all distinct within a file: a dictionary there is built and dropped
    dictionary = [name for name in _DICTIONARY_COLUMNS if name in table.column_names]
    pq.write_table(table, path, filesystem=filesystem, use_dictionary=dictionary, encryption_properties=encryption)


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """A text (or dictionary) column's distinct values and each row's index into them."""
    if column.null_count:  # a partition folder needs a value: valid events always have one
        raise ValueError(f"{column.null_count} rows without a value in a partition column of the raw store")
    encoded = column.combine_chunks()
    if not pa.types.is_dictionary(encoded.type):
        encoded = pc.dictionary_encode(encoded)
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def slice_name(partition: int, first: int, last: int) -> str:
    """The file name stem of one partition's slice of a batch; zero-padded so names sort by offset."""
    return f"p{partition}-{first:020d}-{last:020d}"


def remove_after(uri: str, partition: int, offset: int) -> int:
    """Delete the files of `partition` whose slice starts after `offset` (left by an unfinished batch)."""
    filesystem, root = raw_filesystem(uri)
    prefix = f"p{partition}-"
    removed = 0
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        name = info.base_name
        if info.type == pafs.FileType.File and name.startswith(prefix) and not info.path.count("/_checkpoints/"):
            if int(name[len(prefix) :].split("-", 1)[0]) > offset:
                filesystem.delete_file(info.path)
                removed += 1
    return removed


def read_raw(uri: str, tenant_id: str | None = None, key: bytes | None = None) -> pa.Table:
    """The archived events (optionally of one tenant), with the partition columns restored; `key`
    decrypts an encrypted store (without it such files raise a pyarrow error naming the missing keys)."""
    import pyarrow.dataset as ds

    dataset = raw_dataset(uri, key)
    return dataset.to_table(filter=None if tenant_id is None else ds.field("tenant_id") == tenant_id)


def raw_dataset(uri: str, key: bytes | None = None) -> ds.Dataset:
    """The raw store as a lazy dataset (filter by `tenant_id`, `date`, `event_type` before reading).

    A store with no events yet (a missing folder, or one holding only checkpoints and tombstones) reads
    as an empty dataset with every raw column, so filters and column choices work on it as on any other.
    """
    import pyarrow.dataset as ds

    filesystem, root = raw_filesystem(uri)
    if not _root_exists(uri, filesystem, root):
        return _empty_dataset()
    parquet = read_format(key) if key is not None else "parquet"
    try:
        dataset = ds.dataset(root, filesystem=filesystem, format=parquet, partitioning=raw_partitioning())
    except OSError as exc:
        if key is None and "encrypt" in str(exc).lower():
            raise RawKeyError(f"raw store {uri} is encrypted: configure raw_store.encryption_key "
                              "(or encryption_key_file) to read it") from exc
        raise
    return dataset if dataset.files else _empty_dataset()


def _empty_dataset() -> ds.Dataset:
    """No rows, the columns of an archived file plus the partition columns, as a store's dataset has."""
    import pyarrow.dataset as ds

    body = EventColumns.empty().to_arrow().drop_columns(["tenant_id", "event_type"])
    schema = pa.schema([*body.schema, *raw_partitioning().schema])
    return ds.dataset(schema.empty_table())
