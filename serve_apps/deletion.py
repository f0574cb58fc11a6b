"""Right to be forgotten over HTTP, mounted on the query API's ingress (admin tokens: `delete`).

`DELETE /v1/tenants/{tenant}/persons/{identity}` queues a request with the platform's `DeletionActor`
(actors/deletion.py, which does the work across every tier) and answers 202 with its `request_id`;
`GET /v1/tenants/{tenant}/deletions/{request_id}` reports its audit row (status pending, running, done
or failed, and rows removed per tier). `identity` is an identity node (`user_id:u1`) or a bare value,
which matches that value in any identity field.
"""

from __future__ import annotations

from typing import Annotated, Any

import ray
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from actors.deletion import deletion_actor_name, named_nodes
from serve_apps.auth import Principal, require

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["deletion"])
Admin = Annotated[Principal, Depends(require("delete"))]
Identity = Annotated[str, Path(min_length=1, max_length=160, description="`field:value` or a bare identity value")]


@router.delete("/persons/{identity}", status_code=202, summary="forget a person in every tier")
async def forget_person(request: Request, tenant: str, identity: Identity, principal: Admin) -> JSONResponse:
    actor = _deletion_actor(request)
    if isinstance(actor, JSONResponse):
        return actor
    progress = await actor.submit.remote(principal.tenant, identity)
    request_id = progress["request_id"]
    return JSONResponse({"request_id": request_id, "status": progress["status"],
                         "status_url": f"/v1/tenants/{principal.tenant}/deletions/{request_id}"}, status_code=202)


@router.get("/deletions/{request_id}", summary="progress of a deletion request")
async def deletion_status(request: Request, tenant: str, request_id: str, principal: Admin) -> JSONResponse:
    actor = _deletion_actor(request)
    if isinstance(actor, JSONResponse):
        return actor
    row = await actor.status.remote(principal.tenant, request_id)
    if row is None:
        return JSONResponse({"error": "not_found", "message": f"no deletion request {request_id!r} for this tenant"},
                            status_code=404)
    return JSONResponse(row)


def _deletion_actor(request: Request) -> Any:
    """The platform's DeletionActor: named in `app.state.deletion` as (name, namespace), else found beside
    the store actor the API reads through; a 503 JSON answer when none runs."""
    state = request.app.state
    named = getattr(state, "deletion", None)
    runner = getattr(state, "runner", None)
    if named is None and getattr(runner, "store_name", None) is not None:
        named = (deletion_actor_name(runner.store_name), runner.namespace)
    try:
        if named is None:
            raise ValueError("no store actor")
        return ray.get_actor(named[0], namespace=named[1])
    except ValueError:
        return JSONResponse({"error": "deletion_unavailable",
                             "message": "no deletion service runs beside this API (start the platform)"},
                            status_code=503, headers={"Retry-After": "30"})


async def person_identities(request: Request, tenant: str, identity: str) -> list[str]:
    """The identity nodes of the person `identity` names, linked in the platform's identity graphs (through
    its DeletionActor, which resolves a person the same way for a deletion); with no platform beside the
    API, only the nodes `identity` itself names."""
    actor = _deletion_actor(request)
    if isinstance(actor, JSONResponse):
        return named_nodes(identity)
    return await actor.person.remote(tenant, identity)
