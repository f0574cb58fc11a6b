"""Readiness: an API replica whose warehouse does not answer says 503 (a load balancer or Kubernetes probe then
sends traffic elsewhere), without telling an unauthenticated caller why. The answering case runs against the
deployed API in tests/serve/test_query_api.py."""

from __future__ import annotations

import asyncio

import httpx

from serve_apps._scope import StoreActorRunner
from serve_apps.query import api


def test_a_replica_whose_store_actor_is_gone_is_not_ready(ray_session) -> None:
    async def ask() -> httpx.Response:
        saved = getattr(api.state, "runner", None)
        api.state.runner = StoreActorRunner("no-such-store", "mkt-ray-readiness")  # a Ray lookup that fails
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as client:
                return await client.get("/readyz")
        finally:
            api.state.runner = saved

    answer = asyncio.run(ask())
    assert (answer.status_code, answer.json()) == (503, {"status": "unavailable", "warehouse": "not answering"})
