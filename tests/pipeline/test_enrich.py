"""Enrichment: channel aliases per tenant and currency conversion, against hand-written expectations."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.contract import BatchDecoder, EventColumns
from mkt_ray.errors import ConfigError
from mkt_ray.pipeline._enrich import DEFAULT_CHANNEL_ALIASES, enrich
from mkt_ray.settings import CurrencySettings, TenantConfig, load_settings
from mkt_ray.workload._model import CHANNEL_NAMES
from tests.contract.factories import NOW_MS, encode, make_event

TENANTS = {"acme": TenantConfig(), "globex": TenantConfig()}
NO_FX = CurrencySettings()
FX = CurrencySettings(rates={"EUR": 1.08, "GBP": 1.27})


def decode(*events: dict[str, Any]) -> EventColumns:
    batch = BatchDecoder(["acme", "globex"]).decode([encode(e) for e in events], now_ms=NOW_MS)
    assert not batch.rejects and len(batch.events) == len(events)
    return batch.events


def touch(n: int, source: str, tenant: str = "acme", **overrides: Any) -> dict[str, Any]:
    return make_event("touchpoint", event_id=f"t{n}", tenant_id=tenant, source=source, **overrides)


def priced(n: int, tenant: str = "acme", cost: float = 10.0, revenue: float = 0.0, **metadata: Any) -> dict[str, Any]:
    metrics = {"impressions": 1, "clicks": 1, "cost": cost, "revenue": revenue}
    return touch(n, "google_ads", tenant, performance_metrics=metrics, metadata=metadata or None)


def sources(events: EventColumns) -> list:
    return events["source"].tolist()


def test_default_aliases_map_to_canonical_channels_and_count_renames() -> None:
    sent = ["adwords", "google", "googleads", "google_ads", "facebook", "fb", "instagram", "meta_ads", "e-mail",
            "mail", "newsletter", "tiktok_ads", "bing", "microsoft_ads", "seo", "organic", "linkedin_ads"]
    result = enrich(decode(*(touch(i, s) for i, s in enumerate(sent))), TENANTS, NO_FX)
    assert sources(result.events) == [
        "google_ads", "google_ads", "google_ads", "google_ads", "meta", "meta", "meta", "meta", "email",
        "email", "email", "tiktok", "microsoft_ads", "microsoft_ads", "organic_search", "organic_search", "linkedin",
    ]
    assert result.channel_renamed == {"acme": 15}  # google_ads and microsoft_ads were already canonical
    assert result.currency_converted == {} and result.currency_unknown == {}


def test_generator_channels_are_never_renamed() -> None:
    assert all(DEFAULT_CHANNEL_ALIASES.get(name, name) == name for name in CHANNEL_NAMES)
    events = decode(*(touch(i, s) for i, s in enumerate(CHANNEL_NAMES)))
    result = enrich(events, TENANTS, NO_FX)
    assert sources(result.events) == list(CHANNEL_NAMES) and result.channel_renamed == {}
    assert result.events["source"] is events["source"]  # nothing changed: the column is shared, not copied


def test_aliases_match_after_trimming_and_ignoring_case() -> None:
    sent = [" AdWords ", "FB", "Google_Ads ", "DISPLAY", "\tNewsLetter"]
    result = enrich(decode(*(touch(i, s) for i, s in enumerate(sent))), TENANTS, NO_FX)
    assert sources(result.events) == ["google_ads", "meta", "google_ads", "display", "email"]
    assert result.channel_renamed == {"acme": 5}


def test_unknown_channels_pass_through_exactly_as_sent() -> None:
    sent = ["Pinterest", " snap chat ", "reddit"]
    result = enrich(decode(*(touch(i, s) for i, s in enumerate(sent))), TENANTS, NO_FX)
    assert sources(result.events) == ["Pinterest", " snap chat ", "reddit"] and result.channel_renamed == {}


def test_tenant_aliases_override_and_extend_the_defaults_for_that_tenant_only() -> None:
    tenants = {
        "acme": TenantConfig(channel_aliases={"Google": "google_search", " Pinterest ": "pinterest", "dv360": "display"}),
        "globex": TenantConfig(),
    }
    sent = [("acme", "google"), ("acme", "PINTEREST"), ("acme", "DV360"), ("acme", "adwords"),
            ("globex", "google"), ("globex", "PINTEREST"), ("globex", "DV360"), ("globex", "adwords")]
    events = decode(*(touch(i, s, t) for i, (t, s) in enumerate(sent)))
    result = enrich(events, tenants, NO_FX)
    assert sources(result.events) == ["google_search", "pinterest", "display", "google_ads",
                                      "google_ads", "PINTEREST", "DV360", "google_ads"]
    assert result.channel_renamed == {"acme": 4, "globex": 2}


def test_events_without_source_keep_none_and_unregistered_tenants_get_the_defaults() -> None:
    events = decode(make_event("conversion", event_id="c1"), touch(1, "fb", "globex"))
    result = enrich(events, {}, NO_FX)
    assert sources(result.events) == [None, "meta"] and result.channel_renamed == {"globex": 1}


def test_foreign_currency_is_converted_exactly_and_metadata_says_so() -> None:
    events = decode(
        priced(1, cost=10.0, currency="EUR"),
        priced(2, "globex", cost=3.3, revenue=25.5, currency=" gbp", order="o-7"),
    )
    result = enrich(events, TENANTS, FX)
    assert result.events["cost"].tolist() == [10.0 * 1.08, 3.3 * 1.27]
    assert result.events["cost"][0] == 10.8
    assert result.events["revenue"].tolist() == [0.0, 25.5 * 1.27]
    assert [json.loads(m) for m in result.events["metadata"]] == [
        {"currency": "USD", "original_currency": "EUR", "fx_rate": 1.08},
        {"currency": "USD", "order": "o-7", "original_currency": " gbp", "fx_rate": 1.27},
    ]
    assert result.currency_converted == {"acme": 1, "globex": 1} and result.currency_unknown == {}


def test_unknown_currency_is_counted_and_left_as_sent() -> None:
    events = decode(priced(1, cost=7.0, currency="JPY"), priced(2, cost=8.0, currency=978),
                    priced(3, "globex", cost=9.0, currency="EUR"), priced(4, cost=5.0, currency=None))
    result = enrich(events, TENANTS, FX)
    assert result.events["cost"].tolist() == [7.0, 8.0, 9.0 * 1.08, 5.0]
    assert result.events["metadata"].tolist()[:2] == ['{"currency":"JPY"}', '{"currency":978}']
    assert result.events["metadata"][3] == '{"currency":null}'  # null reads as no currency: not counted
    assert result.currency_unknown == {"acme": 2} and result.currency_converted == {"globex": 1}


def test_base_currency_and_events_without_a_top_level_currency_are_untouched() -> None:
    events = decode(
        priced(1, cost=4.0, currency="USD"),
        priced(2, cost=4.0, currency="usd"),
        priced(3, cost=4.0),
        priced(4, cost=4.0, order={"currency": "EUR"}),
        make_event("stage_change", event_id="s1", metadata={"stage": "lead", "note": '"currency"'}),
    )
    result = enrich(events, TENANTS, FX)
    assert result.events["cost"].tolist() == [4.0, 4.0, 4.0, 4.0, 0.0]
    assert result.events["metadata"].tolist() == events["metadata"].tolist()
    assert result.currency_converted == {} and result.currency_unknown == {}
    assert result.events["cost"] is events["cost"] and result.events["metadata"] is events["metadata"]


def test_without_a_rate_table_no_currency_is_read() -> None:
    events = decode(priced(1, cost=10.0, currency="EUR"), priced(2, cost=1.0, currency="XXX"))
    result = enrich(events, TENANTS, NO_FX)
    assert result.events["cost"].tolist() == [10.0, 1.0]
    assert result.currency_converted == {} and result.currency_unknown == {}


def test_input_is_not_mutated() -> None:
    events = decode(touch(1, "fb", metadata={"currency": "EUR"}), priced(2, revenue=2.0, currency="GBP"))
    before = {name: col.copy() for name, col in events.data.items()}
    result = enrich(events, TENANTS, FX)
    assert set(events.data) == set(before)
    for name, col in before.items():
        assert events[name].tolist() == col.tolist(), name
    assert result.events["source"].tolist() == ["meta", "google_ads"]
    assert result.events["cost"].tolist() == [0.5 * 1.08, 10.0 * 1.27]
    assert result.events.to_arrow().num_rows == 2


def test_enrich_is_idempotent() -> None:
    events = decode(touch(1, "FB"), priced(2, cost=10.0, currency="EUR"), priced(3, currency="JPY"))
    once = enrich(events, TENANTS, FX)
    twice = enrich(once.events, TENANTS, FX)
    assert twice.events.to_arrow().equals(once.events.to_arrow())
    assert twice.channel_renamed == {} and twice.currency_converted == {}
    assert twice.currency_unknown == {"acme": 1}


def test_empty_batch() -> None:
    result = enrich(EventColumns.empty(), TENANTS, FX)
    assert len(result.events) == 0 and result.events.to_arrow().num_rows == 0
    assert result.channel_renamed == {} and result.currency_converted == {} and result.currency_unknown == {}


def _reference(events: EventColumns, tenants: dict[str, TenantConfig], fx: CurrencySettings) -> list[tuple]:
    """Plain Python, row by row."""
    rows = []
    for e in events.to_arrow().to_pylist():
        table = dict(DEFAULT_CHANNEL_ALIASES)
        if e["tenant_id"] in tenants:
            table.update({k.strip().lower(): v for k, v in tenants[e["tenant_id"]].channel_aliases.items()})
        source = e["source"] if e["source"] is None else table.get(e["source"].strip().lower(), e["source"])
        code = json.loads(e["metadata"]).get("currency") if e["metadata"] else None
        rate = fx.rates.get(code.strip().upper(), 1.0) if isinstance(code, str) else 1.0
        rows.append((source, e["cost"] * rate, e["revenue"] * rate))
    return rows


_SOURCES = st.sampled_from(["google", " FB", "Mail", "display", "pinterest", "meta", "Bing ", "x"])
_CURRENCIES = st.sampled_from([None, "EUR", "eur", "USD", "JPY", 5])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["acme", "globex"]), _SOURCES, _CURRENCIES,
                          st.floats(0, 1e6, allow_nan=False)), max_size=30))
def test_matches_a_row_by_row_reference(rows: list[tuple]) -> None:
    tenants = {"acme": TenantConfig(channel_aliases={"pinterest": "social", "MAIL": "crm"})}
    messages = [
        priced(i, tenant, cost=cost, revenue=cost / 3, **({} if code is None else {"currency": code}))
        | {"source": source}
        for i, (tenant, source, code, cost) in enumerate(rows)
    ]
    events = decode(*messages) if messages else EventColumns.empty()
    result = enrich(events, tenants, FX)
    got = list(zip(sources(result.events), result.events["cost"].tolist(), result.events["revenue"].tolist(),
                   strict=True))
    expected = _reference(events, tenants, FX)
    assert got == expected
    renamed = sum(1 for (source, _, _), sent in zip(expected, sources(events), strict=True) if source != sent)
    assert sum(result.channel_renamed.values()) == renamed
    unknown = sum(1 for _, _, code, _ in rows if code in ("JPY", 5))
    assert sum(result.currency_unknown.values()) == unknown


def test_currency_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().currency == CurrencySettings(base="USD", rates={})
    monkeypatch.setenv("MKT_CURRENCY__RATES", '{"EUR": 1.08, "GBP": 1.27}')
    monkeypatch.setenv("MKT_CURRENCY__BASE", "USD")
    assert load_settings().currency.rates == {"EUR": 1.08, "GBP": 1.27}


@pytest.mark.parametrize(("currency", "message"), [
    ({"base": "usd"}, "currency.base: 'usd' is not a currency code"),
    ({"rates": {"eur": 1.1}}, "currency.rates: 'eur' is not a currency code"),
    ({"rates": {"EURO": 1.1}}, "currency.rates: 'EURO' is not a currency code"),
    ({"rates": {"EUR": 0}}, "currency.rates['EUR'] = 0.0: a rate must be a finite number > 0"),
    ({"rates": {"JPY": -0.5}}, "currency.rates['JPY'] = -0.5: a rate must be a finite number > 0"),
    ({"rates": {"GBP": float("inf")}}, "currency.rates['GBP'] = inf"),
    ({"base": "EUR", "rates": {"EUR": 1.08}}, "currency.rates['EUR'] = 1.08: the base currency's rate must be 1"),
])
def test_invalid_currency_settings_name_the_code(currency: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(currency=currency)


def test_base_rate_of_one_is_allowed() -> None:
    assert CurrencySettings(base="EUR", rates={"EUR": 1.0, "USD": 0.93}).rates["USD"] == 0.93


def test_shared_columns_are_the_same_arrays() -> None:
    events = decode(touch(1, "fb"))
    result = enrich(events, TENANTS, NO_FX)
    unchanged = [name for name in events.data if name != "source"]
    assert all(result.events[name] is events[name] for name in unchanged)
    assert np.shares_memory(result.events["ts_ms"], events["ts_ms"])
