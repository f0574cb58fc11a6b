"""The query API: one FastAPI ingress on Ray Serve for everything services and dashboards read.

`serve run serve_apps.query:app` serves it on its own (settings from `MKT_*`), `serve deploy
serve_apps/serve_config.yaml` likewise, and `actors.launcher.Platform` deploys it with `build_app`. Every
route under `/v1/tenants/{tenant}` needs a token (serve_apps/auth.py) and reads through a
`TenantReader` bound to the token's tenant. The collector and deletion routers are mounted here too, so
the whole API is one application on one port.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from ray import serve

from actors.deletion import deletion_actor_name
from mkt_ray.attribution import ONLINE_MODELS
from mkt_ray.errors import ConfigError
from mkt_ray.observability import record_api_latency, span
from mkt_ray.settings import Settings, load_settings
from serve_apps import _queries as q
from serve_apps._export import DATASETS, FORMATS, SCHEMAS, dataset_pages, export_stream
from serve_apps._read_model import KpiReadModel
from serve_apps._scope import QueryRunner, StoreActorRunner, TenantReader, WarehouseRunner
from serve_apps.auth import Principal, authorize, install_auth, require
from serve_apps.collector import router as collector_router
from serve_apps.dashboard import DASHBOARD_HTML
from serve_apps.deletion import person_identities
from serve_apps.deletion import router as deletion_router

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()
DEFAULT_STORE = ("mkt-store", "mkt-ray")  # (name, namespace) used when no platform names its store

api = FastAPI(title="mkt-ray API", version="1", description="Tenant-scoped marketing KPIs, attribution, "
              "journeys, alerts and data quality. Authenticate with `Authorization: Bearer <token>`.")
tenant_api = APIRouter(prefix="/v1/tenants/{tenant}")

Tenant = Annotated[str, Path(description="tenant id; must be the token's tenant")]
From = Annotated[dt.datetime | None, Query(alias="from", description="window start at or after (ISO 8601)")]
To = Annotated[dt.datetime | None, Query(description="window start before (ISO 8601)")]
Granularity = Literal["total", "1m", "1h", "5m_sliding"]
Aggregates = Annotated[Principal, Depends(require("aggregates"))]


def reader(request: Request, principal: Principal) -> TenantReader:
    """The storage-side scope of this request: the principal's tenant, never a request parameter."""
    state = request.app.state
    return TenantReader(state.runner, state.settings.warehouse.database, principal.tenant, state.kpis)


def _limit(request: Request, limit: int) -> int:
    largest = request.app.state.settings.api.max_page_size
    if limit > largest:
        raise q.ApiError(422, "limit_too_large", f"limit {limit} is above the largest page, {largest}")
    return limit


@tenant_api.get("/campaigns/performance", summary="KPI totals per campaign and source, per window")
async def campaigns_performance(
    request: Request, tenant: Tenant, principal: Aggregates, from_: From = None, to: To = None,
    granularity: Granularity = "total", campaign_id: str | None = None, source: str | None = None,
    sort: Annotated[Literal[q.SORTS], Query(description="a field, `-field` descending")] = "window_start",  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1)] = 100, cursor: str | None = None,
) -> Response:
    query = q.PerformanceQuery(q.Span.of(from_, to), granularity, campaign_id, source, sort, _limit(request, limit))
    table, next_cursor = await q.performance_page(reader(request, principal), query, cursor)
    # encoded here in one step: msgspec took 0.03 ms for a 100-item page where FastAPI's validation and
    # jsonable_encoder + json.dumps took 1.9 ms (items are plain str/int/float/None already)
    body = _json.encode({"items": q.performance_items(table, granularity), "next_cursor": next_cursor})
    return Response(body, media_type="application/json")


@tenant_api.get("/kpis", summary="the tenant's KPI totals over time (all campaigns)")
async def kpis(request: Request, tenant: Tenant, principal: Aggregates, from_: From = None, to: To = None,
               granularity: Literal["1m", "1h", "5m_sliding"] = "1h") -> dict[str, Any]:
    return {"granularity": granularity,
            "items": await q.kpi_timeline(reader(request, principal), q.Span.of(from_, to), granularity)}


Model = Literal[ONLINE_MODELS]  # type: ignore[valid-type]
GroupBy = Literal["channel", "campaign"]


