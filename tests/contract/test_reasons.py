"""Every reason code of the contract, from an input that yields exactly that code, through both paths."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mkt_ray.contract import REASON_CODES, BatchDecoder, DecoderState, Limits, Reason, classify
from mkt_ray.settings import ContractSettings
from tests.contract.factories import NOW, NOW_MS, TENANTS, encode, make_event


def _ts(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


def _outlier_stream() -> list[bytes]:
    history = [encode(make_event(event_id=f"h{i}", performance_metrics={"clicks": 1, "impressions": 1, "cost": 1.0 + (i % 7) / 10}))
               for i in range(60)]
    return [*history, encode(make_event(event_id="spike", performance_metrics={"clicks": 1, "impressions": 1, "cost": 25_000.0}))]


SINGLE_REASON = {
    "oversized": b'{"pad": "' + b"x" * (64 * 1024) + b'"}',
    "invalid_utf8": b'{"event_id": "\xff\xfe"}',
    "invalid_json": b'{"schema_version": 1,',
    "not_an_object": b'[{"schema_version": 1}]',
    "unsupported_schema_version": encode(make_event(schema_version=2)),
    "pii_not_allowed": encode(make_event(email="jane@example.com")),
    "unknown_field": encode(make_event(colour="red")),
    "unknown_event_type": encode(make_event(event_type="pageview")),
    "missing_field": encode(make_event(drop=("event_id",))),
    "invalid_type": encode(make_event(event_id=17)),
    "invalid_value": encode(make_event(timestamp="2026-11-27T11:59:00")),
    "unknown_tenant": encode(make_event(tenant_id="hooli")),
    "negative_metric": encode(make_event(performance_metrics={"cost": -1.0})),
    "non_finite_metric": b'{"schema_version":1,"event_id":"e","tenant_id":"acme","event_type":"touchpoint",'
    b'"timestamp":"2026-11-27T11:59:00Z","source":"meta","campaign_id":"c","anonymous_id":"a",'
    b'"performance_metrics":{"cost":1e999}}',
    "clicks_exceed_impressions": encode(make_event("ad_metrics", performance_metrics={"impressions": 5, "clicks": 6})),
    "conversions_exceed_clicks": encode(
        make_event("ad_metrics", performance_metrics={"impressions": 9, "clicks": 2, "conversions": 3})
    ),
    "future_timestamp": encode(make_event(timestamp=_ts(timedelta(minutes=6)))),
    "too_old": encode(make_event(timestamp=_ts(-timedelta(days=91)))),
}


def test_every_reason_code_is_covered() -> None:
    assert set(SINGLE_REASON) | {"outlier"} == set(REASON_CODES)


@pytest.mark.parametrize("code", sorted(SINGLE_REASON))
def test_reference_yields_exactly_the_code(code: str) -> None:
    assert classify(SINGLE_REASON[code], TENANTS, NOW_MS) is Reason.from_code(code)


@pytest.mark.parametrize("code", sorted(SINGLE_REASON))
def test_decoder_yields_exactly_the_code(code: str) -> None:
    batch = BatchDecoder(TENANTS).decode([SINGLE_REASON[code]], partitions=[3], offsets=[41], now_ms=NOW_MS)
    assert len(batch.events) == 0
    assert [(r.reason.code, r.raw, r.partition, r.offset) for r in batch.rejects] == [(code, SINGLE_REASON[code], 3, 41)]


def test_a_mixed_batch_gets_the_reference_verdict_for_each_message() -> None:
    """The decoder checks whole columns of a chunk at once; each message of a mixed batch still gets the
    verdict the reference gives it alone, whatever its neighbours carry."""
    specials = [
        *SINGLE_REASON.values(),
        # a nested PII key in another case; escapes (valid); a lone surrogate escape; a key that is not PII
        encode(make_event("stage_change", event_id="s-pii", metadata={"stage": "lead", "profile": {"Email": "x"}})),
        encode(make_event("stage_change", event_id="s-escapes", metadata={"stage": "lead", "note": "caf\u00e9 \\ x"})),
        encode(make_event(event_id="s-surrogate", anonymous_id="\ud800")),
        encode(make_event("stage_change", event_id="s-hint", metadata={"stage": "lead", "profile": {"name_hint": "x"}})),
    ]
    lines: list[bytes] = []
    for i, special in enumerate(specials):
        lines += [encode(make_event("stage_change", event_id=f"v{i}-{j}", tenant_id=sorted(TENANTS)[j % len(TENANTS)],
                                    metadata={"stage": "lead", "n": j})) for j in range(5)]
        lines.append(special)
    batch = BatchDecoder(TENANTS).decode(lines, now_ms=NOW_MS)
    verdicts: list[str | None] = [None] * len(lines)
    for rejection in batch.rejects:
        verdicts[rejection.index] = rejection.reason.code
    expected = [None if (reason := classify(raw, TENANTS, NOW_MS)) is None else reason.code for raw in lines]
    assert verdicts == expected and expected.count(None) == len(batch.events) > len(specials) * 5
    assert {"pii_not_allowed", "unknown_tenant", "invalid_utf8"} <= set(expected)


def test_outlier_fires_after_history_and_only_on_the_spike() -> None:
    stream = _outlier_stream()
    batch = BatchDecoder(TENANTS).decode(stream, now_ms=NOW_MS)
    assert [(r.index, r.reason.code) for r in batch.rejects] == [(60, "outlier")]
    assert len(batch.events) == 60


def test_outlier_does_not_depend_on_batch_boundaries() -> None:
    stream = _outlier_stream()
    decoder = BatchDecoder(TENANTS)
    codes = [r.reason.code for i in range(0, len(stream), 7) for r in decoder.decode(stream[i : i + 7], now_ms=NOW_MS).rejects]
    assert codes == ["outlier"]


def test_outlier_is_silent_before_enough_history() -> None:
    spike = encode(make_event(event_id="spike", performance_metrics={"clicks": 1, "impressions": 1, "cost": 25_000.0}))
    assert BatchDecoder(TENANTS).decode([spike], now_ms=NOW_MS).rejects == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # schema version outranks everything after it, even PII
        (make_event(schema_version=3, email="a@b.c"), "unsupported_schema_version"),
        (make_event(phone="555", colour="red"), "pii_not_allowed"),
        (make_event(metadata={"nested": {"Email": "x"}}, colour="red"), "pii_not_allowed"),
        (make_event(email_sha256="me@example.com", event_type="pageview"), "pii_not_allowed"),
        (make_event(colour="red", event_type="pageview"), "unknown_field"),
        (make_event(performance_metrics={"views": 3}, drop=("event_id",)), "unknown_field"),
        (make_event(event_type="pageview", drop=("event_id",)), "unknown_event_type"),
        (make_event(drop=("timestamp",), event_id=5), "missing_field"),
        (make_event(event_id=5, timestamp="yesterday"), "invalid_type"),
        (make_event(tenant_id="hooli", timestamp="not-a-time"), "invalid_value"),
        (make_event(tenant_id="hooli", performance_metrics={"cost": -1}), "unknown_tenant"),
        (make_event(performance_metrics={"cost": -1, "clicks": 5, "impressions": 1}), "negative_metric"),
        (make_event("ad_metrics", performance_metrics={"impressions": 1, "clicks": 2, "conversions": 3}),
         "clicks_exceed_impressions"),
        (make_event("ad_metrics", performance_metrics={"impressions": 9, "clicks": 2, "conversions": 3},
                    timestamp=_ts(timedelta(days=1))), "conversions_exceed_clicks"),
        (make_event(timestamp=_ts(timedelta(days=-100)), performance_metrics={"clicks": 1}), "too_old"),
    ],
)
def test_precedence_first_reason_in_contract_order_wins(message: dict, expected: str) -> None:
    raw = encode(message)
    assert classify(raw, TENANTS, NOW_MS) is Reason.from_code(expected)
    assert [r.reason.code for r in BatchDecoder(TENANTS).decode([raw], now_ms=NOW_MS).rejects] == [expected]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (make_event(event_id=""), "invalid_value"),
        (make_event(tenant_id="Acme"), "invalid_value"),
        (make_event(tenant_id="acme\n"), "invalid_value"),
        (make_event(email_sha256="A" * 64), "invalid_value"),
        (make_event(email_sha256="a" * 64 + "\n"), "invalid_value"),
        (make_event(performance_metrics={"clicks": True}), "invalid_type"),
        (make_event(performance_metrics={"clicks": 1.5}), "invalid_type"),
        (make_event(performance_metrics={"clicks": "3"}), "invalid_type"),
        (make_event(performance_metrics={"clicks": 2**63}), "invalid_value"),
        (make_event(performance_metrics=[1, 2]), "invalid_type"),
        (make_event(consent={"analytics": "yes"}), "invalid_type"),
        (make_event(metadata={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}), "invalid_value"),
        (make_event(metadata={"a": [[[[[1]]]]]}), "invalid_value"),
        (make_event(metadata={"blob": "x" * 9000}), "invalid_value"),
        (make_event("stage_change", metadata={"other": 1}), "missing_field"),
        (make_event("stage_change", drop=("metadata",)), "missing_field"),
        (make_event("stage_change", metadata={"stage": 5}), "invalid_type"),
        (make_event("stage_change", metadata={"stage": ""}), "invalid_value"),
        (make_event("personalization", metadata={}), "missing_field"),
        (make_event("identify", drop=("anonymous_id",)), "missing_field"),
        (make_event("identify", drop=("user_id",), device_id="d1"), "missing_field"),
        (make_event("consent", drop=("consent",)), "missing_field"),
        (make_event("conversion", drop=("user_id",)), "missing_field"),
        (make_event("campaign_launch", drop=("campaign_id",)), "missing_field"),
        (make_event(schema_version="1"), "unsupported_schema_version"),
        (make_event(schema_version=True), "unsupported_schema_version"),
        (make_event(event_id=None), "missing_field"),
    ],
)
def test_value_rules(message: dict, expected: str) -> None:
    raw = encode(message)
    assert classify(raw, TENANTS, NOW_MS) is Reason.from_code(expected)
    assert [r.reason.code for r in BatchDecoder(TENANTS).decode([raw], now_ms=NOW_MS).rejects] == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # an integer literal too large for a float overflows to infinity
        (encode(make_event(performance_metrics={"cost": 0.5})).replace(b"0.5", b"1" + b"0" * 400), "non_finite_metric"),
        # a lone surrogate escape is JSON text that no UTF-8 string can hold
        (encode(make_event(event_id="\ud800")), "invalid_utf8"),
        (encode(make_event(metadata={"k": "\udfff"})), "invalid_utf8"),
    ],
)
def test_unrepresentable_values(raw: bytes, expected: str) -> None:
    assert classify(raw, TENANTS, NOW_MS) is Reason.from_code(expected)
    assert [r.reason.code for r in BatchDecoder(TENANTS).decode([raw], now_ms=NOW_MS).rejects] == [expected]


def test_escaped_surrogate_pairs_are_fine() -> None:
    raw = encode(make_event(event_id="smile-\U0001F600"))
    assert b"\\ud83d" in raw
    batch = BatchDecoder(TENANTS).decode([raw], now_ms=NOW_MS)
    assert batch.rejects == [] and batch.events["event_id"].tolist() == ["smile-\U0001F600"]


def test_nan_and_infinity_literals_are_not_json() -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        raw = b'{"schema_version":1,"performance_metrics":{"cost":' + literal + b"}}"
        assert classify(raw, TENANTS, NOW_MS) is Reason.INVALID_JSON


@pytest.mark.parametrize(
    ("overrides", "rejected"),
    [({}, ["outlier"]), ({"outlier_min_samples": 61}, []), ({"outlier_threshold": 1000.0}, [])],
)
def test_outlier_settings_reach_the_decoder(overrides: dict, rejected: list[str]) -> None:
    """The operator's outlier settings decide, also for a decoder state restored from a checkpoint."""
    limits = Limits.from_settings(ContractSettings(**overrides))
    batch = BatchDecoder(TENANTS, limits, state=DecoderState()).decode(_outlier_stream(), now_ms=NOW_MS)
    assert [r.reason.code for r in batch.rejects] == rejected


def test_dedup_window_setting_reaches_the_decoder() -> None:
    """A repeat whose original is older than the dedup window (behind the tenant's watermark) is new again."""
    first = encode(make_event(event_id="e1", timestamp=_ts(timedelta(hours=-3))))
    later = encode(make_event(event_id="e2", timestamp=_ts(timedelta(hours=0))))
    for hours, duplicates in ((24.0, 1), (1.0, 0)):
        decoder = BatchDecoder(TENANTS, Limits.from_settings(ContractSettings(dedup_window_hours=hours)))
        batch = decoder.decode([first, later, first], now_ms=NOW_MS)
        assert len(batch.duplicates) == duplicates, hours
