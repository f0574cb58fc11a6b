"""The `serve build`-style config and the `serve run serve_apps.query:app` target are valid as shipped."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from ray.serve.schema import ServeDeploySchema

import serve_apps
from mkt_ray.errors import ConfigError
from mkt_ray.settings import ApiSettings, load_settings
from serve_apps import query


def test_config_file_validates_and_names_the_builder():
    path = Path(serve_apps.__file__).with_name("serve_config.yaml")
    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    (application,) = schema.applications
    module, name = application.import_path.split(":")
    assert module == "serve_apps.query" and callable(getattr(query, name))
    built = getattr(query, name)(application.args)
    assert type(built).__name__ == "Application" and type(query.app).__name__ == "Application"
    assert [d.name for d in application.deployments] == ["QueryApi"]


def test_development_secret_is_refused_off_the_embedded_platform():
    cluster = load_settings(ray_address="ray://head:10001")
    with pytest.raises(ConfigError, match="MKT_API__SECRET"):
        query.configure(FastAPI(), cluster, runner=None)
    secret = ApiSettings(secret=SecretStr("k" * 40))
    app = FastAPI()
    query.configure(app, cluster.model_copy(update={"api": secret}), runner=None)
    assert app.state.auth_secret == "k" * 40
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ApiSettings(secret=SecretStr("short"))
