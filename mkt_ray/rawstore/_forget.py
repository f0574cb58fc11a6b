"""Right to be forgotten in the raw store: rewrite files without a person's rows, and tombstones.

Raw files are immutable for the pipeline; erasure is the one exception. A file holding a person's rows
is rewritten without them: the new file is written beside it under a `_`-prefixed name (ignored by
dataset readers) and moved over the old name, so a reader sees the old file or the new one, never a
half-written one (a rename on local disks; on object stores, a copy whose readers see either version).

Tombstones keep a forgotten person out of later replays: per tenant, the tenant-salted SHA-256 of each
identity node (`user_id:u1`), stored under `_tombstones/` in the raw store (which replays read, and
which outlives a fresh warehouse). Hashes, not the identities: the list of the forgotten must not
itself remember who they were. The pipeline drops events of tombstoned identities from the archive,
the quarantine and attribution (`Tombstones`), whatever offsets it replays.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from mkt_ray.contract import IDENTITY_FIELDS, group_column
from mkt_ray.rawstore._archive import raw_dataset, raw_filesystem, write_parquet
from mkt_ray.rawstore._encryption import read_format

TOMBSTONES_FOLDER = "_tombstones"  # under the raw store root


def identity_hash(tenant: str, node: str) -> str:
    """The tenant-salted SHA-256 (hex) of an identity node `field:value`: what tombstones and audits keep."""
    return hashlib.sha256(f"{tenant}\x00{node}".encode()).hexdigest()


def identity_nodes(identity: str) -> list[str]:
    """The identity nodes an identity names: `user_id:u1` is one; a bare `u1` is that value in any identity field."""
    field, sep, value = identity.partition(":")
    if sep and field in IDENTITY_FIELDS and value:
        return [identity]
    return [f"{name}:{identity}" for name in IDENTITY_FIELDS]


def nodes_by_field(nodes: Iterable[str]) -> dict[str, set[str]]:
    """{identity field: values} of identity nodes."""
    values: dict[str, set[str]] = {}
    for node in nodes:
        field, _, value = node.partition(":")
        values.setdefault(field, set()).add(value)
    return values


def save_tombstones(uri: str, tenant: str, hashes: Iterable[str]) -> int:
    """Add identity hashes to the tenant's tombstones (write then rename); returns how many it holds."""
    filesystem, root = raw_filesystem(uri)
    folder = f"{root.rstrip('/')}/{TOMBSTONES_FOLDER}"
    filesystem.create_dir(folder, recursive=True)
    held = sorted(load_tombstones(uri).get(tenant, frozenset()) | set(hashes))
    temp, final = f"{folder}/.{tenant}-{uuid.uuid4().hex}.tmp", f"{folder}/{tenant}.json"
    with filesystem.open_output_stream(temp) as out:
        out.write(json.dumps(held).encode())
    filesystem.move(temp, final)
    return len(held)


def load_tombstones(uri: str) -> dict[str, frozenset[str]]:
    """Every tenant's tombstoned identity hashes."""
    filesystem, root = raw_filesystem(uri)
    folder = f"{root.rstrip('/')}/{TOMBSTONES_FOLDER}"
    out: dict[str, frozenset[str]] = {}
    for info in filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        if info.type == pafs.FileType.File and info.base_name.endswith(".json") and not info.base_name.startswith("."):
            with filesystem.open_input_stream(info.path) as data:
                out[info.base_name[: -len(".json")]] = frozenset(json.loads(data.read()))
    return out


class Tombstones:
    """Every tenant's tombstoned identity hashes, and the identity values found clean against them.

    Checking an identity value is a salted SHA-256 (~0.8 µs; hashing every value of every event cost a
    tenant with any tombstone 1.2 µs an event, per check). A batch holds each value several times and the
    next batches hold most of them again, so the values found clean are kept per tenant and field, tied to
    the tenant's hashes they were judged against (more tombstones start over), and are not hashed again.
    Values found forgotten are not kept (the forgotten are not remembered) and are hashed at each check;
    they are few. Past `memo_limit` values, all are dropped and judged again. Checks may run in several
    threads while `add` runs in another: a value may then be hashed once in each, never judged wrongly.
    """

    def __init__(self, hashes: Mapping[str, frozenset[str]] | None = None, memo_limit: int = 500_000) -> None:
        self.hashes: dict[str, frozenset[str]] = dict(hashes or {})
        self.memo_limit = memo_limit
        self._clean: dict[str, tuple[frozenset[str], dict[str, set]]] = {}  # tenant -> (judged against, field -> values)

    def add(self, tenant: str, hashes: Iterable[str]) -> None:
        """Tombstone more identity hashes of a tenant."""
        self.hashes = {**self.hashes, tenant: self.hashes.get(tenant, frozenset()) | frozenset(hashes)}

    def rows(self, tenants: np.ndarray, identities: Mapping[str, np.ndarray]) -> np.ndarray:
        """Mask of the rows (events as columns) whose tenant tombstoned any of their identity values."""
        mask = np.zeros(len(tenants), bool)
        held = self.hashes  # add() replaces the dict: one consistent view for the whole call
        if not any(held.values()):
            return mask
        if self.judged() > self.memo_limit:
            self._clean = {}
        for tenant, rows in group_column(tenants, np.arange(len(tenants))):
            hashes = held.get(tenant)
            if not hashes:
                continue
            for field, clean in self._judged(tenant, hashes).items():
                values = identities[field][rows].tolist()
                if clean.issuperset(values):  # one C pass: the usual answer
                    continue
                forgotten = set()
                for value in set(values).difference(clean):
                    (forgotten if identity_hash(tenant, f"{field}:{value}") in hashes else clean).add(value)
                if forgotten:
                    mask[rows] |= np.fromiter(map(forgotten.__contains__, values), bool, len(values))
        return mask

    def judged(self) -> int:
        """How many (tenant, field, value) are kept as clean."""
        return sum(len(values) - 1 for _, by_field in list(self._clean.values()) for values in by_field.values())

    def _judged(self, tenant: str, hashes: frozenset[str]) -> dict[str, set]:
        entry = self._clean.get(tenant)
        if entry is None or entry[0] is not hashes:  # first check, or judged against other tombstones
            entry = (hashes, {field: {None} for field in IDENTITY_FIELDS})  # an absent identity is clean
            self._clean[tenant] = entry
        return entry[1]


