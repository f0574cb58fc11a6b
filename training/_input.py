"""The training input: one tenant's user-level raw events between two dates, as a Ray Dataset.

The raw store is `tenant_id=/date=/event_type=/` Parquet (mkt_ray.rawstore). The tenant and the dates
are checked against what the store holds before anything is read, so a typo gets an error naming what
exists instead of an empty model; the read itself prunes by partition (tenant, dates, user-level event
types), so files of other tenants, days and event types are never opened, and decodes only the columns
asked for. Ray Data runs the read (`RawPartitions`: read tasks over the pruned files), each task scanning
its files with pyarrow.dataset: Ray Data's own Parquet reader spent about 6 s per million rows on
per-file work over the archiver's many small files (32 s against 3 s for 5M rows, same columns). An
encrypted store is read with its key through `raw_dataset` (Ray Data's readers take no decryption
properties), still filtered by partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from mkt_ray.contract import USER_LEVEL_TYPES
from mkt_ray.errors import InputError
from mkt_ray.rawstore import raw_dataset, raw_filesystem, raw_partitioning

# Ray Data's default (at least 200 read blocks) costs seconds of task overhead on a small cluster, and the
# journeys need the tenant's rows in one place anyway; a few blocks still read files in parallel.
READ_BLOCKS = 8


@dataclass(frozen=True)
class InputRange:
    """What a training run reads: the store, the tenant and the inclusive date range found in it."""

    uri: str
    tenant: str
    since: str  # YYYY-MM-DD, the first date read
    until: str  # the last date read
    dates: tuple[str, ...]


def _iso_day(text: str | None, flag: str) -> str | None:
    # imported here: the jobs' module brings the pipeline and the warehouse (0.4 s), which the read tasks of
    # every Ray Data worker importing this module never use
    from training._jobs import parse_day

    return parse_day(text, flag).isoformat() if text is not None else None


def locate_input(uri: str, tenant: str, since: str | None, until: str | None) -> InputRange:
    """Check the store, tenant and dates; the dates that will be read. Clear errors otherwise."""
    since, until = _iso_day(since, "--since"), _iso_day(until, "--until")
    if since and until and since > until:
        raise InputError(f"--since {since} is after --until {until}")
    filesystem, root = raw_filesystem(uri)
    tenants = _partition_values(filesystem, root, "tenant_id")
    if tenants is None:
        raise InputError(f"raw store {uri} does not exist or is not a folder")
    if tenant not in tenants:
        raise InputError(f"unknown tenant {tenant!r} in raw store {uri}; "
                         f"tenants found: {', '.join(sorted(tenants)) or 'none (the store is empty)'}")
    dates = sorted(_partition_values(filesystem, f"{root}/tenant_id={tenant}", "date") or [])
    chosen = tuple(d for d in dates if (since is None or d >= since) and (until is None or d <= until))
    if not chosen:
        raise InputError(f"no raw events of tenant {tenant!r} between {since or 'the start'} and "
                         f"{until or 'the end'} in {uri}; dates found: {', '.join(dates) or 'none'}")
    return InputRange(uri, tenant, chosen[0], chosen[-1], chosen)


def read_input(found: InputRange, key: bytes | None = None, columns: list[str] | None = None) -> ray.data.Dataset:
    """The tenant's user-level events of the chosen dates, partition columns restored: all raw columns,
    or only `columns` (Parquet is columnar: the others are never decoded)."""
    if key is not None:
        return ray.data.from_arrow(read_table(found, key, columns))
    return ray.data.read_datasource(RawPartitions(found, columns), override_num_blocks=READ_BLOCKS)


class RawPartitions(Datasource):
    """The Parquet files of the chosen partitions, split among read tasks that scan them with pyarrow."""

    def __init__(self, found: InputRange, columns: list[str] | None) -> None:
        self._filesystem, self._root = raw_filesystem(found.uri)
        tenant_dir = f"{self._root}/tenant_id={found.tenant}"
        dataset = pads.dataset(tenant_dir, filesystem=self._filesystem, format="parquet", partitioning=raw_partitioning(),
                               partition_base_dir=self._root)
        self._paths = [f.path for f in dataset.get_fragments(filter=_partition_filter(found))]
        self._columns = columns

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: object = None) -> list[ReadTask]:
        chunks = np.array_split(np.arange(len(self._paths)), max(1, min(parallelism, len(self._paths))))
        tasks = []
        for chunk in chunks:
            paths = [self._paths[i] for i in chunk.tolist()]
            if paths:
                read = partial(_scan, paths, self._filesystem, self._root, self._columns)
                tasks.append(ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None,
                                                          input_files=tuple(paths))))
        return tasks


def _scan(paths: list[str], filesystem: pafs.FileSystem, root: str, columns: list[str] | None) -> list[pa.Table]:
    """One read task: its files (partition columns from their paths), with pyarrow's threaded scanner."""
    dataset = pads.dataset(paths, filesystem=filesystem, format="parquet", partitioning=raw_partitioning(),
                           partition_base_dir=root)
    return [dataset.to_table(columns=columns)]


def _partition_filter(found: InputRange) -> pads.Expression:
    return ((pads.field("tenant_id") == found.tenant) & pads.field("date").isin(list(found.dates))
            & pads.field("event_type").isin(sorted(USER_LEVEL_TYPES)))


def read_table(found: InputRange, key: bytes | None = None, columns: list[str] | None = None) -> pa.Table:
    """The same rows as `read_input`, read in this process with pyarrow (no Ray)."""
    return raw_dataset(found.uri, key).to_table(columns=columns, filter=_partition_filter(found))


def _partition_values(filesystem: pafs.FileSystem, folder: str, key: str) -> set[str] | None:
    """Values of `key=` sub-folders of `folder`; None when the folder does not exist."""
    info = filesystem.get_file_info(folder)
    if info.type != pafs.FileType.Directory:
        return None
    entries = filesystem.get_file_info(pafs.FileSelector(folder))
    prefix = f"{key}="
    return {e.base_name[len(prefix):] for e in entries
            if e.type == pafs.FileType.Directory and e.base_name.startswith(prefix)}
