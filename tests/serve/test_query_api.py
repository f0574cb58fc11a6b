"""Every query endpoint on real Serve + chDB equals a plain-Python computation over the rows written."""

from __future__ import annotations

import io
import json

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mkt_ray.attribution import ONLINE_MODELS
from tests.serve import _reference as ref

FILTERS = [
    {},
    {"granularity": "1m", "from": "2026-01-01T06:00:00Z", "to": "2026-01-01T12:00:00Z"},
    {"granularity": "1h", "sort": "-revenue"},
    {"granularity": "5m_sliding", "campaign_id": "x' OR '1'='1", "sort": "-clicks"},
    {"granularity": "total", "source": "email", "sort": "cost"},
    {"granularity": "1m", "campaign_id": "spring", "source": "meta", "sort": "-window_start"},
]


def all_pages(api, tenant: str, params: dict, limit: int) -> tuple[list[dict], int]:
    items, cursor, pages = [], None, 0
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        body = api.get(f"/v1/tenants/{tenant}/campaigns/performance", tenant=tenant, params=query).json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


@pytest.mark.parametrize("params", FILTERS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_performance_pages_equal_reference_each_row_once(serve_api, params):
    expected = ref.performance(serve_api.rows, "globex", params)
    assert expected, "the filter must select rows"
    items, pages = all_pages(serve_api, "globex", params, limit=37)
    assert pages == -(-len(expected) // 37)
    ref.assert_same(items, expected)
    keys = [(i["campaign_id"], i["source"], i["window_start"]) for i in items]
    assert len(keys) == len(set(keys))


def test_kpi_timeline_and_funnel(serve_api):
    for granularity in ("1m", "1h", "5m_sliding"):
        body = serve_api.get("/v1/tenants/acme/kpis", params={"granularity": granularity}).json()
        ref.assert_same(body["items"], ref.kpis(serve_api.rows, "acme", granularity))
    body = serve_api.get("/v1/tenants/initech/journeys/funnel", tenant="initech", role="cmo").json()
    ref.assert_same(body["stages"], ref.funnel(serve_api.rows, "initech"))
    body = serve_api.get("/v1/tenants/initech/journeys/funnel", tenant="initech", params={"campaign_id": "c-4"}).json()
    ref.assert_same(body["stages"], ref.funnel(serve_api.rows, "initech", "c-4"))


@pytest.mark.parametrize("group_by", ["channel", "campaign"])
def test_attribution_every_model_and_compare(serve_api, group_by):
    expected = ref.attribution(serve_api.rows, "acme", group_by)
    key = "channel" if group_by == "channel" else "campaign_id"
    for model in ONLINE_MODELS:
        body = serve_api.get("/v1/tenants/acme/attribution", role="director", params={"model": model, "group_by": group_by}).json()
        assert body["model"] == model
        ref.assert_same({item[key]: (item["conversions"], item["revenue"]) for item in body["items"]}, expected[model])
    body = serve_api.get("/v1/tenants/acme/attribution/compare", params={"group_by": group_by}).json()
    got = {m: {} for m in ONLINE_MODELS}
    for item in body["items"]:
        for model, cell in item["models"].items():
            got[model][item[key]] = (cell["conversions"], cell["revenue"])
    ref.assert_same(got, expected)


def test_attribution_time_range(serve_api):
    params = {"from": "2026-01-01T03:00:00Z", "to": "2026-01-01T09:30:00Z", "model": "markov"}
    body = serve_api.get("/v1/tenants/globex/attribution", tenant="globex", params=params).json()
    lo, hi = ref.ms(params["from"], 0), ref.ms(params["to"], 0)
    expected = ref.attribution(serve_api.rows, "globex", "channel", lo, hi)["markov"]
    ref.assert_same({i["channel"]: (i["conversions"], i["revenue"]) for i in body["items"]}, expected)


def test_journey_of_a_person(serve_api):
    for person in ("person-3", "person-14", "nobody"):
        body = serve_api.get(f"/v1/tenants/acme/journeys/{person}", role="analyst").json()
        assert body["identity"] == person
        ref.assert_same(body["conversions"], ref.journey(serve_api.rows, "acme", person))
    assert ref.journey(serve_api.rows, "acme", "person-3")


def test_alerts_quarantine_quality(serve_api):
    body = serve_api.get("/v1/tenants/globex/alerts", tenant="globex", params={"limit": 5}).json()
    expected = ref.alerts(serve_api.rows, "globex")
    assert body["count"] == len(expected) == 12
    ref.assert_same(body["items"], expected[:5])
    body = serve_api.get("/v1/tenants/globex/quarantine", tenant="globex", role="cmo").json()
    assert body == {"counts": ref.quarantine(serve_api.rows, "globex")}
    body = serve_api.get("/v1/tenants/globex/quarantine", tenant="globex", role="analyst",
                         params={"samples": 3, "reason": "too_old"}).json()
    newest = sorted((r for r in serve_api.rows["quarantine"] if r["tenant_id"] == "globex" and r["reason"] == "too_old"),
                    key=lambda r: -r["quarantined_ms"])[:3]
    assert [(s["offset"], s["raw"]) for s in body["samples"]] == [(r["offset"], r["raw"].decode()) for r in newest]
    body = serve_api.get("/v1/tenants/initech/quality", tenant="initech").json()
    ref.assert_same(body, ref.quality(serve_api.rows, "initech"))


def _parse(fmt: str, content: bytes) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in content.splitlines()]
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(content)).to_pylist()
    text_columns = {name: pa.string() for name in ("window_start", "window_end", "campaign_id", "source")}
    return pacsv.read_csv(io.BytesIO(content), convert_options=pacsv.ConvertOptions(column_types=text_columns)).to_pylist()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_exports_stream_and_match(serve_api, fmt):
    headers = {"Authorization": f"Bearer {serve_api.token('acme', 'cmo')}"}
    with httpx.stream("GET", f"{serve_api.url}/v1/tenants/acme/export/performance", headers=headers,
                      params={"format": fmt, "granularity": "1m"}, timeout=60) as response:
        assert response.status_code == 200
        assert "attachment" in response.headers["content-disposition"]
        content = b"".join(response.iter_bytes())
    ref.assert_same(_parse(fmt, content), ref.performance(serve_api.rows, "acme", {"granularity": "1m"}))
    content = serve_api.get("/v1/tenants/acme/export/alerts", params={"format": fmt}).content
    ref.assert_same(_parse(fmt, content), ref.alerts(serve_api.rows, "acme"))
    content = serve_api.get("/v1/tenants/acme/export/attribution", params={"format": fmt}).content
    expected = ref.attribution(serve_api.rows, "acme")
    rows = _parse(fmt, content)
    got = {}
    for row in rows:
        got.setdefault(row["model"], {})[row["channel"]] = (float(row["conversions"]), float(row["revenue"]))
    ref.assert_same(got, expected)


