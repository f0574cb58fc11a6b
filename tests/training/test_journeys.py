"""Journeys, features and Shapley values against independent plain-Python references (no Ray)."""

from __future__ import annotations

import itertools
from collections import Counter
from math import factorial

import numpy as np

from training._features import journey_features
from training._journeys import Journeys
from training._shapley import shapley_by_channel


def test_journeys_equal_the_offline_replay_of_the_same_messages(acme_store, acme_journeys, acme_offline) -> None:
    journeys, reference = acme_journeys, acme_offline
    t = reference.touches
    ref_converting = Counter(
        (tuple(ch for ch in (t.channels[c] for c in t.channel_codes[t.starts[i]:t.starts[i + 1]]) if ch != "(direct)"),
         int(t.conv_ts_ms[i]), float(t.conversions[i]), round(float(t.revenue[i]), 6))
        for i in range(len(t.starts) - 1))
    paths = [tuple(journeys.channels[journeys.starts[j]:journeys.starts[j + 1]]) for j in range(len(journeys))]
    converting = Counter((paths[j], int(journeys.end_ms[j]), float(journeys.conversions[j]),
                          round(float(journeys.revenue[j]), 6)) for j in np.flatnonzero(journeys.converted))
    assert acme_store.truth["journeys"]["acme"]["completed"] >= 20_000
    assert sum(converting.values()) > 2000
    assert converting == ref_converting
    assert Counter(paths[j] for j in np.flatnonzero(~journeys.converted)) == Counter(reference.null_paths)
    again = Journeys.from_arrow(journeys.to_arrow())  # the Ray Data hop keeps everything
    assert np.array_equal(again.starts, journeys.starts) and list(again.channels) == list(journeys.channels)


def _reference_features(path: list[tuple[int, int]], n_channels: int) -> list[float]:
    counts = [sum(1 for c, _ in path if c == k) for k in range(n_channels)]
    if not path:
        return [0.0] * (2 * n_channels) + [0, n_channels, n_channels, 0.0, 0.0]
    gap = (path[-1][1] - path[-2][1]) / 3.6e6 if len(path) > 1 else 0.0
    return ([float(c > 0) for c in counts] + counts
            + [len(path), path[0][0], path[-1][0], (path[-1][1] - path[0][1]) / 3.6e6, gap])


def test_features_equal_a_plain_python_reference() -> None:
    rng = np.random.default_rng(3)
    paths = [[(int(rng.integers(4)), int(t)) for t in sorted(rng.integers(0, 10**8, int(rng.integers(0, 6))))]
             for _ in range(200)]
    starts = np.concatenate(([0], np.cumsum([len(p) for p in paths])))
    codes = np.array([c for p in paths for c, _ in p], np.int64)
    ts = np.array([t for p in paths for _, t in p], np.int64)
    got = journey_features(codes, ts, starts, 4)
    want = np.array([_reference_features(p, 4) for p in paths], np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def _model(x: np.ndarray) -> np.ndarray:
    """A non-additive 'model' of the features: interactions, counts and the last channel matter."""
    has, n = x[:, :4], x[:, 4:8]
    return 0.1 + 0.3 * has[:, 0] * has[:, 1] + 0.05 * n[:, 2] + 0.02 * (x[:, 10] == 3) + 0.01 * x[:, 8]


def _reference_shapley(path: list[tuple[int, int]]) -> dict[int, float]:
    """Shapley over the distinct channels by the permutation formula, sub-journeys rebuilt by hand."""
    players = sorted({c for c, _ in path})

    def value(keep: set[int]) -> float:
        sub = [(c, t) for c, t in path if c in keep]
        return float(_model(np.array([_reference_features(sub, 4)], np.float32))[0])

    phi = dict.fromkeys(players, 0.0)
    for order in itertools.permutations(players):
        for i, player in enumerate(order):
            phi[player] += value(set(order[:i + 1])) - value(set(order[:i]))
    return {p: v / factorial(len(players)) for p, v in phi.items()}


def test_exact_shapley_equals_the_permutation_formula() -> None:
    rng = np.random.default_rng(5)
    paths = [[(int(rng.integers(4)), int(t)) for t in sorted(rng.integers(0, 10**7, int(rng.integers(1, 7))))]
             for _ in range(60)]
    starts = np.concatenate(([0], np.cumsum([len(p) for p in paths])))
    codes = np.array([c for p in paths for c, _ in p], np.int64)
    ts = np.array([t for p in paths for _, t in p], np.int64)
    phi = shapley_by_channel(codes, ts, starts, 4, _model)
    for j, path in enumerate(paths):
        want = np.zeros(4)
        for channel, v in _reference_shapley(path).items():
            want[channel] = v
        np.testing.assert_allclose(phi[j], want, atol=1e-6)


def test_sampled_shapley_is_exact_for_an_additive_model(monkeypatch) -> None:
    from training import _shapley

    monkeypatch.setattr(_shapley, "EXACT_MAX_CHANNELS", 1)  # every journey with 2+ channels is sampled
    weights = np.array([0.3, 0.1, 0.5, 0.2], np.float32)
    paths = [[(0, 1), (1, 2), (2, 3)], [(3, 5), (1, 6), (3, 7), (0, 8)], [(2, 1)]]
    starts = np.concatenate(([0], np.cumsum([len(p) for p in paths])))
    codes = np.array([c for p in paths for c, _ in p], np.int64)
    ts = np.array([t for p in paths for _, t in p], np.int64)
    phi = shapley_by_channel(codes, ts, starts, 4, lambda x: x[:, :4] @ weights)
    want = np.array([[0.3, 0.1, 0.5, 0.0], [0.3, 0.1, 0.0, 0.2], [0.0, 0.0, 0.5, 0.0]])
    np.testing.assert_allclose(phi, want, atol=1e-6)
