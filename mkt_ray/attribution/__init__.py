"""Offline multi-touch attribution: rule-based models and exact Markov-chain removal effects.

Inputs are aggregated path files (`path;total_conversions;total_conversion_value;total_null`) or event
contract v1 JSONL files replayed into per-person journeys; `mkt-ray attribute` is the command line.
"""

from mkt_ray.attribution._attribute import (
    MODELS,
    AttributionReport,
    AttributionSettings,
    attribute_file,
    check_models,
    input_kind,
)
from mkt_ray.attribution._identity import IdentityGraph
from mkt_ray.attribution._markov import MarkovResult, markov_attribution, path_states
from mkt_ray.attribution._paths import ChannelPath, parse_path_lines, read_path_file, split_path
from mkt_ray.attribution._touches import DIRECT, Touches, rule_attribution

__all__ = [  # EventJourneys, read_event_journeys and the online engine are loaded on first use (__getattr__ below)
    "CREDIT_SCHEMA",
    "DIRECT",
    "MODELS",
    "ONLINE_MODELS",
    "AttributionReport",
    "AttributionSettings",
    "ChannelPath",
    "EventJourneys",
    "Forgotten",
    "IdentityGraph",
    "LINKED_CREDIT_SCHEMA",
    "MarkovResult",
    "TenantAttribution",
    "Touches",
    "attribute_file",
    "check_models",
    "input_kind",
    "markov_attribution",
    "parse_path_lines",
    "path_states",
    "read_event_journeys",
    "read_path_file",
    "rule_attribution",
    "split_path",
    "warm_up",
]


def __getattr__(name: str):
    # The events reader pulls in the contract (msgspec, pyarrow: ~0.2 s); path files do not need it.
    if name in ("EventJourneys", "read_event_journeys"):
        from mkt_ray.attribution import _events

        return getattr(_events, name)
    if name in ("CREDIT_SCHEMA", "LINKED_CREDIT_SCHEMA", "ONLINE_MODELS", "Forgotten", "TenantAttribution", "warm_up"):
        from mkt_ray.attribution import _online  # the contract and the numba kernels: imported on first use

        return getattr(_online, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
