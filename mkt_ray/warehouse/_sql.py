"""SQL text that is safe to build: literals, identifiers, table names and chDB query parameters.

Prefer `{name:Type}` query parameters (`Warehouse.query_rows(sql, params=...)`): the engine parses the
value with the declared type, so a value can never become SQL. `quote_literal` is for the few places a
parameter cannot go (the `SETTINGS` clause of an INSERT, DDL) and for building literals in tests.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from mkt_ray.errors import WarehouseError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TABLE_RE = re.compile(rf"^(?:({_NAME})\.)?({_NAME})$")
DATABASE_RE = re.compile(rf"^{_NAME}$")

# Escapes shared by quoted literals ('...'), quoted identifiers (`...`) and escaped (TSV) values.
_CONTROL = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
_LITERAL_ESCAPES = str.maketrans({**_CONTROL, "'": "\\'"})
_IDENTIFIER_ESCAPES = str.maketrans({**_CONTROL, "`": "\\`"})
_PARAM_ESCAPES = str.maketrans(_CONTROL)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def quote_literal(value: str | int | float | bool | None) -> str:
    """A ClickHouse SQL literal for a str, int, float, bool or None; any other type is a TypeError.

    Strings are single-quoted with backslash escapes, so `'` and `\\` in the value stay data:
    `quote_literal("x' OR 1=1 --")` is `'x\\' OR 1=1 --'`.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 'inf', '-inf' and 'nan' are ClickHouse literals too
    if isinstance(value, str):
        return "'" + value.translate(_LITERAL_ESCAPES) + "'"
    raise TypeError(f"quote_literal takes str, int, float, bool or None, not {type(value).__name__}")


def quote_identifier(name: str) -> str:
    """A back-quoted ClickHouse identifier (column name), whatever characters `name` holds."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"an identifier must be a non-empty str, not {name!r}")
    return "`" + name.translate(_IDENTIFIER_ESCAPES) + "`"


def split_table(table: str, database: str) -> tuple[str, str]:
    """(database, name) of `name` or `database.name`; names outside [A-Za-z_][A-Za-z0-9_]* are refused."""
    match = _TABLE_RE.match(table) if isinstance(table, str) else None
    if match is None:
        raise WarehouseError(
            f"table name {table!r} must be `name` or `database.name` ([A-Za-z_][A-Za-z0-9_]*)"
        )
    return match.group(1) or database, match.group(2)


def qualify_table(table: str, database: str) -> str:
    """The quoted `db`.`table` for `table` or `db.table` (see `split_table`)."""
    db, name = split_table(table, database)
    return f"{quote_identifier(db)}.{quote_identifier(name)}"


def encode_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Query parameters as the text chDB expects for `{name:Type}` placeholders.

    chDB parses a parameter value in ClickHouse's *escaped* (TabSeparated) form, so a raw `\\n` in a
    string turns into a newline, a lone backslash is an error and a raw tab or newline is refused;
    None arrives as the string 'NULL'. Every value is therefore encoded here: strings escaped, None as
    `\\N`, aware datetimes as UTC epoch seconds (no server time zone involved), lists as Array literals.
    """
    return {name: _encode_param(name, value) for name, value in (params or {}).items()}


def _encode_param(name: str, value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return quote_literal(value)
    if isinstance(value, str):
        return value.translate(_PARAM_ESCAPES)
    if isinstance(value, dt.datetime):
        return _epoch_text(name, value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ",".join(quote_literal(item) for item in value) + "]"
    raise TypeError(f"query parameter {name!r}: unsupported type {type(value).__name__}")


def _epoch_text(name: str, value: dt.datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"query parameter {name!r}: datetime must be timezone-aware (UTC), got {value!r}")
    micros = (value - _EPOCH) // dt.timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{seconds}.{fraction:06d}" if fraction else f"{sign}{seconds}"
