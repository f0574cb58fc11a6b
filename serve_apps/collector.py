"""The event collector: `POST /v1/events` (contract v1 events) and the CDP sources
`POST /v1/sources/segment` and `POST /v1/sources/posthog`, mounted on the query API's ingress.

Needs a token with the `ingest` permission (service, admin); the events must belong to the token's
tenant. Answers 202 `{"accepted", "duplicates", "rejected", "reasons", "errors"}` (plus `skipped` and
`skip_reasons` for CDP messages the mapping has no contract event for); 422 with the same body when no
event was usable; 400 for a body that is not events; 413 over `MAX_BODY_BYTES` or `MAX_EVENTS`; 429
when every request slot of the replica is busy and 503 when Kafka does not keep up, both with
`Retry-After`. The logic is `mkt_ray.sources.EventCollector`; this module only speaks HTTP.
"""

from __future__ import annotations

import math
import threading
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mkt_ray.contract import Limits
from mkt_ray.errors import BackpressureError, BrokerError, ConfigError
from mkt_ray.sources import (
    BodyError,
    EventCollector,
    MappedBatch,
    TooManyRequests,
    posthog_events,
    segment_events,
    split_body,
)
from serve_apps.auth import Principal, require

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_EVENTS = 20_000
router = APIRouter(tags=["collector"])
Ingest = Annotated[Principal, Depends(require("ingest"))]
_BUILD_LOCK = threading.Lock()
_DECODE = msgspec.json.Decoder().decode


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(math.ceil(self.retry_after))} if self.retry_after is not None else None
        return JSONResponse({"error": self.code, "message": self.message}, status_code=self.status, headers=headers)


@router.post("/v1/events", status_code=202, summary="contract v1 events, as a JSON array or NDJSON")
async def post_events(request: Request, principal: Ingest) -> JSONResponse:
    async def messages() -> tuple[list[bytes], MappedBatch | None]:
        return split_body(await _body(request), MAX_EVENTS), None

    return await _collect(request, principal.tenant, messages)


@router.post("/v1/sources/segment", status_code=202, summary="Segment Spec messages (single or batch)")
async def post_segment(request: Request, principal: Ingest) -> JSONResponse:
    async def messages() -> tuple[list[bytes], MappedBatch | None]:
        mapped = segment_events(await _json_body(request), principal.tenant)
        return mapped.messages, mapped

    return await _collect(request, principal.tenant, messages)


@router.post("/v1/sources/posthog", status_code=202, summary="PostHog capture or batch payloads")
async def post_posthog(request: Request, principal: Ingest) -> JSONResponse:
    async def messages() -> tuple[list[bytes], MappedBatch | None]:
        mapped = posthog_events(await _json_body(request), principal.tenant)
        return mapped.messages, mapped

    return await _collect(request, principal.tenant, messages)


async def _collect(request: Request, tenant: str, read: Any) -> JSONResponse:
    """Take a request slot, read and judge the body, produce, answer; every failure is a JSON error."""
    try:
        collector = _collector(request)
        with collector.slot():
            messages, mapped = await read()
            if len(messages) > MAX_EVENTS:
                raise _HttpError(413, "too_many_events", f"{len(messages)} events; send at most {MAX_EVENTS}")
            verdict = await run_in_threadpool(collector.collect, tenant, messages)
    except _HttpError as exc:
        return exc.response()
    except BodyError as exc:
        return _HttpError(413 if exc.code == "too_many_events" else 400, exc.code, str(exc)).response()
    except TooManyRequests as exc:
        return _HttpError(429, "too_many_requests", str(exc), exc.retry_after).response()
    except BackpressureError as exc:
        return _HttpError(503, "overloaded", str(exc), exc.retry_after).response()
    except BrokerError as exc:
        return _HttpError(503, "broker_unavailable", str(exc), 5.0).response()
    body = verdict.body()
    if mapped is not None:
        body["skipped"] = len(mapped.skipped)
        body["skip_reasons"] = {r: sum(1 for _, s in mapped.skipped if s == r) for _, r in mapped.skipped}
    usable = verdict.accepted + verdict.duplicates
    return JSONResponse(body, status_code=202 if usable or not verdict.rejected else 422)


async def _body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it passes MAX_BODY_BYTES, before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _HttpError(413, "body_too_large", f"the body is {declared} bytes; send at most {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _HttpError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request) -> Any:
    try:
        return _DECODE(await _body(request))
    except msgspec.DecodeError as exc:
        raise _HttpError(400, "invalid_json", f"the body is not JSON: {exc}") from None


def _collector(request: Request) -> EventCollector:
    """The replica's collector, built on first use from the app's settings (one producer per replica)."""
    state = request.app.state
    collector = getattr(state, "collector", None)
    if collector is not None:
        return collector
    with _BUILD_LOCK:
        if getattr(state, "collector", None) is None:
            settings = state.settings
            try:
                conf = settings.kafka.client_config()
            except ConfigError as exc:
                raise _HttpError(503, "collector_unavailable", f"no Kafka to produce to: {exc}") from None
            state.collector = EventCollector(conf, settings.kafka.topic_events, settings.tenants,
                                             Limits.from_settings(settings.contract))
        return state.collector
