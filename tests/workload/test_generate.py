"""The workload generator against the contract's own decoder and classifier."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from mkt_ray.contract import EVENT_TYPES, REASON_CODES, BatchDecoder, EventColumns, classify
from mkt_ray.errors import InputError, MktRayError
from mkt_ray.workload import CHANNEL_NAMES, generate_workload, truth_path, write_workload

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
TENANTS = ["acme", "globex", "initech"]
N = 20_000
DECODE_BATCH = 5_000


def _generate(n: int = N, seed: int = 7, **kwargs) -> tuple[list[bytes], list[str], dict]:
    workload = generate_workload(n, TENANTS, seed, NOW, **kwargs)
    lines: list[bytes] = []
    outcomes: list[str] = []
    for batch, labels in workload.labelled_batches():
        lines += batch
        outcomes += labels
    assert workload.complete
    return lines, outcomes, workload.truth


def _decode(lines: list[bytes], now_ms: int) -> tuple[list[str], EventColumns]:
    """Every line's outcome by one decoder fed in file order, and the accepted events."""
    decoder = BatchDecoder(TENANTS)
    outcomes = ["valid"] * len(lines)
    parts = []
    for start in range(0, len(lines), DECODE_BATCH):
        batch = decoder.decode(lines[start:start + DECODE_BATCH], now_ms=now_ms)
        for rejection in batch.rejects:
            outcomes[start + rejection.index] = rejection.reason.code
        for position in batch.duplicates:
            outcomes[start + int(position)] = "duplicate"
        parts.append(batch.events)
    return outcomes, EventColumns.concat(parts)


@pytest.fixture(scope="module")
def workload() -> tuple[list[bytes], list[str], dict]:
    return _generate(invalid_share=0.05)


@pytest.fixture(scope="module")
def decoded(workload) -> tuple[list[str], EventColumns]:
    lines, _, truth = workload
    return _decode(lines, truth["now_ms"])


def test_same_arguments_give_the_same_bytes():
    first = list(generate_workload(3_000, TENANTS, 11, NOW))
    assert first == list(generate_workload(3_000, TENANTS, 11, NOW))
    assert first != list(generate_workload(3_000, TENANTS, 12, NOW))
    assert len(first) == 3_000
    assert len(list(generate_workload(0, TENANTS, 11, NOW))) == 0


def test_exactly_n_lines_without_newlines(workload):
    lines, outcomes, truth = workload
    assert len(lines) == len(outcomes) == truth["events"] == N
    assert not any(b"\n" in line or b"\r" in line for line in lines)


def test_decoder_counts_equal_the_truth(workload, decoded):
    _, _, truth = workload
    outcomes, events = decoded
    counts = Counter(outcomes)
    assert counts["valid"] == len(events) == truth["valid"]
    assert counts["duplicate"] == truth["duplicates"]
    assert {code: counts[code] for code in REASON_CODES} == truth["reasons"]
    assert truth["quarantined"] == sum(truth["reasons"].values())
    assert truth["valid"] + truth["duplicates"] + truth["quarantined"] == N
    assert all(truth["reasons"][code] > 0 for code in REASON_CODES), truth["reasons"]


def test_every_line_gets_the_outcome_it_was_made_for(workload, decoded):
    _, expected, _ = workload
    outcomes, _ = decoded
    wrong = [(i, want, got) for i, (want, got) in enumerate(zip(expected, outcomes, strict=True)) if want != got]
    assert not wrong, wrong[:10]


def test_reference_classifier_agrees_line_by_line(workload):
    lines, expected, truth = workload
    stateful = {"valid", "duplicate", "outlier"}
    for line, want in zip(lines, expected, strict=True):
        reason = classify(line, frozenset(TENANTS), truth["now_ms"])
        assert (None if want in stateful else want) == (reason.code if reason else None), line[:300]


def test_truth_kpis_equal_sums_over_decoded_events(workload, decoded):
    _, _, truth = workload
    _, events = decoded
    tenant = events["tenant_id"]
    for name in TENANTS:
        mine = tenant == name
        kpis = truth["kpis"][name]
        for count in ("impressions", "clicks", "conversions"):
            assert kpis[count] == int(events[count][mine].sum()), (name, count)
        for amount in ("cost", "revenue"):
            assert kpis[amount] == pytest.approx(float(events[amount][mine].sum()), rel=1e-12), (name, amount)
        assert kpis["impressions"] > kpis["clicks"] > kpis["conversions"] > 0
        assert kpis["cost"] > 0 and kpis["revenue"] > 0


