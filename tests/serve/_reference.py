"""Plain-Python answers to the query API over the rows `tests/fixtures_serve.seed_rows` wrote.

Written from the API's contract, not from its SQL: sums with dicts, ratios with `/`, ordering with
`sorted`. Tests compare every response with these, item by item.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Any

import pydantic
import pytest

from mkt_ray.attribution import ONLINE_MODELS

WINDOW = {"total": "tumbling_1m", "1m": "tumbling_1m", "1h": "tumbling_1h", "5m_sliding": "sliding_5m"}
FOREVER = 1 << 62


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(text: str | None, default: int) -> int:
    """A from/to parameter as epoch ms, read as the API documents: any datetime pydantic accepts
    (ISO 8601, or epoch seconds), UTC when it has no zone."""
    if text is None:
        return default
    value = pydantic.TypeAdapter(dt.datetime).validate_python(text)
    return int(value.replace(tzinfo=value.tzinfo or dt.UTC).timestamp() * 1000)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def performance(rows: dict, tenant: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of campaigns/performance for these parameters, in the API's order (all pages)."""
    granularity = params.get("granularity", "total")
    lo, hi = ms(params.get("from"), -FOREVER), ms(params.get("to"), FOREVER)
    sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
    for r in rows["kpi_windows"]:
        if (r["tenant_id"] != tenant or r["window"] != WINDOW[granularity] or not lo <= r["window_start_ms"] < hi
                or params.get("campaign_id", r["campaign_id"]) != r["campaign_id"]
                or params.get("source", r["source"]) != r["source"]):
            continue
        key = (r["campaign_id"], r["source"], None if granularity == "total" else r["window_start_ms"])
        for i, name in enumerate(("impressions", "clicks", "conversions", "cost", "revenue")):
            sums[key][i] += r[name]
    items = []
    for (campaign, source, ws), (imp, clk, conv, cost, rev) in sums.items():
        items.append({"campaign_id": campaign, "source": source, "window_start": iso(ws), "_ws": ws or 0,
                      "impressions": imp, "clicks": clk, "conversions": conv, "cost": cost, "revenue": rev,
                      "ctr": _ratio(clk, imp), "cvr": _ratio(conv, clk), "cpa": _ratio(cost, conv),
                      "roas": _ratio(rev, cost)})
    sort = params.get("sort", "window_start")
    name, sign = sort.lstrip("-"), (-1 if sort.startswith("-") else 1)

    def key(item: dict) -> tuple:
        value = item["_ws"] if name == "window_start" else item[name]
        value = round(value, 6) if name in ("cost", "revenue") else value
        return (sign * value, item["campaign_id"], item["source"], item["_ws"])

    items.sort(key=key)
    for item in items:
        del item["_ws"]
    return items


def kpis(rows: dict, tenant: str, granularity: str) -> list[dict[str, Any]]:
    sums: dict[int, list] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
    for r in rows["kpi_windows"]:
        if r["tenant_id"] == tenant and r["window"] == WINDOW[granularity]:
            for i, name in enumerate(("impressions", "clicks", "conversions", "cost", "revenue")):
                sums[r["window_start_ms"]][i] += r[name]
    return [{"window_start": iso(ws), "impressions": s[0], "clicks": s[1], "conversions": s[2], "cost": s[3],
             "revenue": s[4], "ctr": _ratio(s[1], s[0]), "cvr": _ratio(s[2], s[1]), "cpa": _ratio(s[3], s[2]),
             "roas": _ratio(s[4], s[3])} for ws, s in sorted(sums.items())]