def forgotten_rows(tenants: np.ndarray, identities: Mapping[str, np.ndarray],
                   tombstones: Mapping[str, frozenset[str]]) -> np.ndarray:
    """Mask of the rows (events as columns) whose tenant tombstoned any of their identity values (one
    check: a pipeline member keeps a `Tombstones`, whose verdicts serve its later batches)."""
    return Tombstones(tombstones).rows(tenants, identities)


class _Identities(msgspec.Struct):
    tenant_id: object = None
    user_id: object = None
    anonymous_id: object = None
    device_id: object = None
    account_id: object = None


_IDENTITIES = msgspec.json.Decoder(_Identities).decode


def forgotten_raw(raws: list[bytes], tombstones: Mapping[str, frozenset[str]]) -> np.ndarray:
    """Mask of the raw (possibly invalid) messages whose readable tenant and identities are tombstoned."""
    mask = np.zeros(len(raws), bool)
    if not tombstones:
        return mask
    for i, raw in enumerate(raws):
        try:
            ids = _IDENTITIES(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            continue  # unreadable: nothing in it can be matched to an identity
        hashes = tombstones.get(ids.tenant_id) if isinstance(ids.tenant_id, str) else None
        if hashes:
            mask[i] = any(isinstance(v := getattr(ids, f), str) and identity_hash(ids.tenant_id, f"{f}:{v}") in hashes
                          for f in IDENTITY_FIELDS)
    return mask


def forget_raw_rows(uri: str, tenant: str, nodes: Iterable[str], key: bytes | None = None) -> tuple[int, int]:
    """Rewrite the tenant's raw files without the rows of these identity nodes; (rows removed, files changed).

    A file left with no row is deleted. `key` as for `archive_events` (an encrypted store stays encrypted).
    """
    filesystem, root = raw_filesystem(uri)
    import pyarrow.dataset as ds  # imported here: pyarrow.dataset imports pandas (see raw_partitioning)

    wanted = nodes_by_field(nodes)
    read = read_format(key) if key is not None else "parquet"
    removed = changed = 0
    base = f"{root.rstrip('/')}/tenant_id={tenant}"
    for info in filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True)):
        hidden = "/_" in info.path[len(base):] or info.base_name.startswith(".")
        if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet") or hidden:
            continue
        table = ds.dataset(info.path, filesystem=filesystem, format=read).to_table()
        drop = _rows_of(table, wanted)
        n = int(pc.sum(drop).as_py() or 0)
        if n == 0:
            continue
        kept = table.filter(pc.invert(drop))
        if kept.num_rows:
            _replace(filesystem, info.path, kept, key)
        else:
            filesystem.delete_file(info.path)
        removed, changed = removed + n, changed + 1
    return removed, changed


def _rows_of(table: pa.Table, wanted: Mapping[str, set[str]]) -> pa.Array:
    mask = pa.array(np.zeros(table.num_rows, bool))
    for field, values in wanted.items():
        if field in table.column_names:
            hit = pc.fill_null(pc.is_in(table[field], value_set=pa.array(sorted(values), pa.string())), False)
            mask = pc.or_(mask, hit)
    return mask


def _replace(filesystem: pafs.FileSystem, path: str, table: pa.Table, key: bytes | None) -> None:
    """Write `table` to a hidden sibling file (readers skip names starting with `_`), then move it over `path`."""
    folder, _, name = path.rpartition("/")
    temp = f"{folder}/_rewrite-{uuid.uuid4().hex}-{name}"
    write_parquet(filesystem, temp, table, key)
    filesystem.move(temp, path)


def linked_nodes(uri: str, tenant: str, nodes: Iterable[str], key: bytes | None = None) -> set[str]:
    """The identity nodes that appear on one archived event with these, transitively: one person.

    Expands a frontier over the tenant's identity columns (a few vectorised passes, one per link hop).
    """
    import pyarrow.dataset as ds  # imported here: pyarrow.dataset imports pandas (see raw_partitioning)

    table = raw_dataset(uri, key).to_table(columns=list(IDENTITY_FIELDS), filter=ds.field("tenant_id") == tenant)
    known, frontier = set(nodes), set(nodes)
    while frontier and table.num_rows:
        hit = _rows_of(table, nodes_by_field(frontier))
        rows = table.filter(hit)
        table = table.filter(pc.invert(hit))  # a row joins the person once
        found = {f"{field}:{v}" for field in IDENTITY_FIELDS for v in rows[field].to_pylist() if v is not None}
        frontier = found - known
        known |= found
    return known