def test_docs_health_and_limits(serve_api):
    assert httpx.get(f"{serve_api.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{serve_api.url}/readyz")  # no token: probes carry none
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "warehouse": "ok"})
    spec = httpx.get(f"{serve_api.url}/openapi.json").json()
    assert "/v1/tenants/{tenant}/campaigns/performance" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert httpx.get(f"{serve_api.url}/docs").status_code == 200
    too_many = serve_api.get("/v1/tenants/acme/alerts", params={"limit": 10**6})
    assert too_many.status_code == 422 and too_many.json()["error"] == "limit_too_large"


@pytest.mark.parametrize("path", ["/v1/tenants/acme/campaigns/performance", "/v1/tenants/acme/kpis",
                                  "/v1/tenants/acme/attribution", "/v1/tenants/acme/alerts",
                                  "/v1/tenants/acme/export/performance"])
def test_a_range_whose_from_is_after_its_to_is_refused(serve_api, path):
    refused = serve_api.get(path, params={"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T23:59:59.999Z"})
    assert refused.status_code == 422
    assert refused.json() == {"error": "from_after_to",
                              "message": "from (2026-11-02T00:00:00.000Z) is after to (2026-11-01T23:59:59.999Z)"}
    # from == to is an empty range, answered as one; a date without a zone is UTC
    same = serve_api.get(path, params={"from": "2026-11-01T00:00:00", "to": "2026-11-01T00:00:00Z"})
    assert same.status_code == 200