def test_outlier_rule_never_fires_on_valid_traffic():
    lines, expected, truth = _generate(30_000, seed=3, invalid_share=0.0, duplicate_share=0.02)
    outcomes, events = _decode(lines, truth["now_ms"])
    assert outcomes == expected
    assert set(outcomes) == {"valid", "duplicate"}
    assert truth["quarantined"] == 0 and len(events) == truth["valid"]


def test_duplicates_resend_recent_valid_lines(workload):
    lines, expected, _ = workload
    position = {}
    for i, (line, outcome) in enumerate(zip(lines, expected, strict=True)):
        if outcome == "valid":
            position.setdefault(line, i)
        elif outcome == "duplicate":
            assert line in position and i - position[line] < 5_000


def test_traffic_looks_like_marketing_events(decoded):
    _, events = decoded
    types = Counter(EVENT_TYPES[code] for code in events["event_type"])
    assert set(types) == set(EVENT_TYPES)
    assert types["touchpoint"] > types["conversion"] > types["campaign_optimize"]
    touch = events["event_type"] == EVENT_TYPES.index("touchpoint")
    assert set(events["source"][touch]) == set(CHANNEL_NAMES)
    consent = events["event_type"] == EVENT_TYPES.index("consent")
    assert 0 in set(events["consent_analytics"][consent])  # some opt-outs
    assert any(e is not None for e in events["email_sha256"])
    assert any(e is not None for e in events["device_id"]) and any(e is not None for e in events["account_id"])
    ad = events["event_type"] == EVENT_TYPES.index("ad_metrics")
    assert np.all(events["impressions"][ad] >= events["clicks"][ad])
    assert np.all(events["clicks"][ad] >= events["conversions"][ad])


def test_times_lie_in_the_span_mostly_in_order(workload, decoded):
    lines, _, truth = workload
    _, events = decoded
    ts = events["ts_ms"]
    assert ts.min() > truth["now_ms"] - 6 * 3_600_000 and ts.max() <= truth["now_ms"]
    backwards = np.mean(np.diff(ts) < 0)
    assert 0.005 < backwards < 0.1
    assert sum(b'+0' in line[:200] for line in lines) > N * 0.05  # some +hh:mm offsets


def test_channel_shares_are_normalised_removal_effects(workload):
    _, _, truth = workload
    assert set(truth["channel_shares"]) == {*TENANTS, "all"}
    for shares in truth["channel_shares"].values():
        assert set(shares) == set(CHANNEL_NAMES)
        assert sum(shares.values()) == pytest.approx(1.0)
    lifts = {name: c["lift"] for name, c in truth["channels"].items()}
    shares = truth["channel_shares"]["all"]
    assert max(shares, key=shares.get) == "google_ads"  # highest lift and reach
    assert shares["display"] < shares["google_ads"] and lifts["display"] < lifts["google_ads"]


def test_write_workload_streams_lines_and_truth(tmp_path):
    calls = []
    out = tmp_path / "events.jsonl"
    truth = write_workload(out, 2_500, TENANTS, 5, now=NOW, progress=lambda done, total: calls.append((done, total)))
    assert truth_path(out) == tmp_path / "events.truth.json"
    assert json.loads(truth_path(out).read_text()) == truth
    assert out.read_bytes().split(b"\n") == [*generate_workload(2_500, TENANTS, 5, NOW), b""]
    assert calls == [(2_500, 2_500)] and truth["complete"] and truth["events"] == 2_500


def test_a_workload_streams_once_and_checks_its_arguments():
    workload = generate_workload(10, TENANTS, 1, NOW)
    assert len(list(workload)) == 10
    with pytest.raises(MktRayError):
        next(iter(workload.lines()))
    with pytest.raises(InputError):
        generate_workload(10, ["Acme"], 1, NOW)
    with pytest.raises(InputError):
        generate_workload(10, TENANTS, 1, datetime(2026, 11, 27))  # noqa: DTZ001 - naive on purpose
