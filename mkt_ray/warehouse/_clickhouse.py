"""The server warehouse: a ClickHouse server through clickhouse-connect (HTTP or HTTPS).

Unlike chDB it has no single owner: any actor or Serve replica opens its own `ClickHouseWarehouse` from
the settings. The client keeps no server session (each request names the database), so one instance
may be used from several threads.

Same behaviour as `ChdbWarehouse`: parameters are encoded once by `encode_params` and bound server-side
(`param_*`), results come back as Arrow (`query_rows` converts that Arrow, so both backends return the
same Python types), and inserts are Arrow with the dedup token as the `insert_deduplication_token` setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from mkt_ray.errors import WarehouseError
from mkt_ray.warehouse._dedup import require_dedup_log
from mkt_ray.warehouse._sql import DATABASE_RE, encode_params, split_table

_SQL_IN_ERRORS = 200
_PLACEHOLDER_RE = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")
# One reading thread keeps an INSERT's block boundaries, and so its `<token>_<n>` block ids, the same on
# a retry (see _chdb.py for what was measured without it), and no collapsing of a Replacing table's rows
# within an inserted block (see _chdb.py).
_INSERT_SETTINGS = {"max_threads": 1, "max_insert_threads": 1, "optimize_on_insert": 0}


class _Encoded:
    """A parameter already in ClickHouse's escaped text form; clickhouse-connect sends `str()` of it as is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class ClickHouseWarehouse:
    """A `Warehouse` on a ClickHouse server at `url` (http://host:8123 or https://host:8443).

    Creates `database` if it is missing. `verify=False` skips certificate checks (never in production);
    `ca_cert` is the PEM file of the CA that signed the server's certificate when the system store lacks it.
    """

    def __init__(self, url: str, database: str, username: str = "default", password: str = "",
                 verify: bool = True, ca_cert: Path | None = None, connect_timeout_s: int = 10) -> None:
        if not DATABASE_RE.match(database):
            raise WarehouseError(f"database name {database!r} must match {DATABASE_RE.pattern}")
        self.url, self.database = url, database
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WarehouseError(f"warehouse.url {url!r} must look like http://host:8123 or https://host:8443")
        import clickhouse_connect

        secure = parts.scheme == "https"
        try:
            self._client: Any = clickhouse_connect.get_client(
                host=parts.hostname, port=parts.port or (8443 if secure else 8123), username=username,
                password=password, secure=secure, verify=verify, ca_cert=str(ca_cert) if ca_cert else None,
                proxy_path=parts.path.strip("/"), compress=False, autogenerate_session_id=False,
                tz_mode="aware", connect_timeout=connect_timeout_s, dedicated_pool=True,
            )
        except Exception as exc:  # clickhouse-connect raises its own hierarchy and urllib3 errors
            raise WarehouseError(f"cannot connect to ClickHouse at {url}: {_cause(exc, secure)}") from exc
        self._dedup_checked: set[tuple[str, str]] = set()
        # ClickHouse 25.x+ decides by `deduplicate_insert` and ignores `insert_deduplicate` (measured on 26.9)
        self._no_dedup = ({"deduplicate_insert": "disable"} if "deduplicate_insert" in self._client.server_settings
                          else {"insert_deduplicate": 0})
        exists = self.query_rows("SELECT count() FROM system.databases WHERE name = {db:String}", {"db": database})
        if exists != [(1,)]:
            self.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        self._client.database = database

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        bound = self._bind(sql, params)
        self._call(sql, lambda: self._client.command(sql, parameters=bound))

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        table = self.query_arrow(sql, params)
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        bound = self._bind(sql, params)
        return self._call(sql, lambda: self._client.query_arrow(sql, parameters=bound))

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        database, name = split_table(table, self.database)
        if data.num_columns == 0 or data.num_rows == 0:
            return
        settings: dict[str, Any] = dict(_INSERT_SETTINGS)
        if dedup_token is not None:
            if (database, name) not in self._dedup_checked:
                require_dedup_log(self.query_rows, database, name, f"ClickHouse at {self.url}")
                self._dedup_checked.add((database, name))
            settings["insert_deduplication_token"] = dedup_token
        else:  # without a token the server would drop a repeat of identical data (its block hash); chDB does not
            settings.update(self._no_dedup)
        self._call(f"INSERT INTO {database}.{name}",
                   lambda: self._client.insert_arrow(name, data, database=database, settings=settings))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> ClickHouseWarehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"ClickHouseWarehouse(url={self.url!r}, database={self.database!r}, {state})"

    @staticmethod
    def _bind(sql: str, params: Mapping[str, Any] | None) -> dict[str, _Encoded] | None:
        """Our encoding of the parameters the SQL names; None when it names none.

        Passing none keeps clickhouse-connect from formatting the SQL client-side (its %-style fallback).
        """
        named = set(_PLACEHOLDER_RE.findall(sql))
        encoded = encode_params({k: v for k, v in (params or {}).items() if k in named})
        return {k: _Encoded(v) for k, v in encoded.items()} or None

    def _call(self, sql: str, run: Any) -> Any:
        if self._client is None:
            raise WarehouseError(f"ClickHouse warehouse at {self.url} is closed")
        try:
            return run()
        except Exception as exc:
            shown = sql if len(sql) <= _SQL_IN_ERRORS else sql[:_SQL_IN_ERRORS] + "..."
            raise WarehouseError(f"ClickHouse at {self.url} refused {shown!r}: {exc}") from exc


def _cause(exc: BaseException, secure: bool) -> str:
    """The reason a connection failed, named in words, with what to do about it."""
    text = f"{type(exc).__name__}: {exc}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return ("the server's TLS certificate is not trusted (set warehouse.ca_cert to the CA that signed it, "
                f"or check the host name); {text}")
    if "WRONG_VERSION_NUMBER" in text or (secure and "SSL" in text):
        return f"TLS handshake failed (is the server speaking HTTPS on this port?); {text}"
    if "516" in text or "Authentication failed" in text:
        return f"authentication failed: check warehouse.username and warehouse.password; {text}"
    return text
