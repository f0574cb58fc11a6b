"""The embedded warehouse: a chDB session on a local data path (same SQL as a ClickHouse server).

chDB allows one process per data path (the engine takes an exclusive lock on `<path>/status`) and,
inside a process, one path at a time. So one actor owns the path and everyone else goes through it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from chdb import session as chdb_session

from mkt_ray.errors import WarehouseError
from mkt_ray.warehouse._dedup import require_dedup_log
from mkt_ray.warehouse._sql import DATABASE_RE, encode_params, quote_identifier, quote_literal, split_table

_SQL_IN_ERRORS = 200  # characters of a failing statement quoted in the error
# One reading thread keeps the INSERT's block boundaries, and so the `<token>_<n>` block ids, the
# same on a retry. With the default threads a 2.5M-row insert re-sent with the same token added a
# ~1M-row block again (100k rows were still deduplicated). It costs nothing at batch sizes: 100k rows
# x 15 columns, median of 14 inserts on 2 cores, ~1.8M rows/s single- or multi-threaded Python(),
# ~1.7M via ArrowStream bytes (send_insert), ~1.1M via Parquet bytes; ~1.6M through StoreActor.
# optimize_on_insert = 0: a Replacing table's rows are not collapsed within each inserted block (ours never
# repeat a key within one insert; a replayed batch's rows repeat them across inserts, which merges and
# FINAL collapse either way). Collapsing cost as much as the rest of the insert: 0.29-0.36 against
# 0.60-1.67 CPU us an event for a batch's attribution credits (0.5 rows an event), merges included.
_INSERT_SETTINGS = "max_threads = 1, max_insert_threads = 1, optimize_on_insert = 0"


class ChdbWarehouse:
    """A `Warehouse` on a chDB data path; creates `database` and makes it the current one.

    `lock_timeout_s` is how long to wait for another process to release the path (an actor that is
    being restarted while its predecessor is still exiting); 0 fails at once.
    """

    def __init__(self, path: Path, database: str, lock_timeout_s: float = 0.0) -> None:
        if not DATABASE_RE.match(database):
            raise WarehouseError(f"database name {database!r} must match {DATABASE_RE.pattern}")
        self.path = Path(path).expanduser().resolve()
        self.database = database
        if "?" in str(self.path):
            raise WarehouseError(f"chDB path {self.path} must not contain '?' (it starts connection options)")
        self.path.mkdir(parents=True, exist_ok=True)
        self._session: chdb_session.Session | None = _open_session(self.path, lock_timeout_s)
        self._dedup_checked: set[tuple[str, str]] = set()
        try:
            self.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
            self.execute(f"USE {quote_identifier(database)}")
        except WarehouseError:
            self.close()  # release the path (and the process's one chDB slot)
            raise

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._query(sql, "CSV", params)

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        table = self.query_arrow(sql, params)
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._query(sql, "ArrowTable", params)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        database, name = split_table(table, self.database)
        if data.num_columns == 0 or data.num_rows == 0:
            return
        settings = _INSERT_SETTINGS
        if dedup_token is not None:
            self._require_dedup_log(database, name)
            settings += f", insert_deduplication_token = {quote_literal(dedup_token)}"
        columns = ", ".join(quote_identifier(column) for column in data.column_names)
        # chDB's Python() table function finds this local by name in the caller's frames and reads
        # the Arrow buffers in place (no IPC or Parquet encoding).
        _mkt_insert_data = data  # noqa: F841
        self._query(
            f"INSERT INTO {quote_identifier(database)}.{quote_identifier(name)} ({columns}) "
            f"SETTINGS {settings} SELECT {columns} FROM Python(_mkt_insert_data)",
            "CSV",
            None,
        )

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> ChdbWarehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "closed"
        return f"ChdbWarehouse(path={str(self.path)!r}, database={self.database!r}, {state})"

    def _query(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        if self._session is None:
            raise WarehouseError(f"chDB warehouse at {self.path} is closed")
        try:
            return self._session.query(sql, fmt, params=encode_params(params))
        except RuntimeError as exc:  # chdb.ChdbError is a RuntimeError
            shown = sql if len(sql) <= _SQL_IN_ERRORS else sql[:_SQL_IN_ERRORS] + "..."
            raise WarehouseError(f"chDB at {self.path} refused {shown!r}: {exc}") from exc

    def _require_dedup_log(self, database: str, name: str) -> None:
        if (database, name) not in self._dedup_checked:
            require_dedup_log(self.query_rows, database, name, f"chDB at {self.path}")
            self._dedup_checked.add((database, name))


def _open_session(path: Path, lock_timeout_s: float) -> chdb_session.Session:
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            return chdb_session.Session(str(path))
        except RuntimeError as exc:
            if "already initialized with path" in str(exc):
                raise WarehouseError(
                    f"cannot open chDB at {path}: this process already has another chDB path open "
                    f"(chDB allows one path per process; close it first): {exc}"
                ) from exc
            if not _status_file_locked(path):
                raise WarehouseError(f"cannot open chDB at {path}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise WarehouseError(
                    f"chDB data path {path} is locked by another process: only one process may open it, "
                    "so one actor (actors.StoreActor) must own it and everyone else must go through that "
                    "actor; stop the other process or point warehouse.chdb_path elsewhere"
                ) from exc
            time.sleep(0.1)


def _status_file_locked(path: Path) -> bool:
    """Whether another process holds the engine's exclusive flock on `<path>/status`."""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
