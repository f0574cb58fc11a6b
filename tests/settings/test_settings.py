"""One frozen settings model: defaults, MKT_ environment, YAML file, precedence, validation, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mkt_ray.errors import ConfigError
from mkt_ray.settings import TenantConfig, load_settings


def test_defaults_run_the_embedded_platform() -> None:
    s = load_settings()
    assert s.kafka.bootstrap_servers is None and s.warehouse.backend == "chdb"
    assert s.kafka.topic_events == "marketing-events" and s.kafka.retention_days == 90
    assert (s.serve_host, s.serve_port) == ("127.0.0.1", 8000)
    assert s.chdb_path == Path(".mkt-ray/warehouse") and s.raw_uri == ".mkt-ray/raw"


def test_environment_with_nested_keys_and_tenant_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("MKT_PIPELINE__INGEST_ACTORS", "3")
    monkeypatch.setenv("MKT_TENANTS", '{"acme": {"consent_required": true, "thresholds": {"ctr_below": 0.01}}}')
    s = load_settings()
    assert s.kafka.client_config()["bootstrap.servers"] == "kafka-1:9092,kafka-2:9092"
    assert s.pipeline.ingest_actors == 3
    assert s.tenants["acme"].consent_required is True and s.tenants["acme"].thresholds.ctr_below == 0.01
    assert s.tenants["acme"].lookback_days == 30 and s.tenants["acme"].half_life_days == 7


def test_yaml_file_is_read_and_environment_overrides_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mkt.yaml"
    config.write_text("kafka:\n  partitions: 8\n  consumer_group: from-file\ntenants:\n  globex: {half_life_days: 3}\n")
    monkeypatch.setenv("MKT_KAFKA__CONSUMER_GROUP", "from-env")
    s = load_settings(config)
    assert s.kafka.partitions == 8 and s.kafka.consumer_group == "from-env"
    assert s.tenants["globex"].half_life_days == 3


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.serve_port = 1  # type: ignore[misc]


def test_secrets_are_hidden_and_passed_through_to_librdkafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MKT_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("MKT_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("MKT_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("MKT_KAFKA__EXTRA", '{"ssl.endpoint.identification.algorithm": "none"}')
    s = load_settings()
    assert "hunter2" not in repr(s)
    conf = s.kafka.client_config("b:9093")
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.password"] == "hunter2"
    assert conf["sasl.username"] == "svc" and conf["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"tenants": {"Bad Tenant": {}}}, "must match"),
        ({"tenants": {"acme": {"position_first": 0.7, "position_last": 0.5}}}, "at most 1"),
        ({"pipeline": {"ingest_actors": 0}}, "ingest_actors"),
        ({"no_such_key": 1}, "no_such_key"),
    ],
)
def test_invalid_settings_name_the_key(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(**overrides)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_with_tenants_registers_defaults_and_keeps_options() -> None:
    s = load_settings(tenants={"acme": {"consent_required": True}}).with_tenants(["acme", "globex"])
    assert s.tenants["acme"].consent_required is True and s.tenants["globex"] == TenantConfig()


@pytest.mark.parametrize(("text", "said"), [
    ("pipeline:\n  shardz: 3\n", "invalid settings (config file {path}, MKT_ environment):\n"
                                  "  pipeline.shardz: unknown setting; did you mean shards?"),
    ("tenants:\n  acme:\n    consent_requird: true\n", "  tenants.acme.consent_requird: unknown setting; did you mean consent_required?"),
    ("pipeline:\n  zzz: 1\n", "  pipeline.zzz: unknown setting; known here: "),
    ("pipeline:\n  shards: many\n", "  pipeline.shards: Input should be a valid integer, unable to parse string as an integer (got 'many')"),
    ("pipeline:\n  shards: 0\n", "  pipeline.shards: Input should be greater than or equal to 1 (got 0)"),
    ("pipeline: [\n", "config file {path} is not valid YAML at line 2, column 1: expected the node content"),
    ("- a\n- b\n", "config file {path} must be a mapping of settings (e.g. `pipeline: {{shards: 4}}`), not a YAML list"),
])
def test_a_settings_file_that_cannot_work_says_what_to_fix_in_one_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert said.format(path=path) in str(refused.value)
    assert "pydantic.dev" not in str(refused.value)


def test_a_bad_secret_is_named_but_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("warehouse:\n  password: [hunter2]\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert "  warehouse.password: Input should be a valid string" in str(refused.value)
    assert "hunter2" not in str(refused.value)
