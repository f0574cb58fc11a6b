"""The model registry on a local folder, the pipeline's follower of promoted versions, and `mkt-ray models`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mkt_ray.cli import main as cli_main
from mkt_ray.errors import InputError
from mkt_ray.registry import ModelRegistry, PromotedModels
from mkt_ray.settings import TenantConfig

VALUES = {"data_driven": {"google_ads": 2.0, "meta": 1.0}, "markov": {"google_ads": 0.3, "meta": 0.6}}
OTHER = {"data_driven": {"google_ads": 1.0, "meta": 4.0}, "markov": {"google_ads": 0.1, "meta": 0.2}}


def _entry(values: dict, auc: float = 0.7) -> dict:
    return {"channel_values": values, "metrics": {"auc": auc}, "journeys": {"total": 10},
            "data_range": {"since": "2026-11-01", "until": "2026-11-02"}}


def test_publish_list_show_promote(tmp_path: Path) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    assert registry.tenants() == [] and registry.versions("acme") == [] and registry.promoted("acme") is None
    first = registry.publish("acme", "tree model 1", _entry(VALUES))
    second = registry.publish("acme", "tree model 2", _entry(OTHER))
    (tmp_path / "models" / "acme" / "half-written").mkdir()  # no entry.json: not a version
    assert registry.versions("acme") == [first, second] and first < second
    assert registry.entry("acme", second)["channel_values"] == OTHER
    assert registry.entry("acme", second)["version"] == second
    assert registry.model_text("acme", first) == "tree model 1"
    pointer = registry.promote("acme", first)
    assert pointer["version"] == first and registry.promoted("acme") == first
    registry.promote("acme", second)
    assert registry.promoted("acme") == second
    assert sorted(p.name for p in (tmp_path / "models" / "acme").iterdir() if p.is_file()) == ["PROMOTED.json"]
    with pytest.raises(InputError, match=f"no model version 'v9' for tenant 'acme'.*known: {first}, {second}"):
        registry.promote("acme", "v9")
    assert registry.promoted("acme") == second  # a refused promote leaves the pointer alone
    with pytest.raises(InputError, match="is not a tenant id"):
        registry.versions("../etc")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_followers_pick_up_a_promotion_after_the_poll_interval(tmp_path: Path) -> None:
    uri = str(tmp_path / "models")
    registry = ModelRegistry(uri)
    first = registry.publish("acme", "m1", _entry(VALUES))
    second = registry.publish("acme", "m2", _entry(OTHER))
    clock = _Clock()
    follower = PromotedModels(uri, poll_s=5.0, clock=clock)
    engines: dict = {}
    follower.refresh(["acme", "globex"])
    follower.install(engines, ["acme", "globex"], {})
    assert follower.versions == {} and engines == {}  # nothing promoted: engines stay on the fallback
    registry.promote("acme", first)
    clock.now = 4.9
    follower.refresh(["acme", "globex"])
    assert follower.versions == {}  # not polled yet
    clock.now = 5.0
    follower.refresh(["acme", "globex"])
    follower.install(engines, ["acme"], {"acme": TenantConfig(lookback_days=3)})
    assert follower.versions == {"acme": first} and list(engines) == ["acme"]
    assert engines["acme"].channel_values == VALUES and engines["acme"].config.lookback_days == 3
    registry.promote("acme", second)
    (tmp_path / "models" / "acme" / second / "entry.json").write_text("{broken")
    clock.now = 10.0
    follower.refresh(["acme"])  # an unreadable entry keeps the values in use
    follower.install(engines, ["acme"], {})
    assert follower.versions == {"acme": first} and engines["acme"].channel_values == VALUES
    (tmp_path / "models" / "acme" / second / "entry.json").write_text(json.dumps(_entry(OTHER)))
    clock.now = 15.0
    follower.refresh(["acme"])
    follower.install(engines, ["acme"], {})
    assert follower.versions == {"acme": second} and engines["acme"].channel_values == OTHER


def test_models_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    uri = str(tmp_path / "models")
    registry = ModelRegistry(uri)
    first = registry.publish("acme", "m1", _entry(VALUES, auc=0.71234))
    second = registry.publish("globex", "m2", _entry(OTHER, auc=0.6))
    assert cli_main(["models", "--registry", uri, "promote", "acme", first]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == first
    assert cli_main(["models", "--registry", uri, "list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"* acme {first}  auc=0.7123  journeys=10  dates=2026-11-01..2026-11-02",
        f"  globex {second}  auc=0.6  journeys=10  dates=2026-11-01..2026-11-02",
    ]
    assert cli_main(["models", "--registry", uri, "show", "globex", second]) == 0
    assert json.loads(capsys.readouterr().out)["channel_values"] == OTHER
    config = tmp_path / "mkt.yaml"
    config.write_text(f"registry: {{uri: {uri}}}\n")  # the registry from the settings
    assert cli_main(["--config", str(config), "models", "promote", "globex", "nope"]) == 2
    assert "no model version 'nope' for tenant 'globex'" in capsys.readouterr().err
