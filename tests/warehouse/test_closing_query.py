"""The close pass's read: `closing_query` on the real engine (both backends), its Arrow result through
`closed_windows`, against a plain-Python model of the same totals and derived KPIs."""

from __future__ import annotations

import math

import pyarrow as pa

from mkt_ray.pipeline import KPI, pipeline_ddl
from mkt_ray.pipeline._closing import WINDOW_SCHEMA, WINDOW_SIZES, closed_windows, closing_query

T0 = 1_790_000_040_000  # a minute boundary
MIN = 60_000
# (window, tenant, campaign, source, start, events, impressions, clicks, conversions, cost, revenue)
ROWS = [
    ("tumbling_1m", "acme", "c1", "google_ads", T0, 3, 100, 10, 1, 2.5, 40.0),
    ("tumbling_1m", "acme", "c1", "google_ads", T0, 2, 50, 5, 1, 1.25, 0.0),  # a later batch, same window
    ("tumbling_1m", "acme", "c1", "meta", T0, 1, 0, 0, 0, 0.0, 0.0),  # every ratio's denominator is 0
    ("tumbling_1m", "acme", "c2", "google_ads", T0 + MIN, 4, 40, 4, 2, 3.0, 9.0),
    ("tumbling_1m", "acme", "c2", "google_ads", T0 + 5 * MIN, 1, 10, 1, 0, 0.5, 0.0),  # ends after the span
    ("tumbling_1h", "acme", "c1", "google_ads", T0 - 40 * MIN, 9, 900, 90, 9, 45.0, 450.0),
    ("tumbling_1m", "globex", "g1", "tiktok", T0, 7, 70, 7, 7, 14.0, 28.0),  # another tenant
]
SPANS = [("acme", "tumbling_1m", T0, T0 + 3 * MIN), ("acme", "tumbling_1h", T0 - MIN, T0 + 20 * MIN)]


def reference(rows: list[tuple], spans: list[tuple]) -> list[dict]:
    sums: dict[tuple, list] = {}
    for window, tenant, campaign, source, start, *values in rows:
        end = start + WINDOW_SIZES[window]
        if any(t == tenant and w == window and after < end <= through for t, w, after, through in spans):
            total = sums.setdefault((tenant, window, start, campaign, source), [0, 0, 0, 0, 0.0, 0.0])
            for i, value in enumerate(values):
                total[i] += value

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    out = []
    for (tenant, window, start, campaign, source), (ev, imp, clk, conv, cost, rev) in sorted(sums.items()):
        out.append({"tenant_id": tenant, "window": window, "campaign_id": campaign, "source": source,
                    "window_start_ms": start, "window_end_ms": start + WINDOW_SIZES[window], "events": ev,
                    "impressions": imp, "clicks": clk, "conversions": conv, "cost": cost, "revenue": rev,
                    "ctr": ratio(clk, imp), "cvr": ratio(conv, clk), "cpa": ratio(cost, conv),
                    "roas": ratio(rev, cost)})
    return out


def same(got: list[dict], want: list[dict]) -> bool:
    def equal(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
        return a == b

    return len(got) == len(want) and all(g.keys() == w.keys() and all(equal(g[k], w[k]) for k in g)
                                         for g, w in zip(got, want, strict=True))


def test_closed_windows_equal_a_plain_model_on_both_backends(open_wh) -> None:
    wh = open_wh()
    for ddl in pipeline_ddl(wh.database):
        wh.execute(ddl)
    names = ("window", "tenant_id", "campaign_id", "source", "window_start_ms", "events", "impressions", "clicks",
             "conversions", "cost", "revenue")
    columns = {name: [row[i] for row in ROWS] for i, name in enumerate(names)}
    ledger = {"partition": [0] * len(ROWS), "first_offset": list(range(len(ROWS))),
              "last_offset": list(range(len(ROWS))), "applied_ms": [T0] * len(ROWS)}
    wh.insert_arrow(KPI, pa.table({**columns, **ledger}))

    sql, params = closing_query(wh.database, SPANS)
    got = closed_windows(wh.query_arrow(sql, params))
    assert got.schema == WINDOW_SCHEMA
    want = reference(ROWS, SPANS)
    assert len(want) == 4  # c1/google_ads (two batches), c1/meta, c2 and the hour; not the late minute or globex
    assert same(got.to_pylist(), want)

    sql, params = closing_query(wh.database, [("acme", "tumbling_1m", T0 + 30 * MIN, T0 + 40 * MIN)])
    nothing = closed_windows(wh.query_arrow(sql, params))
    assert nothing.schema == WINDOW_SCHEMA and nothing.num_rows == 0