@tenant_api.get("/attribution", summary="conversions and revenue credited by one model")
async def attribution(request: Request, tenant: Tenant, principal: Aggregates, model: Model = "linear",
                      group_by: GroupBy = "channel", from_: From = None, to: To = None) -> dict[str, Any]:
    credits = await q.attribution(reader(request, principal), q.Span.of(from_, to), group_by, model)
    key = q.GROUP_COLUMNS[group_by]
    return {"model": model, "group_by": group_by,
            "items": [{key: k, "conversions": c, "revenue": r} for (_, k), (c, r) in credits.items()]}


@tenant_api.get("/attribution/compare", summary="every model's credits side by side")
async def attribution_compare(request: Request, tenant: Tenant, principal: Aggregates, group_by: GroupBy = "channel",
                              from_: From = None, to: To = None) -> dict[str, Any]:
    credits = await q.attribution(reader(request, principal), q.Span.of(from_, to), group_by, None)
    key = q.GROUP_COLUMNS[group_by]
    groups = sorted({k for _, k in credits}, key=lambda k: (k is None, k or ""))
    items = [{key: k, "models": {m: {"conversions": credits[(m, k)][0], "revenue": credits[(m, k)][1]}
                                 for m in ONLINE_MODELS if (m, k) in credits}} for k in groups]
    return {"group_by": group_by, "models": list(ONLINE_MODELS), "items": items}


@tenant_api.get("/journeys/funnel", summary="impression, click and conversion counts with stage rates")
async def journeys_funnel(request: Request, tenant: Tenant, principal: Aggregates, from_: From = None,
                          to: To = None, campaign_id: str | None = None) -> dict[str, Any]:
    return await q.funnel(reader(request, principal), q.Span.of(from_, to), campaign_id)


@tenant_api.get("/journeys/{identity}", summary="one person's credited conversions and touchpoints")
async def journeys_identity(request: Request, tenant: Tenant, identity: str,
                            principal: Annotated[Principal, Depends(require("journeys"))]) -> dict[str, Any]:
    identities = await person_identities(request, principal.tenant, identity)
    return {"identity": identity, "identities": identities,
            "conversions": await q.journey(reader(request, principal), identities)}


@tenant_api.get("/alerts", summary="threshold breaches of closed windows, newest first")
async def alerts(request: Request, tenant: Tenant, principal: Aggregates, from_: From = None, to: To = None,
                 limit: Annotated[int, Query(ge=1)] = 100) -> dict[str, Any]:
    return await q.alerts(reader(request, principal), q.Span.of(from_, to), _limit(request, limit))


@tenant_api.get("/quarantine", summary="rejected messages by reason; samples need analyst or admin")
async def quarantine(request: Request, tenant: Tenant, principal: Aggregates,
                     samples: Annotated[int, Query(ge=0, le=100)] = 0, reason: str | None = None) -> dict[str, Any]:
    if samples:
        authorize(principal, tenant, "quarantine_samples")
    scoped = reader(request, principal)
    body: dict[str, Any] = {"counts": await q.quarantine_counts(scoped)}
    if samples:
        body["samples"] = await q.quarantine_samples(scoped, reason, samples)
    return body


@tenant_api.get("/quality", summary="valid vs quarantined events and ratio-rule violations")
async def quality(request: Request, tenant: Tenant, principal: Aggregates) -> dict[str, Any]:
    return await q.quality(reader(request, principal))


@tenant_api.get("/export/{dataset}", summary="a dataset streamed as CSV, JSON lines or Parquet",
                response_class=StreamingResponse)
async def export(request: Request, tenant: Tenant, dataset: Literal[DATASETS], principal: Aggregates,  # type: ignore[valid-type]
                 format: Literal["csv", "jsonl", "parquet"] = "csv", from_: From = None, to: To = None,
                 granularity: Granularity = "1m") -> StreamingResponse:
    pages = dataset_pages(reader(request, principal), dataset, q.Span.of(from_, to), granularity)
    filename = f"{tenant}-{dataset}.{format}"
    return StreamingResponse(export_stream(pages, format, SCHEMAS[dataset]), media_type=FORMATS[format],
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@api.get("/healthz", summary="liveness of the API replica")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@api.get("/readyz", summary="readiness: the warehouse answers a query within 5 s (503 otherwise)")
async def readyz(request: Request) -> JSONResponse:
    try:
        await asyncio.wait_for(request.app.state.runner.query_arrow("SELECT 1 AS ok", {}), timeout=5.0)
    except Exception as exc:  # any failure to answer is "not ready"; the reason goes to the log, not to callers
        log.warning("readyz: the warehouse did not answer: %s: %s", type(exc).__name__, exc)
        return JSONResponse({"status": "unavailable", "warehouse": "not answering"}, status_code=503)
    return JSONResponse({"status": "ready", "warehouse": "ok"})


@api.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    return HTMLResponse(DASHBOARD_HTML)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, q.ApiError)
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)


