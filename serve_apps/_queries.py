"""The API's reads: SQL over the platform's tables and the JSON shapes the routes return.

Every function takes a `TenantReader`, so every query is scoped to the caller's tenant by the storage
layer. Request values arrive as parameters; the only SQL built from a request is chosen from fixed
tables below (`WINDOWS`, `SORT_KEYS`, `GROUP_COLUMNS`), never copied from it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mkt_ray.contract import epoch_ms
from mkt_ray.kernels import derived_kpis
from mkt_ray.pipeline import ATTRIBUTION, KPI, QUARANTINE
from mkt_ray.pipeline._tables import ALERTS, SIGNALS
from serve_apps._scope import TenantReader

WINDOWS = {"total": "tumbling_1m", "1m": "tumbling_1m", "1h": "tumbling_1h", "5m_sliding": "sliding_5m"}
_AMOUNT_KEYS = {"cost": "cst", "revenue": "rev"}
SORT_KEYS = {"window_start": "ws", "impressions": "imp", "clicks": "clk", "conversions": "conv", **_AMOUNT_KEYS}
SORTS = tuple(name for key in SORT_KEYS for name in (key, f"-{key}"))
GROUP_COLUMNS = {"channel": "channel", "campaign": "campaign_id"}
FOREVER_MS = 1 << 62  # "no bound" for from/to
_SAMPLE_BYTES = 1024


class ApiError(Exception):
    """A request the API cannot answer as asked (bad cursor, unknown dataset): 4xx with a JSON body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Span:
    """A half-open event-time range [from_ms, to_ms)."""

    from_ms: int = -FOREVER_MS
    to_ms: int = FOREVER_MS

    @classmethod
    def of(cls, start: dt.datetime | None, end: dt.datetime | None) -> Span:
        span = cls(-FOREVER_MS if start is None else to_ms(start), FOREVER_MS if end is None else to_ms(end))
        if span.from_ms > span.to_ms:  # a range that holds no time is a caller's slip, not an empty answer
            raise ApiError(422, "from_after_to", f"from ({iso(span.from_ms)}) is after to ({iso(span.to_ms)})")
        return span

    def params(self) -> dict[str, int]:
        return {"from_ms": self.from_ms, "to_ms": self.to_ms}


def to_ms(value: dt.datetime) -> int:
    """Epoch milliseconds, floored; a datetime without a zone is read as UTC."""
    return epoch_ms(value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC))


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(value: float) -> float | None:
    """JSON has no NaN: a ratio with a zero denominator is null."""
    return None if math.isnan(value) else float(value)


