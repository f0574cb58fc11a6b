"""One entry point over both inputs: a path file or an events JSONL file, every model asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mkt_ray.attribution._markov import markov_attribution
from mkt_ray.attribution._paths import read_path_file
from mkt_ray.attribution._touches import Touches, rule_attribution
from mkt_ray.errors import InputError

# kernels.attribution.RULE_MODELS plus markov, spelled out so that reading a path file needs no numba
# import (a test holds the two together).
RULE_MODEL_NAMES = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
MODELS = (*RULE_MODEL_NAMES, "markov")
_EVENT_SUFFIXES = (".jsonl", ".ndjson", ".json")

Credits = dict[str, dict[str, float]]  # channel -> {"conversions": x, "revenue": y}


@dataclass(frozen=True)
class AttributionSettings:
    """The model parameters; defaults are the contract's (lookback 30 d, half-life 7 d, 0.4 / 0.4)."""

    order: int = 1
    lookback_days: float = 30.0
    half_life_days: float = 7.0
    first_share: float = 0.4
    last_share: float = 0.4
    tenant: str | None = None  # events input: only this tenant's events
    now_ms: int | None = None  # events input: processing time for the time rules (None: the wall clock)


@dataclass
class AttributionReport:
    kind: str  # "paths" or "events"
    models: dict[str, Credits]
    removal_effects: dict[str, float] | None = None  # markov only
    lines: int = 0  # events input: non-blank lines read
    invalid: dict[str, int] = field(default_factory=dict)  # events input: reason code -> lines skipped
    skipped: dict[str, int] = field(default_factory=dict)  # events input: duplicates, no_consent


def input_kind(path: Path) -> str:
    """`events` for a .jsonl/.ndjson/.json file or one whose first non-blank line starts with `{`, else `paths`."""
    if Path(path).suffix.lower() in _EVENT_SUFFIXES:
        return "events"
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    return "events" if line.lstrip().startswith(b"{") else "paths"
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return "paths"


def check_models(models: list[str] | None, kind: str) -> list[str]:
    """The models to run: the given ones, validated, or every model that applies to the input kind."""
    if models is None:
        return [m for m in MODELS if kind == "events" or m != "time_decay"]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise InputError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    if "time_decay" in models and kind == "paths":
        raise InputError("time_decay needs touchpoint timestamps, which a path file does not have; "
                         "give an events JSONL file or leave time_decay out of --models")
    return list(dict.fromkeys(models))


def attribute_file(path: Path, models: list[str] | None = None,
                   settings: AttributionSettings | None = None) -> AttributionReport:
    """Run the models over a path file or an events file (detected by `input_kind`)."""
    settings = settings or AttributionSettings()
    _check_settings(settings)
    kind = input_kind(path)
    models = check_models(models, kind)
    if kind == "paths":
        if settings.tenant is not None:
            raise InputError("--tenant applies to events input only; a path file has no tenants")
        paths = read_path_file(path)
        touches, report = Touches.from_paths(paths), AttributionReport(kind, {})
    else:
        from mkt_ray.attribution._events import read_event_journeys  # the contract: ~0.2 s of imports

        journeys = read_event_journeys(path, settings.lookback_days, settings.tenant, settings.now_ms)
        paths, touches = journeys.channel_paths(), journeys.touches
        report = AttributionReport(kind, {}, lines=journeys.lines, invalid=journeys.invalid,
                                   skipped={"duplicates": journeys.duplicates, "no_consent": journeys.no_consent})
    for model in models:
        if model == "markov":
            result = markov_attribution(paths, settings.order)
            report.models[model], report.removal_effects = result.credits, result.removal_effects
        else:
            report.models[model] = rule_attribution(touches, model, settings.half_life_days,
                                                    settings.first_share, settings.last_share)
    return report


def _check_settings(settings: AttributionSettings) -> None:
    if settings.order < 1:
        raise InputError(f"--order must be at least 1, got {settings.order}")
    if not settings.lookback_days > 0 or not settings.half_life_days > 0:
        raise InputError("--lookback-days and --half-life-days must be greater than 0")
    first, last = settings.first_share, settings.last_share
    if not (first >= 0 and last >= 0 and first + last <= 1):
        raise InputError(f"position_based shares must be >= 0 with first + last <= 1, got {first} / {last}")
