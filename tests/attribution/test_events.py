"""Events JSONL input: identity stitching, lookback, processing order, (direct), duplicates, consent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mkt_ray.attribution import MODELS, AttributionSettings, ChannelPath, attribute_file, read_event_journeys
from mkt_ray.cli import main

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
AS_OF = T0 + DAY  # processing time of the replay: the time rules judge it, not the wall clock
AS_OF_MS = int(AS_OF.timestamp() * 1000)
SETTINGS = AttributionSettings(now_ms=AS_OF_MS)


def event(event_type: str, at: datetime, event_id: str, tenant: str = "acme", **fields) -> dict:
    """A valid v1 event; touchpoints get a campaign, stage changes a stage."""
    base = {"schema_version": 1, "event_id": event_id, "tenant_id": tenant, "event_type": event_type,
            "timestamp": at.isoformat().replace("+00:00", "Z")}
    if event_type == "touchpoint":
        base["campaign_id"] = "c1"
    if event_type == "stage_change":
        base["metadata"] = {"stage": "lead"}
    return {**base, **fields}


def journey_lines() -> list[str]:
    events = [
        event("touchpoint", T0 - 40 * DAY, "t1", anonymous_id="a1", source="meta"),  # outside the 30-day lookback
        event("touchpoint", T0 - 5 * DAY, "t2", anonymous_id="a1", source="google_ads"),
        event("touchpoint", T0 - 2 * DAY, "t3", device_id="d1", source="email"),
        event("identify", T0 - DAY, "i1", user_id="u1", anonymous_id="a1"),  # a1 is u1
        event("stage_change", T0 - DAY, "s1", user_id="u1", device_id="d1"),  # together on one event: d1 is u1
        event("touchpoint", T0 - 3 * DAY, "t4", anonymous_id="a1", source="seo", tenant="globex"),  # other tenant
        event("conversion", T0, "v1", user_id="u1", performance_metrics={"revenue": 100.0}),
        event("touchpoint", T0 - 3 * DAY, "t5", anonymous_id="a1", source="tiktok"),  # processed after v1
        event("conversion", T0, "v2", user_id="u2", performance_metrics={"revenue": 50.0, "conversions": 2}),
        event("conversion", T0 + timedelta(hours=1), "v2", user_id="u2", performance_metrics={"revenue": 50.0}),
        event("touchpoint", T0, "t6", anonymous_id="a9", source="meta"),  # never converts
        event("consent", T0 - DAY, "k1", anonymous_id="a5", consent={"analytics": False}),
        event("touchpoint", T0 - DAY, "t7", anonymous_id="a5", source="display"),  # no consent
        event("conversion", T0, "v3", anonymous_id="a5", performance_metrics={"revenue": 7.0}),  # no consent
        event("touchpoint", T0 - DAY, "t8", anonymous_id="a6", source="display",
              consent={"analytics": False}),  # carries no consent itself
    ]
    lines = [json.dumps(e) for e in events]
    lines.insert(3, "{not json")
    lines.insert(5, json.dumps(event("touchpoint", T0, "bad", anonymous_id="a1", source="meta", email="x@y.z")))
    lines.insert(7, "")
    return lines


def test_journeys_stitch_identities_and_respect_lookback_order_and_consent(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(journey_lines()) + "\n")
    journeys = read_event_journeys(path, tenant="acme", now_ms=AS_OF_MS)
    assert (journeys.lines, journeys.duplicates, journeys.no_consent) == (17, 1, 4)
    assert journeys.invalid == {"invalid_json": 1, "pii_not_allowed": 1}
    assert journeys.channel_paths() == [
        ChannelPath(("google_ads", "email"), 1.0, 100.0, 0.0),  # meta excluded by lookback, tiktok came later
        ChannelPath(("(direct)",), 2.0, 50.0, 0.0),  # no touchpoint: direct, attributed once
        ChannelPath(("meta", "tiktok"), 0.0, 0.0, 1.0),  # u1's touchpoints no conversion credited
        ChannelPath(("meta",), 0.0, 0.0, 1.0),  # a9 never converted
    ]
    assert journeys.touches.touch_ts_ms.tolist()[:2] == [
        int((T0 - 5 * DAY).timestamp() * 1000), int((T0 - 2 * DAY).timestamp() * 1000)]


def test_a_tenant_with_no_valid_event_in_the_file_is_refused_naming_those_that_have(tmp_path, capsys) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(journey_lines()) + "\n")
    assert main(["attribute", str(path), "--tenant", "initech", "--as-of", AS_OF.isoformat()]) == 2
    err = capsys.readouterr().err
    assert f"mkt-ray: error: no valid event of tenant 'initech' in {path}; tenants with valid events: acme, globex" in err
    assert read_event_journeys(path, tenant="globex", now_ms=AS_OF_MS).lines == 17  # one of them: read as usual


def test_models_over_events_follow_the_contract(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(journey_lines()) + "\n")
    models = attribute_file(path, settings=SETTINGS).models
    assert sorted(models) == sorted(MODELS)
    assert models["first_touch"] == {"google_ads": {"conversions": 1.0, "revenue": 100.0},
                                     "email": {"conversions": 0.0, "revenue": 0.0},
                                     "(direct)": {"conversions": 2.0, "revenue": 50.0}}
    assert models["last_touch"]["email"] == {"conversions": 1.0, "revenue": 100.0}
    assert models["linear"]["google_ads"] == models["linear"]["email"] == {"conversions": 0.5, "revenue": 50.0}
    # time_decay: weights 2^(-5/7) and 2^(-2/7) (days before the conversion, half-life 7 days), normalised
    old, new = 2 ** (-5 / 7), 2 ** (-2 / 7)
    assert models["time_decay"]["google_ads"]["revenue"] == pytest.approx(100 * old / (old + new), rel=1e-12)
    assert models["time_decay"]["email"]["revenue"] == pytest.approx(100 * new / (old + new), rel=1e-12)
    for model, credits in models.items():
        if model != "markov":
            assert credits["(direct)"] == {"conversions": 2.0, "revenue": 50.0}
        assert sum(c["conversions"] for c in credits.values()) == pytest.approx(3.0, rel=1e-12)
        assert sum(c["revenue"] for c in credits.values()) == pytest.approx(150.0, rel=1e-12)


def test_lookback_and_tenant_options_through_the_cli(tmp_path, capsys) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(journey_lines()) + "\n")
    as_of = ["--as-of", AS_OF.isoformat()]
    assert main(["attribute", str(path), "--models", "first_touch", "--lookback-days", "60", *as_of]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["first_touch"]["meta"] == {"conversions": 1.0, "revenue": 100.0}
    assert captured.err == ("mkt-ray: read 17 events; skipped 2 invalid (invalid_json 1, pii_not_allowed 1), "
                            "1 duplicate, 4 without analytics consent\n")
    assert main(["attribute", str(path), "--models", "linear", "--tenant", "globex", *as_of]) == 0
    assert json.loads(capsys.readouterr().out) == {"linear": {}}


def test_markov_over_events_uses_converting_and_null_paths(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(journey_lines()) + "\n")
    report = attribute_file(path, ["markov"], SETTINGS)
    # paths: google_ads > email (1 conv), (direct) (2 conv), and the null paths meta > tiktok (u1),
    # meta (a9) and seo (a1 of globex, another person). start: google_ads 1, (direct) 2, meta 2, seo 1 of 6;
    # P = 1/6 + 2/6 = 1/2. Without google_ads or email: 2/6, RE = 1/3; without (direct): 1/6, RE = 2/3;
    # meta, tiktok, seo never lead to a conversion: RE = 0. Shares 1/4, 1/4, 1/2 of 3 conversions and 150.
    assert report.removal_effects == pytest.approx(
        {"(direct)": 2 / 3, "email": 1 / 3, "google_ads": 1 / 3, "meta": 0.0, "seo": 0.0, "tiktok": 0.0}, abs=1e-12)
    expected = {"(direct)": (1.5, 75.0), "email": (0.75, 37.5), "google_ads": (0.75, 37.5),
                "meta": (0.0, 0.0), "seo": (0.0, 0.0), "tiktok": (0.0, 0.0)}
    assert report.models["markov"] == {
        channel: {"conversions": pytest.approx(c, abs=1e-12), "revenue": pytest.approx(r, abs=1e-12)}
        for channel, (c, r) in expected.items()}


def test_time_rules_judge_the_processing_time_and_keep_duplicates_caught(tmp_path, capsys) -> None:
    conversion = event("conversion", T0, "v1", user_id="u1", performance_metrics={"revenue": 10.0})
    events = [
        conversion,
        # a future-dated event (rejected): had it been accepted, it would push the tenant's watermark
        # 3 days ahead and the re-send of v1 below would no longer count as a duplicate
        event("touchpoint", AS_OF + 3 * DAY, "t-future", user_id="u1", source="meta"),
        event("touchpoint", AS_OF - 91 * DAY, "t-old", user_id="u1", source="meta"),  # beyond 90-day retention
        {**conversion, "timestamp": (T0 + timedelta(hours=2)).isoformat().replace("+00:00", "Z")},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    journeys = read_event_journeys(path, now_ms=AS_OF_MS)
    assert journeys.invalid == {"future_timestamp": 1, "too_old": 1} and journeys.duplicates == 1
    assert journeys.channel_paths() == [ChannelPath(("(direct)",), 1.0, 10.0, 0.0)]
    assert main(["attribute", str(path), "--as-of", "2026-03-11T12:00:00+00:00", "--models", "linear"]) == 0
    assert "pass it to replay an older file" in capsys.readouterr().err
    for bad in ("yesterday", "2026-03-11T12:00:00"):
        assert main(["attribute", str(path), "--as-of", bad]) == 2
        assert "--as-of" in capsys.readouterr().err