@api.middleware("http")
async def _observe(request: Request, call_next: Any) -> Response:
    """Every request: one span (`query`, joined to the caller's trace when exporting) and one latency sample,
    labelled by the route template, never the raw path (it may carry an identity)."""
    started = time.perf_counter()
    with span("query", **{"http.method": request.method}) as current:
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        if current is not None:
            current.set_attribute("http.route", route)
            current.set_attribute("http.status_code", response.status_code)
    record_api_latency(route, time.perf_counter() - started, response.status_code)
    return response


api.include_router(tenant_api)
api.add_exception_handler(q.ApiError, _api_error)
api.include_router(collector_router)
api.include_router(deletion_router)


def configure(app: FastAPI, settings: Settings, runner: QueryRunner) -> None:
    """Give `app` what its routes read: settings, the query runner and the token secret."""
    if settings.api.uses_dev_secret:
        if settings.ray_address or settings.warehouse.backend != "chdb":
            raise ConfigError("api.secret is the development default; set MKT_API__SECRET before serving a cluster")
        log.warning("API tokens are signed with the DEVELOPMENT secret (set api.secret / MKT_API__SECRET)")
    app.state.settings = settings
    app.state.runner = runner
    # the embedded warehouse is a Ray call away: performance pages come from a read model of kpi_windows
    app.state.kpis = (KpiReadModel(runner.call, settings.api.read_model_staleness_ms, settings.api.read_model_rows)
                      if isinstance(runner, StoreActorRunner) and settings.api.read_model_rows > 0 else None)
    install_auth(app, settings.api.secret.get_secret_value())


def configured_api(settings: Settings | None, store: tuple[str, str | None] | None) -> FastAPI:
    """This process's `api`, configured (a module function, so the deployment class, which Serve
    pickles by value, refers to the app only through this module)."""
    settings = settings or load_settings()
    configure(api, settings, default_runner(settings, store))
    # deletions go to the platform's DeletionActor, named after its store actor, whichever backend reads
    api.state.deletion = None if store is None else (deletion_actor_name(store[0]), store[1])
    return api


def default_runner(settings: Settings, store: tuple[str, str | None] | None) -> QueryRunner:
    """Embedded chDB: the named store actor (started here if none runs); a server backend: opened here."""
    if settings.warehouse.backend != "chdb":
        from mkt_ray.warehouse import open_warehouse

        return WarehouseRunner(open_warehouse(settings))
    if store is None:
        import ray

        from actors.store import start_store_actor
        from mkt_ray.pipeline import pipeline_ddl

        name, namespace = DEFAULT_STORE
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            handle = start_store_actor(settings, name=name, namespace=namespace)
            for statement in pipeline_ddl(settings.warehouse.database):
                ray.get(handle.execute.remote(statement))
        store = DEFAULT_STORE
    return StoreActorRunner(*store)


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress()
class QueryApi:
    """The ingress replica: configures this process's FastAPI app, then hands it to Serve.

    The app is bound late (`__serve_build_asgi_app__`): `@serve.ingress(api)` would serve a frozen copy
    made at import, which never sees the settings, runner and secret set here.
    """

    def __init__(self, settings: Settings | None = None, store: tuple[str, str | None] | None = None) -> None:
        self._app = configured_api(settings, store)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


def build_app(settings: Settings | None = None, store: tuple[str, str | None] | None = None) -> Any:
    """The bound application, with replica count and request limits from `settings.api`.

    `store` is the (name, namespace) of a running StoreActor; None starts or finds `DEFAULT_STORE`.
    """
    settings = settings or load_settings()
    return QueryApi.options(
        num_replicas=settings.api.replicas,
        max_ongoing_requests=settings.api.max_ongoing_requests,
        max_queued_requests=settings.api.max_queued_requests,
    ).bind(settings, store)


def app_builder(args: dict[str, str]) -> Any:
    """`serve build`/`serve deploy` entry point: `args` may name a settings file as `config`."""
    return build_app(load_settings(args.get("config")))


app = build_app()
