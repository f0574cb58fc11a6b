"""`mkt-ray attribute` over a generated 10,000-path file against per-touch heuristics in plain Python."""

from __future__ import annotations

import json
import random

import pytest

from mkt_ray.attribution import MODELS
from mkt_ray.cli import main

CHANNELS = ("display", "email", "meta", "paid_search", "referral", "seo")


def write_path_file(path, n_paths: int = 10_000, seed: int = 2024, separator: str = ";") -> list[tuple]:
    """Seeded paths over 6 channels, lengths 1-8; some convert (with value), most also have nulls."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n_paths):
        channels = [rng.choice(CHANNELS) for _ in range(rng.randint(1, 8))]
        conversions = rng.choice((0, 0, 1, 1, 2, 5))
        value = round(conversions * rng.uniform(5, 200), 2)
        rows.append((channels, conversions, value, rng.randint(0 if conversions else 1, 20)))
    with open(path, "w", encoding="utf-8") as out:
        out.write(separator.join(("path", "total_conversions", "total_conversion_value", "total_null")) + "\n")
        for channels, conversions, value, nulls in rows:
            out.write(separator.join((" > ".join(channels), str(conversions), repr(value), str(nulls))) + "\n")
    return rows


def heuristics(rows) -> dict[str, dict[str, list[float]]]:
    """first/last/linear/position_based credits per touch, each path one conversion with its totals."""
    out = {m: {c: [0.0, 0.0] for c in CHANNELS} for m in ("first_touch", "last_touch", "linear", "position_based")}
    for channels, conversions, value, _nulls in rows:
        n = len(channels)
        if n == 1:
            position = [1.0]
        elif n == 2:
            position = [0.5, 0.5]
        else:
            position = [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
        weights = {"first_touch": [1.0] + [0.0] * (n - 1), "last_touch": [0.0] * (n - 1) + [1.0],
                   "linear": [1.0 / n] * n, "position_based": position}
        for model, ws in weights.items():
            for channel, w in zip(channels, ws, strict=True):
                out[model][channel][0] += w * conversions
                out[model][channel][1] += w * value
    return out


def test_attribute_10k_paths_matches_heuristics_and_sums_to_totals(tmp_path, capsys) -> None:
    path_file = tmp_path / "paths.csv"
    rows = write_path_file(path_file)
    assert main(["attribute", str(path_file)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result) == sorted(m for m in MODELS if m != "time_decay")
    expected = heuristics([r for r in rows if r[1] > 0])
    for model, credits in expected.items():
        for channel, (conversions, value) in credits.items():
            assert result[model][channel]["conversions"] == pytest.approx(conversions, rel=1e-9)
            assert result[model][channel]["revenue"] == pytest.approx(value, rel=1e-9)
    total_conversions, total_value = sum(r[1] for r in rows), sum(r[2] for r in rows)
    for model, credits in result.items():
        assert set(credits) == set(CHANNELS), model
        assert sum(c["conversions"] for c in credits.values()) == pytest.approx(total_conversions, rel=1e-12)
        assert sum(c["revenue"] for c in credits.values()) == pytest.approx(total_value, rel=1e-12)
        assert all(c["conversions"] >= 0 and c["revenue"] >= 0 for c in credits.values())


def test_csv_output_and_comma_separated_input_give_the_same_numbers(tmp_path, capsys) -> None:
    semi, comma = tmp_path / "semi.txt", tmp_path / "comma.txt"
    write_path_file(semi, 500, seed=1)
    write_path_file(comma, 500, seed=1, separator=",")
    assert main(["attribute", str(semi), "--models", "markov,linear", "--order", "2"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["attribute", str(comma), "--models", "linear,markov", "--order", "2", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model,channel,conversions,revenue"
    assert [line.split(",")[:2] for line in lines[1:]] == [[m, c] for m in ("linear", "markov") for c in CHANNELS]
    for line in lines[1:]:
        model, channel, conversions, revenue = line.split(",")
        assert as_json[model][channel] == {"conversions": float(conversions), "revenue": float(revenue)}


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "last_click"], "unknown model 'last_click'"),
    (["--models", "time_decay"], "time_decay needs touchpoint timestamps"),
    (["--models", " , "], "--models needs at least one model"),
    (["--order", "0"], "--order must be at least 1"),
    (["--tenant", "acme"], "--tenant applies to events input only"),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, argv, message) -> None:
    path_file = tmp_path / "p.txt"
    path_file.write_text("A > B;1;1;0\n")
    assert main(["attribute", str(path_file), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("mkt-ray: error: ") and message in captured.err


def test_bad_files_exit_2_naming_the_line(tmp_path, capsys) -> None:
    assert main(["attribute", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "broken.txt"
    broken.write_text("A > B;1;1;0\nA > B;1;one;0\n")
    assert main(["attribute", str(broken)]) == 2
    assert f"{broken}:2: total_conversion_value is not a number: 'one'" in capsys.readouterr().err


def test_model_names_match_the_kernel() -> None:
    from mkt_ray.kernels import RULE_MODELS

    assert MODELS == (*RULE_MODELS, "markov")