def _ratios(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ctr, cvr, cpa, roas = derived_kpis(columns["impressions"], columns["clicks"], columns["conversions"],
                                       columns["cost"], columns["revenue"])
    return {"ctr": ctr, "cvr": cvr, "cpa": cpa, "roas": roas}


# ---- campaigns/performance -------------------------------------------------------------------------

@dataclass(frozen=True)
class PerformanceQuery:
    span: Span = Span()
    granularity: str = "total"
    campaign_id: str | None = None
    source: str | None = None
    sort: str = "window_start"
    limit: int = 100


def encode_cursor(sort: str, key: tuple[float, str, str, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps([sort, *key]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[float, str, str, int]:
    """The key a cursor continues after; 400 if it is not one this API issued for the same sort."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        name, k0, campaign, source, ws = raw
        valid = (isinstance(k0, int | float) and not isinstance(k0, bool) and isinstance(campaign, str)
                 and isinstance(source, str) and isinstance(ws, int) and not isinstance(ws, bool))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        valid = False
    if not valid:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API issued; start again without it")
    if name != sort:
        raise ApiError(400, "invalid_cursor", f"cursor was issued for sort={name!r}, not sort={sort!r}")
    return float(k0), campaign, source, int(ws)


def _performance_sql(reader: TenantReader, q: PerformanceQuery, after: bool) -> str:
    """Window totals per (campaign, source, window start), ordered by (sort key, campaign, source, start)."""
    descending = q.sort.startswith("-")
    name = q.sort.lstrip("-")
    key = SORT_KEYS[name]
    if name in _AMOUNT_KEYS:  # float sums may differ in the last bits between runs; the cursor must not
        key = f"round({key}, 6)"
    ws = "toInt64(0)" if q.granularity == "total" else "window_start_ms"
    filters = "".join((
        " AND campaign_id = {campaign_id:String}" if q.campaign_id is not None else "",
        " AND source = {source:String}" if q.source is not None else "",
    ))
    # one level, no subquery: the cursor compares the aggregated key, so it is a HAVING
    return (
        f"SELECT campaign_id, source, {ws} AS ws, sum(impressions) AS imp, sum(clicks) AS clk, "
        f"sum(conversions) AS conv, sum(cost) AS cst, sum(revenue) AS rev, "
        f"toFloat64({'-' if descending else ''}{key}) AS k0 FROM {reader.table(KPI)} "
        "WHERE tenant_id = {tenant:String} AND window = {window:String} "
        "AND window_start_ms >= {from_ms:Int64} AND window_start_ms < {to_ms:Int64}"
        f"{filters} GROUP BY campaign_id, source, ws"
        + (" HAVING (k0, campaign_id, source, ws) > ({c0:Float64}, {c1:String}, {c2:String}, {c3:Int64})" if after else "")
        + " ORDER BY k0, campaign_id, source, ws LIMIT {limit:UInt32}"
    )


async def performance_page(reader: TenantReader, q: PerformanceQuery, cursor: str | None) -> tuple[pa.Table, str | None]:
    """One page of window totals (raw Arrow, columns as in `_performance_sql`) and the next page's cursor."""
    after = None if cursor is None else decode_cursor(cursor, q.sort)
    table = await reader.performance_from_memory(q, after, q.limit + 1)
    if table is None:
        params: dict[str, Any] = {**q.span.params(), "window": WINDOWS[q.granularity], "limit": q.limit + 1}
        if q.campaign_id is not None:
            params["campaign_id"] = q.campaign_id
        if q.source is not None:
            params["source"] = q.source
        if after is not None:
            params.update(zip(("c0", "c1", "c2", "c3"), after, strict=True))
        table = await reader.query(_performance_sql(reader, q, after is not None), params)
    if table.num_rows <= q.limit:
        return table, None
    table = table.slice(0, q.limit)
    last = {name: table[name][-1].as_py() for name in ("k0", "campaign_id", "source", "ws")}
    return table, encode_cursor(q.sort, (last["k0"], last["campaign_id"], last["source"], last["ws"]))


def performance_items(table: pa.Table, granularity: str) -> list[dict[str, Any]]:
    """Page rows as API items, with CTR, CVR, CPA and ROAS (null where a denominator is 0)."""
    names = {"impressions": "imp", "clicks": "clk", "conversions": "conv", "cost": "cst", "revenue": "rev"}
    arrays = {name: table[col].to_numpy() for name, col in names.items()}
    # whole columns to Python values at once, not one numpy scalar per field
    columns: dict[str, list] = {"campaign_id": table["campaign_id"].to_pylist(), "source": table["source"].to_pylist(),
                                "window_start": ([None] * table.num_rows if granularity == "total"
                                                 else [iso(ws) for ws in table["ws"].to_pylist()])}
    columns.update({name: values.tolist() for name, values in arrays.items()})
    columns.update({name: [_num(v) for v in values.tolist()]
                    for name, values in _ratios(arrays).items()})
    keys = list(columns)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns.values(), strict=True)]


# ---- KPI timeline and funnel -------------------------------------------------------------------------

async def kpi_timeline(reader: TenantReader, span: Span, granularity: str) -> list[dict[str, Any]]:
    """The tenant's totals per window start (all campaigns and sources together)."""
    table = await reader.query(
        "SELECT window_start_ms, sum(impressions) AS impressions, sum(clicks) AS clicks, "
        f"sum(conversions) AS conversions, sum(cost) AS cost, sum(revenue) AS revenue FROM {reader.table(KPI)} "
        "WHERE tenant_id = {tenant:String} AND window = {window:String} "
        "AND window_start_ms >= {from_ms:Int64} AND window_start_ms < {to_ms:Int64} "
        "GROUP BY window_start_ms ORDER BY window_start_ms",
        {**span.params(), "window": WINDOWS[granularity]},
    )
    columns = {name: table[name].to_numpy() for name in ("impressions", "clicks", "conversions", "cost", "revenue")}
    ratios = _ratios(columns)
    return [
        {"window_start": iso(ws), **{n: int(columns[n][i]) for n in ("impressions", "clicks", "conversions")},
         "cost": float(columns["cost"][i]), "revenue": float(columns["revenue"][i]),
         **{n: _num(v[i]) for n, v in ratios.items()}}
        for i, ws in enumerate(table["window_start_ms"].to_pylist())
    ]


async def funnel(reader: TenantReader, span: Span, campaign_id: str | None) -> dict[str, Any]:
    """Impression -> click -> conversion counts, each stage with its rate from the stage before."""
    table = await reader.query(
        f"SELECT sum(impressions), sum(clicks), sum(conversions) FROM {reader.table(KPI)} "
        "WHERE tenant_id = {tenant:String} AND window = 'tumbling_1m' "
        "AND window_start_ms >= {from_ms:Int64} AND window_start_ms < {to_ms:Int64}"
        + (" AND campaign_id = {campaign_id:String}" if campaign_id is not None else ""),
        {**span.params(), **({"campaign_id": campaign_id} if campaign_id is not None else {})},
    )
    counts = [int(table.column(i)[0].as_py() or 0) for i in range(3)]
    stages = []
    for i, (stage, count) in enumerate(zip(("impression", "click", "conversion"), counts, strict=True)):
        rate = None if i == 0 or counts[i - 1] == 0 else count / counts[i - 1]
        stages.append({"stage": stage, "count": count, "rate": rate})
    return {"campaign_id": campaign_id, "stages": stages}


# ---- attribution ----------------------------------------------------------------------------------------

async def attribution(reader: TenantReader, span: Span, group_by: str, model: str | None) -> dict[tuple, tuple]:
    """{(model, group value): (conversions, revenue)} from the credit rows (each row once: FINAL)."""
    column = GROUP_COLUMNS[group_by]
    table = await reader.query(
        f"SELECT model, {column} AS k, sum(conversions_credit) AS c, sum(revenue_credit) AS r "
        f"FROM {reader.table(ATTRIBUTION)} FINAL WHERE tenant_id = {{tenant:String}} "
        "AND conversion_ts_ms >= {from_ms:Int64} AND conversion_ts_ms < {to_ms:Int64}"
        + (" AND model = {model:String}" if model is not None else "")
        + " GROUP BY model, k ORDER BY model, k",
        {**span.params(), **({"model": model} if model is not None else {})},
    )
    return {(m, k): (c, r) for m, k, c, r in zip(*(table[n].to_pylist() for n in ("model", "k", "c", "r")), strict=True)}


# ---- journeys -------------------------------------------------------------------------------------------

async def journey(reader: TenantReader, identities: list[str]) -> list[dict[str, Any]]:
    """The person's conversions in time order, each with the touchpoints it credited (linear model: every
    touch in the lookback, weighted equally); a conversion without touches lists `(direct)`.

    `identities` are the person's identity nodes (`user_id:u-42`, `anonymous_id:a-7`, ...): credits carry
    the person's root id at the time they were written, which any of them may have been."""
    table = await reader.query(
        "SELECT conversion_id, conversion_ts_ms, touch_ts_ms, channel, campaign_id, weight, revenue_credit "
        f"FROM {reader.table(ATTRIBUTION)} FINAL WHERE tenant_id = {{tenant:String}} "
        "AND person IN {persons:Array(String)} AND model = 'linear' "
        "ORDER BY conversion_ts_ms, conversion_id, touch_index",
        {"persons": identities},
    )
    conversions: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        conversion = conversions.setdefault(row["conversion_id"], {
            "conversion_id": row["conversion_id"], "conversion_ts": iso(row["conversion_ts_ms"]),
            "revenue": 0.0, "touches": []})
        conversion["revenue"] += row["revenue_credit"]
        conversion["touches"].append({"ts": iso(row["touch_ts_ms"]), "channel": row["channel"],
                                      "campaign_id": row["campaign_id"], "weight": row["weight"]})
    return list(conversions.values())


# ---- alerts, quarantine, quality ----------------------------------------------------------------------

async def alerts(reader: TenantReader, span: Span, limit: int) -> dict[str, Any]:
    """The newest threshold breaches (by window start), and how many there are in the span."""
    table = await reader.query(
        "SELECT rule, window, campaign_id, source, window_start_ms, window_end_ms, value, threshold, impressions, "
        f"count() OVER () AS total FROM {reader.table(ALERTS)} FINAL WHERE tenant_id = {{tenant:String}} "
        "AND window_start_ms >= {from_ms:Int64} AND window_start_ms < {to_ms:Int64} "
        "ORDER BY window_start_ms DESC, rule, window, campaign_id, source LIMIT {limit:UInt32}",
        {**span.params(), "limit": limit},
    )
    rows = table.to_pylist()
    items = [{**{k: v for k, v in row.items() if k not in ("window_start_ms", "window_end_ms", "total")},
              "window_start": iso(row["window_start_ms"]), "window_end": iso(row["window_end_ms"])} for row in rows]
    return {"count": rows[0]["total"] if rows else 0, "items": items}


async def quarantine_counts(reader: TenantReader) -> dict[str, int]:
    table = await reader.query(
        f"SELECT reason, count() AS n FROM {reader.table(QUARANTINE)} FINAL WHERE tenant_id = {{tenant:String}} "
        "GROUP BY reason ORDER BY reason")
    return dict(zip(table["reason"].to_pylist(), table["n"].to_pylist(), strict=True))


async def quarantine_samples(reader: TenantReader, reason: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest rejected messages (raw text cut at 1 KiB), optionally of one reason."""
    table = await reader.query(
        "SELECT reason, partition, offset, quarantined_ms, substring(raw, 1, {cut:UInt32}) AS raw "
        f"FROM {reader.table(QUARANTINE)} FINAL WHERE tenant_id = {{tenant:String}}"
        + (" AND reason = {reason:String}" if reason is not None else "")
        + " ORDER BY quarantined_ms DESC, partition, offset LIMIT {limit:UInt32}",
        {"cut": _SAMPLE_BYTES, "limit": limit, **({"reason": reason} if reason is not None else {})},
    )
    return [{"reason": r["reason"], "partition": r["partition"], "offset": r["offset"],
             "quarantined_at": iso(r["quarantined_ms"]),
             "raw": r["raw"].decode("utf-8", "replace") if isinstance(r["raw"], bytes) else r["raw"]}
            for r in table.to_pylist()]


async def quality(reader: TenantReader) -> dict[str, Any]:
    """Valid vs quarantined events, rejects by reason, and closed windows that break a ratio rule."""
    valid = await reader.query(
        f"SELECT sum(events) AS n FROM {reader.table(KPI)} WHERE tenant_id = {{tenant:String}} AND window = 'tumbling_1m'")
    violations = await reader.query(
        f"SELECT rule, count() AS n FROM {reader.table(SIGNALS)} FINAL WHERE tenant_id = {{tenant:String}} "
        "AND kind = 'quality' GROUP BY rule ORDER BY rule")
    reasons = await quarantine_counts(reader)
    events_valid = int(valid["n"][0].as_py() or 0)
    quarantined = sum(reasons.values())
    total = events_valid + quarantined
    return {"events_valid": events_valid, "events_quarantined": quarantined,
            "quarantine_rate": quarantined / total if total else None, "quarantine_reasons": reasons,
            "ratio_violations": dict(zip(violations["rule"].to_pylist(), violations["n"].to_pylist(), strict=True))}
