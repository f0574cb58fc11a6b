"""Security suite over real HTTP: tokens, tenants, roles, hostile parameters, and no foreign rows."""

from __future__ import annotations

import asyncio
import random
import time
import urllib.parse

import httpx
import pytest
import ray

from serve_apps._scope import TenantReader
from serve_apps.auth import PERMISSIONS, ROLES, AuthError, Principal, authorize, issue_token, verify
from tests.serve import _reference as ref

ENDPOINTS = {  # path under /v1/tenants/{tenant}/ -> permission it needs
    "campaigns/performance": "aggregates",
    "kpis": "aggregates",
    "attribution": "aggregates",
    "attribution/compare": "aggregates",
    "journeys/funnel": "aggregates",
    "journeys/person-3": "journeys",
    "alerts": "aggregates",
    "quarantine": "aggregates",
    "quarantine?samples=2": "quarantine_samples",
    "quality": "aggregates",
    "export/performance?format=jsonl": "aggregates",
    "export/attribution?format=csv": "aggregates",
    "export/alerts?format=parquet": "aggregates",
}
OTHER_PARAMETERS = [("attribution", "model"), ("attribution", "group_by"), ("attribution/compare", "group_by"),
                    ("kpis", "granularity"), ("alerts", "limit"), ("export/performance", "format"),
                    ("export/performance", "granularity"), ("export/secrets", "format"), ("quarantine", "samples")]
HOSTILE = [
    "' OR 1=1 --", "globex", "acme' OR tenant_id != 'acme", "x' OR '1'='1", "{tenant:String}", "\\", "\\'",
    "'; DROP TABLE kpi_windows; --", "\n\t\r", "\x00", "%00", "😀", "ä" * 300, "../../etc/passwd", "1e308",
    "-1", "NaN", "null", "[]", "{}", "<script>alert(1)</script>", "a" * 4000,
]


