"""The training job end to end through `main([...])`, its error messages, and the ground truth check."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import pytest

from mkt_ray.registry import ModelRegistry
from tests.training.conftest import offline_credits
from training.train_attribution import main

DIRECT = "(direct)"


def _shares(credits: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each channel's share of the conversions credited to channels (direct conversions are the baseline)."""
    total = sum(v["conversions"] for ch, v in credits.items() if ch != DIRECT)
    return {ch: v["conversions"] / total for ch, v in credits.items() if ch != DIRECT}


@pytest.mark.platform  # Ray Data and Ray Train on the session Ray
def test_data_driven_shares_are_within_5pp_of_the_truth_and_beat_last_touch(
        acme_store, acme_offline, ray_session, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    registry = tmp_path / "models"
    code = main(["--input", acme_store.uri, "--tenant", "acme", "--output", str(registry),
                 "--num-workers", "1", "--num-boost-round", "40"])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == {"model_version", "journeys", "auc", "logloss", "channel_values", "credits"}
    assert "holdout AUC" in out.err and "registered acme" in out.err  # progress on stderr

    # the offline reader over the same messages (an independent replay) credits the same conversions
    offline = offline_credits(acme_offline, "last_touch")
    credits = result["credits"]
    assert credits[DIRECT] == pytest.approx(offline[DIRECT], rel=1e-12)
    assert sum(v["conversions"] for v in credits.values()) == pytest.approx(
        sum(v["conversions"] for v in offline.values()), rel=1e-9)
    assert sum(v["revenue"] for v in credits.values()) == pytest.approx(
        sum(v["revenue"] for v in offline.values()), rel=1e-9)

    truth = acme_store.truth["channel_shares"]["acme"]
    data_driven, last_touch = _shares(credits), _shares(offline)
    dd_error = {ch: abs(data_driven[ch] - truth[ch]) for ch in truth}
    lt_error = {ch: abs(last_touch[ch] - truth[ch]) for ch in truth}
    print(json.dumps({"truth": truth, "data_driven": data_driven, "last_touch": last_touch,
                      "max_error_pp": {"data_driven": 100 * max(dd_error.values()),
                                       "last_touch": 100 * max(lt_error.values())},
                      "auc": result["auc"], "logloss": result["logloss"]}))
    assert max(dd_error.values()) < 0.05
    assert sum(dd_error.values()) < sum(lt_error.values())
    assert 0.5 < result["auc"] <= 1.0 and result["logloss"] > 0

    reg = ModelRegistry(str(registry))
    assert reg.versions("acme") == [result["model_version"]] and reg.promoted("acme") is None
    entry = reg.entry("acme", result["model_version"])
    assert entry["channel_values"]["data_driven"] == result["channel_values"]
    assert set(entry["channel_values"]["markov"]) == set(truth) | {DIRECT}  # direct paths are Markov states too
    assert entry["data_range"]["tenant"] == "acme" and entry["code_version"]
    assert entry["journeys"]["total"] == result["journeys"]
    booster = lgb.Booster(model_str=reg.model_text("acme", result["model_version"]))
    assert booster.feature_name() == entry["features"]


@pytest.mark.parametrize(("args", "message"), [
    (["--tenant", "nobody"], "unknown tenant 'nobody'"),
    (["--since", "2026-13-01"], "--since '2026-13-01' is not a date"),
    (["--since", "2026-02-02", "--until", "2026-02-01"], "is after --until"),
    (["--until", "2001-01-01"], "no raw events of tenant 'acme' between the start and 2001-01-01"),
    (["--num-boost-round", "0"], "must be at least 1"),
])
def test_bad_input_gets_a_clear_error_and_writes_nothing(acme_store, tmp_path: Path, capsys, args, message) -> None:
    base = {"--input": acme_store.uri, "--tenant": "acme", "--output": str(tmp_path / "models")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    code = main([part for item in base.items() for part in item])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not (tmp_path / "models").exists()


def test_a_missing_store_is_named(tmp_path: Path, capsys) -> None:
    code = main(["--input", str(tmp_path / "nothing"), "--tenant", "acme", "--output", str(tmp_path / "m")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