def attribution(rows: dict, tenant: str, group_by: str = "channel", lo: int = -FOREVER, hi: int = FOREVER) -> dict:
    """{model: {group value: (conversions, revenue)}}."""
    column = "channel" if group_by == "channel" else "campaign_id"
    out: dict[str, dict] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for r in rows["attribution_credits"]:
        if r["tenant_id"] == tenant and lo <= r["conversion_ts_ms"] < hi:
            cell = out[r["model"]][r[column]]
            cell[0] += r["conversions_credit"]
            cell[1] += r["revenue_credit"]
    return {m: {k: tuple(v) for k, v in groups.items()} for m, groups in out.items() if m in ONLINE_MODELS}


def journey(rows: dict, tenant: str, person: str) -> list[dict[str, Any]]:
    credits = sorted((r for r in rows["attribution_credits"]
                      if r["tenant_id"] == tenant and r["person"] == person and r["model"] == "linear"),
                     key=lambda r: (r["conversion_ts_ms"], r["conversion_id"], r["touch_index"]))
    out: dict[str, dict] = {}
    for r in credits:
        c = out.setdefault(r["conversion_id"], {"conversion_id": r["conversion_id"],
                                                "conversion_ts": iso(r["conversion_ts_ms"]), "revenue": 0.0, "touches": []})
        c["revenue"] += r["revenue_credit"]
        c["touches"].append({"ts": iso(r["touch_ts_ms"]), "channel": r["channel"], "campaign_id": r["campaign_id"],
                             "weight": r["weight"]})
    return list(out.values())


def funnel(rows: dict, tenant: str, campaign_id: str | None = None) -> list[dict[str, Any]]:
    counts = [0, 0, 0]
    for r in rows["kpi_windows"]:
        if r["tenant_id"] == tenant and r["window"] == "tumbling_1m" and campaign_id in (None, r["campaign_id"]):
            counts = [counts[0] + r["impressions"], counts[1] + r["clicks"], counts[2] + r["conversions"]]
    rates = [None, _ratio(counts[1], counts[0]), _ratio(counts[2], counts[1])]
    return [{"stage": s, "count": c, "rate": rt} for s, c, rt in zip(("impression", "click", "conversion"), counts, rates, strict=True)]


def alerts(rows: dict, tenant: str) -> list[dict[str, Any]]:
    mine = sorted((r for r in rows["alerts"] if r["tenant_id"] == tenant),
                  key=lambda r: (-r["window_start_ms"], r["rule"], r["window"], r["campaign_id"], r["source"]))
    return [{"rule": r["rule"], "window": r["window"], "campaign_id": r["campaign_id"], "source": r["source"],
             "value": r["value"], "threshold": r["threshold"], "impressions": r["impressions"],
             "window_start": iso(r["window_start_ms"]), "window_end": iso(r["window_end_ms"])} for r in mine]


def quarantine(rows: dict, tenant: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in rows["quarantine"]:
        if r["tenant_id"] == tenant:
            counts[r["reason"]] += 1
    return dict(sorted(counts.items()))


def quality(rows: dict, tenant: str) -> dict[str, Any]:
    valid = sum(r["events"] for r in rows["kpi_windows"] if r["tenant_id"] == tenant and r["window"] == "tumbling_1m")
    reasons = quarantine(rows, tenant)
    bad = sum(reasons.values())
    violations: dict[str, int] = defaultdict(int)
    for r in rows["signals"]:
        if r["tenant_id"] == tenant and r["kind"] == "quality":
            violations[r["rule"]] += 1
    return {"events_valid": valid, "events_quarantined": bad, "quarantine_rate": bad / (valid + bad),
            "quarantine_reasons": reasons, "ratio_violations": dict(violations)}


def same(actual: Any, expected: Any) -> bool:
    """Equal, with floats compared to 1e-9 relative (sums may add in another order)."""
    if isinstance(expected, float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(same(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        return len(actual) == len(expected) and all(same(a, e) for a, e in zip(actual, expected, strict=True))
    return actual == expected


def assert_same(actual: Any, expected: Any) -> None:
    if not same(actual, expected):
        assert actual == pytest.approx(expected)  # shows the difference
        raise AssertionError(f"{actual!r} != {expected!r}")
