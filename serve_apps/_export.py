"""Streamed exports for BI tools: a dataset as CSV, JSON lines or Parquet, written page by page.

Each page of rows becomes one chunk of the response (one Parquet row group), so memory stays bounded
by the page size whatever the export's length; the performance dataset is read with the same keyset
pages as the API, so rows are neither lost nor repeated while the pipeline writes.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mkt_ray.attribution import ONLINE_MODELS
from serve_apps._queries import (
    PerformanceQuery,
    Span,
    alerts,
    attribution,
    performance_items,
    performance_page,
)
from serve_apps._scope import TenantReader

DATASETS = ("performance", "attribution", "alerts")
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
PAGE_ROWS = 10_000
_RATIOS = [(n, pa.float64()) for n in ("ctr", "cvr", "cpa", "roas")]
SCHEMAS = {
    "performance": pa.schema([("campaign_id", pa.string()), ("source", pa.string()), ("window_start", pa.string()),
                              *[(n, pa.int64()) for n in ("impressions", "clicks", "conversions")],
                              ("cost", pa.float64()), ("revenue", pa.float64()), *_RATIOS]),
    "attribution": pa.schema([("model", pa.string()), ("channel", pa.string()), ("conversions", pa.float64()),
                              ("revenue", pa.float64())]),
    "alerts": pa.schema([("rule", pa.string()), ("window", pa.string()), ("campaign_id", pa.string()),
                         ("source", pa.string()), ("window_start", pa.string()), ("window_end", pa.string()),
                         ("value", pa.float64()), ("threshold", pa.float64()), ("impressions", pa.int64())]),
}


async def dataset_pages(reader: TenantReader, dataset: str, span: Span, granularity: str) -> AsyncIterator[pa.Table]:
    """The dataset's rows, a page at a time, in the export schema."""
    schema = SCHEMAS[dataset]
    if dataset == "performance":
        query, cursor = PerformanceQuery(span=span, granularity=granularity, limit=PAGE_ROWS), None
        while True:
            table, cursor = await performance_page(reader, query, cursor)
            yield pa.Table.from_pylist(performance_items(table, granularity), schema=schema)
            if cursor is None:
                return
    elif dataset == "attribution":
        credits = await attribution(reader, span, "channel", None)
        rows = [{"model": m, "channel": c, "conversions": v[0], "revenue": v[1]}
                for (m, c), v in sorted(credits.items(), key=lambda kv: (ONLINE_MODELS.index(kv[0][0]), kv[0][1]))]
        yield pa.Table.from_pylist(rows, schema=schema)
    else:
        result = await alerts(reader, span, limit=2**31)
        yield pa.Table.from_pylist(result["items"], schema=schema)


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken out after each row group (the Parquet writer's sink)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


async def export_stream(pages: AsyncIterator[pa.Table], fmt: str, schema: pa.Schema) -> AsyncIterator[bytes]:
    """Encode pages as `fmt` bytes, one chunk per page (CSV header once; Parquet footer at the end)."""
    if fmt == "parquet":
        sink = _Drain()
        writer = pq.ParquetWriter(sink, schema)
        async for page in pages:
            writer.write_table(page)
            yield sink.take()
        writer.close()
        yield sink.take()
        return
    encode: Callable[[pa.Table, bool], bytes] = _csv if fmt == "csv" else _jsonl
    first = True
    async for page in pages:
        if page.num_rows or first:
            yield encode(page, first)
            first = False


def _csv(page: pa.Table, header: bool) -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(page, out, pacsv.WriteOptions(include_header=header))
    return out.getvalue()


def _jsonl(page: pa.Table, _header: bool) -> bytes:
    return b"".join(json.dumps(row, allow_nan=False).encode() + b"\n" for row in page.to_pylist())
