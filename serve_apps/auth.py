"""Signed bearer tokens carrying a tenant and a role, and the permission matrix every route checks.

Tokens are HS256 JWTs (PyJWT) with the claims `tenant`, `role`, `iat` and `exp`. A route declares the
permission it needs with `Depends(require("aggregates"))`; the dependency verifies the token, compares its
tenant with the `{tenant}` path parameter (routes without one, like `POST /v1/events`, act for the token's
tenant) and returns the `Principal`. The route then hands `principal.tenant` to the storage layer, which
scopes every query to it, so a route that forgot a check still reads one tenant only.

Failures are `AuthError`s; `install_auth(app, secret)` registers the handler that turns them into
`{"error": code, "message": ...}` with status 401 (who are you?) or 403 (not allowed).

Permission matrix (README "Query API" documents the same):

| permission           | cmo | director | analyst | service | admin |
|----------------------|-----|----------|---------|---------|-------|
| `aggregates`         |  x  |    x     |    x    |         |   x   |
| `journeys`           |     |          |    x    |         |   x   |
| `quarantine_samples` |     |          |    x    |         |   x   |
| `ingest`             |     |          |         |    x    |   x   |
| `delete`             |     |          |         |         |   x   |

`service` is a machine identity for producers: it writes events and reads nothing, so a leaked ingest
key exposes no data. Quarantine samples are raw rejected messages, which may hold personal data, so they
need the same clearance as person-level journeys; quarantine counts are aggregates.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mkt_ray.contract._schema import is_valid_tenant_id

ROLES = ("cmo", "director", "analyst", "service", "admin")
PERMISSIONS: dict[str, frozenset[str]] = {
    "aggregates": frozenset({"cmo", "director", "analyst", "admin"}),
    "journeys": frozenset({"analyst", "admin"}),
    "quarantine_samples": frozenset({"analyst", "admin"}),
    "ingest": frozenset({"service", "admin"}),
    "delete": frozenset({"admin"}),
}
_ALGORITHM = "HS256"
_CLAIMS = ("tenant", "role", "iat", "exp")
# distinct tokens remembered after verification (per process); a full HS256 check takes ~30 us, a hit ~0.5
_VERIFIED_TOKENS = 4096
_bearer = HTTPBearer(auto_error=False, description="a token from `mkt-ray token TENANT ROLE`")


class AuthError(Exception):
    """A request that is not authenticated (401) or not allowed (403); `code` is machine-readable."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant the token was issued for and its role."""

    tenant: str
    role: str


def issue_token(secret: str, tenant: str, role: str, ttl_s: int = 3600, now: float | None = None) -> str:
    """A signed token for `tenant` and `role`, valid for `ttl_s` seconds from `now` (default: the clock)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if not is_valid_tenant_id(tenant):
        raise ValueError(f"{tenant!r} is not a valid tenant id")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    issued = int(time.time() if now is None else now)
    claims = {"tenant": tenant, "role": role, "iat": issued, "exp": issued + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def verify(secret: str, token: str | None) -> Principal:
    """The principal of a valid token; AuthError 401 if it is missing, malformed, tampered or expired.

    A token that verified once is remembered with its expiry (a dashboard sends the same token with every
    request): a later use only checks the clock. Failures are never remembered, and a tampered token is a
    different string, so it is verified in full.
    """
    if not token:
        raise AuthError(401, "missing_token", "send `Authorization: Bearer <token>` (mkt-ray token TENANT ROLE)")
    principal, expires = _verified(secret, token)
    if expires <= time.time():  # PyJWT's rule: expired once `exp` is reached
        raise AuthError(401, "token_expired", "the token has expired; issue a new one")
    return principal


@functools.lru_cache(maxsize=_VERIFIED_TOKENS)
def _verified(secret: str, token: str) -> tuple[Principal, int]:
    """The principal and `exp` of a token whose signature and claims are valid (AuthError 401 if not)."""
    try:
        claims = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": list(_CLAIMS)})
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "token_expired", "the token has expired; issue a new one") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, "invalid_token", f"the token is not valid: {exc}") from None
    tenant, role, expires = claims["tenant"], claims["role"], claims["exp"]
    if role not in ROLES or not isinstance(tenant, str) or not is_valid_tenant_id(tenant):
        raise AuthError(401, "invalid_token", "the token names an unknown role or an invalid tenant")
    return Principal(tenant=tenant, role=role), expires


def authorize(principal: Principal, tenant: str, permission: str) -> None:
    """AuthError 403 unless `principal` acts for `tenant` and its role holds `permission`."""
    roles = PERMISSIONS[permission]  # an unknown permission is a bug in the route, not a 403
    if principal.tenant != tenant:
        raise AuthError(403, "wrong_tenant", "the token is for another tenant")
    if principal.role not in roles:
        allowed = ", ".join(r for r in ROLES if r in roles)
        raise AuthError(403, "forbidden_role", f"role {principal.role!r} may not {permission}; allowed: {allowed}")


def require(permission: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the verified, authorized `Principal` for this request, or an AuthError."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        secret = getattr(request.app.state, "auth_secret", None)
        if secret is None:
            raise RuntimeError("install_auth(app, secret) was not called on this app")
        principal = verify(secret, credentials.credentials if credentials else None)
        authorize(principal, request.path_params.get("tenant", principal.tenant), permission)
        return principal

    return dependency


async def auth_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """`{"error": code, "message": ...}` with the AuthError's status (401s also say how to authenticate)."""
    assert isinstance(exc, AuthError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status, headers=headers)


def install_auth(app: FastAPI, secret: str) -> None:
    """Give `app` the signing secret `require` checks against and the AuthError handler."""
    app.state.auth_secret = secret
    app.add_exception_handler(AuthError, auth_error_handler)