def _get(client: httpx.Client, url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get(url, headers=headers)


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"]


def test_token_round_trip_and_matrix():
    secret = "s" * 32
    assert verify(secret, issue_token(secret, "acme", "analyst")) == Principal("acme", "analyst")
    for permission, roles in PERMISSIONS.items():
        for role in ROLES:
            if role in roles:
                authorize(Principal("acme", role), "acme", permission)
            else:
                with pytest.raises(AuthError) as caught:
                    authorize(Principal("acme", role), "acme", permission)
                assert (caught.value.status, caught.value.code) == (403, "forbidden_role")
    assert PERMISSIONS["delete"] == {"admin"} and "service" not in PERMISSIONS["aggregates"]
    with pytest.raises(ValueError):
        issue_token(secret, "acme", "root")


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_every_endpoint_refuses_bad_tokens_tenants_and_roles(serve_api, path):
    secret = serve_api.settings.api.secret.get_secret_value()
    url = f"{serve_api.url}/v1/tenants/acme/{path}"
    good = serve_api.token("acme", "admin")
    header, payload, signature = good.split(".")
    forged = issue_token("f" * 32, "acme", "admin")
    other_claims = issue_token(secret, "globex", "admin").split(".")[1]
    weaker = next(role for role in ROLES if role not in PERMISSIONS[ENDPOINTS[path]])
    with httpx.Client(timeout=60) as client:
        assert _get(client, url, good).status_code == 200
        _error(_get(client, url, None), 401, "missing_token")
        _error(_get(client, url, "not-a-token"), 401, "invalid_token")
        _error(_get(client, url, forged), 401, "invalid_token")
        _error(_get(client, url, f"{header}.{other_claims}.{signature}"), 401, "invalid_token")  # claims swapped
        _error(_get(client, url, f"{header}.{payload}.{signature[::-1]}"), 401, "invalid_token")
        expired = issue_token(secret, "acme", "admin", ttl_s=60, now=time.time() - 3600)
        _error(_get(client, url, expired), 401, "token_expired")
        _error(_get(client, url, serve_api.token("globex", "admin")), 403, "wrong_tenant")
        _error(_get(client, url, serve_api.token("acme", weaker)), 403, "forbidden_role")


def _counts(serve_api) -> list[tuple]:
    store = ray.get_actor(serve_api.store_name, namespace=serve_api.namespace)
    sql = ("SELECT (SELECT count() FROM kpi_windows), (SELECT count() FROM attribution_credits), "
           "(SELECT count() FROM quarantine), (SELECT count() FROM alerts), (SELECT count() FROM signals)")
    return ray.get(store.query_rows.remote(sql))


def test_hostile_strings_in_every_parameter_change_nothing(serve_api):
    before = _counts(serve_api)
    params = ("campaign_id", "source", "sort", "granularity", "cursor", "from", "to", "model", "group_by", "reason", "limit")
    seen = set()
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {serve_api.token('acme', 'admin')}"}) as client:
        for hostile in HOSTILE:
            for name in params:
                r = client.get(f"{serve_api.url}/v1/tenants/acme/campaigns/performance", params={name: hostile})
                seen.add(r.status_code)
                if r.status_code == 200:  # a filter value: exactly the rows that match it, all of acme
                    ref.assert_same(r.json()["items"][:100], ref.performance(serve_api.rows, "acme", {name: hostile})[:100])
                else:
                    assert r.status_code in (400, 422) and r.json()
            quoted = urllib.parse.quote(hostile, safe="")
            r = client.get(f"{serve_api.url}/v1/tenants/acme/journeys/{quoted}")
            if r.status_code == 200:
                assert r.json()["conversions"] == []
            r = client.get(f"{serve_api.url}/v1/tenants/acme/quarantine", params={"samples": 5, "reason": hostile})
            assert r.status_code == 200 and r.json()["samples"] == []
            r = client.get(f"{serve_api.url}/v1/tenants/{quoted}/alerts")
            assert r.status_code in (403, 404)
            r = client.get(f"{serve_api.url}/v1/tenants/acme/journeys/funnel", params={"campaign_id": hostile})
            ref.assert_same(r.json()["stages"], ref.funnel(serve_api.rows, "acme", hostile))
            for path, name in OTHER_PARAMETERS:  # closed sets or numbers: refused with a JSON body
                r = client.get(f"{serve_api.url}/v1/tenants/acme/{path}", params={name: hostile})
                seen.add(r.status_code)
                assert r.status_code == 422 and r.json(), (path, name, hostile)
    assert seen >= {200, 422} and _counts(serve_api) == before


def _expected(serve_api, tenant: str, path: str, params: dict):
    rows = serve_api.rows
    if path == "campaigns/performance":
        return ref.performance(rows, tenant, params)[: params.get("limit", 100)]
    if path == "attribution":
        return ref.attribution(rows, tenant, "channel").get(params.get("model", "linear"), {})
    if path == "alerts":
        return ref.alerts(rows, tenant)[: params.get("limit", 100)]
    if path == "quarantine":
        return ref.quarantine(rows, tenant)
    if path == "quality":
        return ref.quality(rows, tenant)
    if path == "journeys/funnel":
        return ref.funnel(rows, tenant, params.get("campaign_id"))
    return ref.journey(rows, tenant, path.split("/")[1])


def _got(path: str, body: dict):
    if path == "attribution":
        return {i["channel"]: (i["conversions"], i["revenue"]) for i in body["items"]}
    if path in ("campaigns/performance", "alerts"):
        return body["items"]
    if path == "quarantine":
        return body["counts"]
    if path == "journeys/funnel":
        return body["stages"]
    return body if path == "quality" else body["conversions"]


def test_no_foreign_rows_over_1000_randomized_requests(serve_api):
    rng = random.Random(20260101)
    tenants = ref_tenants = ("acme", "globex", "initech")
    campaigns = ["spring", "summer", "x' OR '1'='1", "c-4", "' OR 1=1 --", "globex"]
    paths = ["campaigns/performance", "attribution", "alerts", "quarantine", "quality", "journeys/funnel",
             "journeys/person-1", "journeys/person-7"]
    answered = refused = 0
    with httpx.Client(timeout=60) as client:
        for _ in range(1000):
            token_tenant, path_tenant = rng.choice(tenants), rng.choice(ref_tenants)
            role = rng.choice(("admin", "analyst", "cmo"))
            path = rng.choice(paths)
            params: dict = {}
            if path == "campaigns/performance":
                params = {"granularity": rng.choice(("total", "1m", "1h", "5m_sliding")), "limit": rng.randint(1, 40),
                          "sort": rng.choice(("window_start", "-revenue", "clicks"))}
                if rng.random() < 0.5:
                    params["campaign_id"] = rng.choice(campaigns)
            elif path == "attribution":
                params = {"model": rng.choice(("linear", "markov", "first_touch"))}
            elif path == "alerts":
                params = {"limit": rng.randint(1, 20)}
            elif path == "journeys/funnel" and rng.random() < 0.5:
                params = {"campaign_id": rng.choice(campaigns)}
            token = issue_token(serve_api.settings.api.secret.get_secret_value(), token_tenant, role)
            r = client.get(f"{serve_api.url}/v1/tenants/{path_tenant}/{path}", params=params,
                           headers={"Authorization": f"Bearer {token}"})
            if token_tenant != path_tenant or (path.startswith("journeys/person") and role == "cmo"):
                assert r.status_code == 403, (token_tenant, path_tenant, role, path)
                refused += 1
                continue
            assert r.status_code == 200, r.text
            ref.assert_same(_got(path, r.json()), _expected(serve_api, token_tenant, path, params))
            answered += 1
    assert answered > 300 and refused > 300


def test_tenant_reader_refuses_unscoped_sql_and_a_callers_tenant():
    reader = TenantReader(runner=None, database="mkt", tenant="acme")  # refused before any runner is used
    with pytest.raises(ValueError, match="not scoped"):
        asyncio.run(reader.query("SELECT count() FROM mkt.kpi_windows"))
    with pytest.raises(ValueError, match="not scoped"):
        asyncio.run(reader.query("SELECT 1 FROM t WHERE tenant_id = {tenant_id:String}"))
    with pytest.raises(ValueError, match="set by the reader"):
        asyncio.run(reader.query("SELECT 1 FROM t WHERE tenant_id = {tenant:String}", {"tenant": "globex"}))
