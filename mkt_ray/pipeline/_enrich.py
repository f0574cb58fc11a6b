"""Enrichment of valid events before KPIs and attribution: canonical channels and one currency.

Channels. `source` is looked up, trimmed and lower-cased, in the tenant's alias table: the built-in
`DEFAULT_CHANNEL_ALIASES` overridden and extended by the tenant's `channel_aliases` (whose keys are
matched the same way; values are used as written). A hit is replaced by its canonical name; a miss
passes through exactly as sent (not lower-cased), so no channel is renamed unless a table says so.
The defaults list every canonical name as an alias of itself, so `" Google_Ads "` and `"DISPLAY"`
become `google_ads` and `display` while the generator's names (`workload/_model.py`) stay as they are.
One lookup, no chains: a tenant alias should map onto a name that is not itself an alias.

Currency. Only with a rate table (`CurrencySettings.rates` not empty). An event whose metadata has a
top-level string `currency` (trimmed, upper-cased) other than the base and with a rate gets `cost` and
`revenue` multiplied by the rate, and its metadata rewritten so it tells the truth about the amounts:
`currency` = the base, plus `original_currency` (as sent) and `fx_rate`. That makes `enrich`
idempotent: a second pass sees the base currency and changes nothing. A `currency` with no rate (or not
a string; `null` counts as absent) leaves the event as it is and is counted in `currency_unknown`.

Input arrays are never written; columns that do not change are shared with the output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec
import numpy as np

from mkt_ray.contract import EventColumns
from mkt_ray.settings import CurrencySettings, TenantConfig

_CANONICAL_ALIASES: dict[str, tuple[str, ...]] = {
    "google_ads": ("adwords", "google", "googleads"),
    "meta": ("facebook", "fb", "instagram", "meta_ads"),
    "email": ("e-mail", "mail", "newsletter"),
    "tiktok": ("tiktok_ads",),
    "linkedin": ("linkedin_ads",),
    "organic_search": ("seo", "organic"),
    "microsoft_ads": ("bing",),
    "display": (),
}
DEFAULT_CHANNEL_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: canonical for canonical, aliases in _CANONICAL_ALIASES.items() for alias in (canonical, *aliases)}
)


class _CurrencyOnly(msgspec.Struct):
    currency: Any = None  # other metadata keys are skipped by the decoder, not built


_DECODE_CURRENCY = msgspec.json.Decoder(_CurrencyOnly).decode
_DECODE_OBJECT = msgspec.json.Decoder(dict).decode
_ENCODE = msgspec.json.Encoder().encode
_CURRENCY_KEY = '"currency"'


@dataclass(frozen=True, slots=True)
class EnrichResult:
    """Enriched events and, per tenant (tenants with a zero count left out), what enrichment did."""

    events: EventColumns
    channel_renamed: dict[str, int] = field(default_factory=dict)  # events whose `source` changed
    currency_converted: dict[str, int] = field(default_factory=dict)  # amounts converted to the base
    currency_unknown: dict[str, int] = field(default_factory=dict)  # a currency with no rate: left as sent


def _alias_key(source: str) -> str:
    return source.strip().lower()


def enrich(
    events: EventColumns, tenants: Mapping[str, TenantConfig], currency: CurrencySettings
) -> EnrichResult:
    """`events` with canonical channels and amounts in the base currency (see the module doc)."""
    data = dict(events.data)
    source, renamed = _canonical_sources(events["tenant_id"], events["source"], tenants)
    if source is not None:
        data["source"] = source
    converted: dict[str, int] = {}
    unknown: dict[str, int] = {}
    if currency.rates and len(events):
        converted, unknown = _convert_currency(data, currency)
    return EnrichResult(EventColumns(data), renamed, converted, unknown)


class _Codes(dict):
    """source -> dense code, filled on first sight: one C-level pass over a column codes it."""

    def __missing__(self, source: str | None) -> int:
        code = self[source] = len(self)
        return code


def _canonical_sources(
    tenant_ids: np.ndarray, sources: np.ndarray, tenants: Mapping[str, TenantConfig]
) -> tuple[np.ndarray | None, dict[str, int]]:
    """The mapped `source` column (None when nothing changes) and the renamed count per tenant.

    Maps distinct values, not rows: each distinct source through the defaults, then, for the rows
    whose source a tenant's own aliases name, each distinct (tenant, source) pair. Rows are touched by
    C loops only (`map` into a code dict, numpy takes). Measured on 10k-event batches of the seeded
    generator (3 tenants, 30% of sources aliased, cold from decoding, one core): 7.1M events/s, against
    5.0M/s for a row-by-row lookup loop and 5.2M/s for a Counter over (tenant, source) tuples.
    """
    codes_of = _Codes()
    codes = np.fromiter(map(codes_of.__getitem__, sources.tolist()), np.int64, len(sources))
    distinct = list(codes_of)
    canonical = [None if s is None else DEFAULT_CHANNEL_ALIASES.get(_alias_key(s), s) for s in distinct]
    own = _own_tables(tenants)
    own_keys = {key for table in own.values() for key in table}
    overridden = [c for c, s in enumerate(distinct) if s is not None and _alias_key(s) in own_keys]
    changed = np.fromiter((c != s for c, s in zip(canonical, distinct, strict=True)), bool, len(distinct))
    if not overridden and not changed.any():
        return None, {}
    out = _objects(canonical)[codes]
    renamed = changed[codes]
    if overridden:
        rows = np.flatnonzero(np.isin(codes, overridden))
        pairs = list(zip(tenant_ids[rows].tolist(), codes[rows].tolist(), strict=True))
        mapped = {(t, c): _tenant_canonical(own.get(t), distinct[c], canonical[c]) for t, c in set(pairs)}
        out[rows] = _objects(list(map(mapped.__getitem__, pairs)))
        renamed[rows] = out[rows] != sources[rows]
    if not renamed.any():
        return None, {}
    return out, dict(Counter(tenant_ids[renamed].tolist()))


def _tenant_canonical(own: dict[str, str] | None, source: str, default: str) -> str:
    return default if own is None else own.get(_alias_key(source), default)


def _own_tables(tenants: Mapping[str, TenantConfig]) -> dict[str, dict[str, str]]:
    """The normalised `channel_aliases` of the tenants that have any."""
    return {
        tenant_id: {_alias_key(alias): canonical for alias, canonical in config.channel_aliases.items()}
        for tenant_id, config in tenants.items()
        if config.channel_aliases
    }


def _objects(values: list) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=len(values))


def _convert_currency(data: dict[str, np.ndarray], currency: CurrencySettings) -> tuple[dict[str, int], dict[str, int]]:
    """Convert the amounts of rows with a rated foreign currency in `data` (new arrays); count per tenant."""
    metadata = data["metadata"]
    rows = [
        i for i, text in enumerate(metadata.tolist()) if text is not None and _CURRENCY_KEY in text
    ]  # a substring test first: only rows that may name a currency are decoded
    converted: list[int] = []
    unknown: list[int] = []
    rates: list[float] = []
    for i in rows:
        code = _DECODE_CURRENCY(metadata[i]).currency
        if code is None:
            continue
        normal = code.strip().upper() if isinstance(code, str) else None
        if normal == currency.base:
            continue
        rate = currency.rates.get(normal) if normal is not None else None
        if rate is None:
            unknown.append(i)
        else:
            converted.append(i)
            rates.append(rate)
    if converted:
        _apply_rates(data, np.array(converted, np.int64), np.array(rates, np.float64), currency.base)
    tenant_ids = data["tenant_id"]
    return _count_by_tenant(tenant_ids, converted), _count_by_tenant(tenant_ids, unknown)


def _apply_rates(data: dict[str, np.ndarray], rows: np.ndarray, rates: np.ndarray, base: str) -> None:
    for name in ("cost", "revenue"):
        amounts = data[name].copy()
        amounts[rows] *= rates
        data[name] = amounts
    metadata = data["metadata"].copy()
    for i, rate in zip(rows.tolist(), rates.tolist(), strict=True):
        doc = _DECODE_OBJECT(metadata[i])
        original = doc["currency"]
        doc["currency"] = base
        doc["original_currency"] = original
        doc["fx_rate"] = rate
        metadata[i] = _ENCODE(doc).decode()
    data["metadata"] = metadata


def _count_by_tenant(tenant_ids: np.ndarray, rows: list[int]) -> dict[str, int]:
    return dict(Counter(tenant_ids[rows].tolist())) if rows else {}
