"""A raw store of one tenant with ≥ 20k persons and known channel lifts, shared by the training tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mkt_ray.attribution import EventJourneys, markov_attribution, read_event_journeys, rule_attribution
from mkt_ray.rawstore import read_raw
from mkt_ray.settings import TenantConfig
from training._journeys import Journeys, build_journeys
from training.sample_store import archive_workload


@dataclass(frozen=True)
class SampleStore:
    uri: str
    jsonl: Path  # the same messages as JSON lines, for the offline readers
    truth: dict[str, Any]
    tenant: str = "acme"


@pytest.fixture(scope="session")
def acme_store(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    # no invalid lines: the offline reader (tests' reference) has no outlier rule, the pipeline's decoder has
    folder = tmp_path_factory.mktemp("acme-store")
    truth = archive_workload(str(folder / "raw"), 110_000, ["acme"], 11, datetime.now(UTC), folder / "events.jsonl",
                             invalid_share=0.0)
    return SampleStore(str(folder / "raw"), folder / "events.jsonl", truth)


@pytest.fixture(scope="session")
def acme_journeys(acme_store: SampleStore) -> Journeys:
    """The training journeys of the store (built once for the tests that need them in this process)."""
    return build_journeys(read_raw(acme_store.uri, acme_store.tenant), TenantConfig())


@pytest.fixture(scope="session")
def acme_offline(acme_store: SampleStore) -> EventJourneys:
    """The offline reader's replay of the same messages: the independent reference."""
    return read_event_journeys(acme_store.jsonl, 30.0, acme_store.tenant, acme_store.truth["now_ms"])


def offline_credits(offline: EventJourneys, model: str) -> dict[str, dict[str, float]]:
    """A model's channel credits over the offline replay, as `mkt-ray attribute` computes them."""
    if model == "markov":
        return markov_attribution(offline.channel_paths()).credits
    return rule_attribution(offline.touches, model)
