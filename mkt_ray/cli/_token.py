"""`mkt-ray token TENANT ROLE`: a signed API token (serve_apps/auth.py), printed on stdout."""

from __future__ import annotations

import argparse

from mkt_ray.errors import InputError
from mkt_ray.settings import Settings, load_settings


def demo_tokens(settings: Settings, tenants: list[str]) -> dict[str, dict[str, str]]:
    """{tenant: {role: token}} for every tenant and role, valid for `api.token_ttl_s`."""
    from serve_apps.auth import ROLES, issue_token

    secret = settings.api.secret.get_secret_value()
    return {t: {role: issue_token(secret, t, role, settings.api.token_ttl_s) for role in ROLES} for t in tenants}


def run_token(args: argparse.Namespace) -> int:
    from serve_apps.auth import issue_token

    settings = load_settings(args.config)
    try:
        token = issue_token(settings.api.secret.get_secret_value(), args.tenant, args.role,
                            settings.api.token_ttl_s if args.ttl is None else args.ttl)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    print(token)
    return 0
