"""`mkt-ray token TENANT ROLE` prints a token the API accepts; bad input is a clear error."""

from __future__ import annotations

from mkt_ray.cli import main
from mkt_ray.cli._token import demo_tokens
from mkt_ray.settings import load_settings
from serve_apps.auth import ROLES, Principal, verify


def test_token_command_issues_a_verifiable_token(capsys):
    secret = load_settings().api.secret.get_secret_value()
    assert main(["token", "acme", "analyst", "--ttl", "120"]) == 0
    assert verify(secret, capsys.readouterr().out.strip()) == Principal("acme", "analyst")
    assert main(["token", "acme", "root"]) == 2
    assert "unknown role 'root'" in capsys.readouterr().err
    assert main(["token", "Not A Tenant", "cmo"]) == 2


def test_demo_tokens_cover_every_tenant_and_role():
    settings = load_settings()
    tokens = demo_tokens(settings, ["acme", "globex"])
    secret = settings.api.secret.get_secret_value()
    assert {(t, r) for t, by_role in tokens.items() for r in by_role} == {(t, r) for t in ("acme", "globex") for r in ROLES}
    assert all(verify(secret, tok) == Principal(t, r) for t, by_role in tokens.items() for r, tok in by_role.items())
