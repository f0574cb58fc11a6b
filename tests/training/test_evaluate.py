"""`python -m training.evaluate`: every model's shares against the ground truth, one JSON line and a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mkt_ray.registry import ModelRegistry
from tests.training.conftest import offline_credits
from training._fit import credit, design
from training._model import train_local
from training.evaluate import main

MODELS = {"first_touch", "last_touch", "linear", "position_based", "time_decay", "markov", "data_driven"}


def _shares(credits: dict) -> dict[str, float]:
    total = sum(v["conversions"] for ch, v in credits.items() if ch != "(direct)")
    return {ch: v["conversions"] / total for ch, v in credits.items() if ch != "(direct)"}


def test_evaluate_reports_every_model_against_the_truth(acme_store, acme_journeys, acme_offline, tmp_path: Path,
                                                       capsys) -> None:
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps(acme_store.truth))
    # a registered model, so evaluate scores what the registry holds (not a model of its own)
    journeys = acme_journeys
    d = design(journeys)
    booster = train_local(d.x[d.train], d.y[d.train], d.features, d.categorical, 30)
    registry = ModelRegistry(str(tmp_path / "models"))
    version = registry.publish("acme", booster.model_to_string(), {"channels": list(d.channels)})
    assert main(["--input", acme_store.uri, "--tenant", "acme", "--truth", str(truth_file),
                 "--registry", str(tmp_path / "models"), "--version", version]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert set(report["models"]) == MODELS and report["data_driven_model"] == f"registry {version}"
    assert report["truth"] == acme_store.truth["channel_shares"]["acme"]
    for model in ("first_touch", "last_touch", "linear", "markov"):  # the offline reader, independently
        assert report["models"][model]["shares"] == pytest.approx(_shares(offline_credits(acme_offline, model)), abs=1e-9)
    expected = _shares(credit(journeys, d, booster.predict).credits)
    assert report["models"]["data_driven"]["shares"] == pytest.approx(expected, abs=1e-12)
    dd, lt = report["models"]["data_driven"], report["models"]["last_touch"]
    assert dd["max_error_pp"] < 5.0 and dd["mean_error_pp"] < lt["mean_error_pp"]
    assert "max error (pp)" in out.err and "data_driven" in out.err.splitlines()[1]


def test_evaluate_names_a_truth_file_without_the_tenant(acme_store, tmp_path: Path, capsys) -> None:
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps({"channel_shares": {"globex": {"meta": 1.0}}}))
    assert main(["--input", acme_store.uri, "--tenant", "acme", "--truth", str(truth_file)]) == 2
    assert "has no channel_shares for tenant 'acme'" in capsys.readouterr().err
