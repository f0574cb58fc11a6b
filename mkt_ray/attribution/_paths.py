"""Aggregated channel paths and the common path file `path;total_conversions;total_conversion_value;total_null`.

The file format is the one ChannelAttribution and most attribution exports use: one row per distinct
path, channels joined by ` > `, how many journeys took it and converted (with their total value) and how
many did not. Fields are separated by `;` or `,` (decided on the first row: `;` when it gives four
fields, else `,`), may be quoted the CSV way, and a first row whose three number fields are all
non-numbers is a header. Blank lines are skipped; anything else that is not a row of four fields with
non-negative finite numbers is an error naming the line.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from mkt_ray.errors import InputError

CHANNEL_SEPARATOR = ">"
_FIELDS = ("path", "total_conversions", "total_conversion_value", "total_null")


class ChannelPath(NamedTuple):
    """One path (channels in order) with the conversions, value and non-converting journeys that took it."""

    channels: tuple[str, ...]
    conversions: float
    value: float
    nulls: float


def read_path_file(path: Path) -> list[ChannelPath]:
    """Every row of a path file, in file order (identical paths are not merged here)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return parse_path_lines(handle, source=str(path))
    except OSError as exc:
        raise InputError(f"cannot read path file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def parse_path_lines(lines: Iterable[str], source: str = "<paths>") -> list[ChannelPath]:
    """Rows of the path format from text lines (as `open(..., newline="")` yields them)."""
    lines = iter(lines)
    blank = 0
    for first in lines:
        if first.strip():
            break
        blank += 1
    else:
        return []
    reader = csv.reader(_chain(first, lines), delimiter=_detect_delimiter(first), skipinitialspace=True)
    rows: list[ChannelPath] = []
    for record in reader:
        line = blank + reader.line_num  # the line a record ends on (a quoted field may span lines)
        if not record or all(not field.strip() for field in record):
            continue
        if line == blank + 1 and _is_header(record):
            continue
        rows.append(_parse_record(record, f"{source}:{line}"))
    return rows


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _detect_delimiter(line: str) -> str:
    for delimiter in (";", ","):
        fields = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
        if len(fields) == len(_FIELDS):
            return delimiter
    return ";"  # neither gives four fields: report the row against the documented separator


def _is_header(record: list[str]) -> bool:
    return len(record) == len(_FIELDS) and not any(_is_number(field) for field in record[1:])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_record(record: list[str], where: str) -> ChannelPath:
    if len(record) != len(_FIELDS):
        raise InputError(
            f"{where}: expected 4 fields (path;total_conversions;total_conversion_value;total_null), "
            f"got {len(record)}"
        )
    channels = split_path(record[0], where)
    conversions, value, nulls = (_number(text, name, where) for text, name in zip(record[1:], _FIELDS[1:], strict=True))
    return ChannelPath(channels, conversions, value, nulls)


def split_path(text: str, where: str = "path") -> tuple[str, ...]:
    """`A > B > C` as ("A", "B", "C"); spaces around each channel are not part of its name."""
    channels = tuple(part.strip() for part in text.split(CHANNEL_SEPARATOR))
    if not text.strip():
        raise InputError(f"{where}: the path is empty")
    if not all(channels):
        raise InputError(f"{where}: empty channel name in path {text!r} (channels are joined by ' > ')")
    return channels


def _number(text: str, name: str, where: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"{where}: {name} is not a number: {text!r}") from None
    if not math.isfinite(number) or number < 0:
        raise InputError(f"{where}: {name} must be a finite number >= 0, got {text!r}")
    return number
