"""Shapley values of a conversion model over the channels of each converting journey.

The players of a journey are its distinct channels; the value of a coalition T is the model's conversion
probability for the journey with only T's touchpoints (in their order, features recomputed), so v(∅)
is the probability of an empty journey and φ sums to p(journey) − p(∅) (efficiency).

Why exact over channel subsets, not TreeSHAP: TreeSHAP attributes to *features* (presence, counts,
first/last channel, length, ...), and a channel is a group of them whose joint removal is the question
asked ("what if this channel had not touched the person"); TreeSHAP's path-dependent expectations do not
answer that counterfactual, and summing feature attributions per channel has no clear meaning for the
shared ones (length, span). Exact enumeration does, and is cheap here: journeys have few distinct
channels (at most 7 in the generated workloads, 2.3 on average), so 2^k model rows per conversion,
predicted in one vectorised call per k. Above `EXACT_MAX_CHANNELS` the values are estimated by
`SAMPLED_PERMUTATIONS` seeded random permutations (unbiased; exact for additive models).
"""

from __future__ import annotations

from collections.abc import Callable
from math import factorial

import numpy as np

from training._features import journey_features

EXACT_MAX_CHANNELS = 10
SAMPLED_PERMUTATIONS = 64
Predict = Callable[[np.ndarray], np.ndarray]


def shapley_by_channel(codes: np.ndarray, ts_ms: np.ndarray, starts: np.ndarray, n_channels: int,
                       predict: Predict, seed: int = 0) -> np.ndarray:
    """float64[J, C]: φ of each channel in each journey (0 where the channel is absent)."""
    n = len(starts) - 1
    phi = np.zeros((n, n_channels))
    lengths = np.diff(starts)
    journey_of = np.repeat(np.arange(n), lengths)
    present = np.zeros((n, n_channels), bool)
    present[journey_of, codes] = True
    k_of = present.sum(axis=1)
    players = [np.flatnonzero(row) for row in present] if n else []
    local = np.zeros(len(codes), np.int64)  # a touchpoint's channel as its journey's player index
    rank = np.cumsum(present, axis=1) - 1
    local[:] = rank[journey_of, codes]
    rng = np.random.default_rng(seed)
    for k in np.unique(k_of[k_of > 0]).tolist():
        group = np.flatnonzero(k_of == k)
        if k <= EXACT_MAX_CHANNELS:
            values = _exact(group, k, codes, ts_ms, starts, local, n_channels, predict)
        else:
            values = _sampled(group, k, codes, ts_ms, starts, local, n_channels, predict, rng)
        cols = np.stack([players[j] for j in group.tolist()])
        phi[group[:, None], cols] = values
    return phi


def _exact(group: np.ndarray, k: int, codes: np.ndarray, ts_ms: np.ndarray, starts: np.ndarray,
           local: np.ndarray, n_channels: int, predict: Predict) -> np.ndarray:
    masks = np.arange(1 << k)
    members = (masks[:, None] >> np.arange(k)) & 1 == 1  # [2^k, k]
    rows = np.repeat(group, len(masks))
    coalitions = np.tile(members, (len(group), 1))
    v = _coalition_values(rows, coalitions, codes, ts_ms, starts, local, n_channels, predict)
    return v.reshape(len(group), len(masks)) @ _exact_weights(k)


def _exact_weights(k: int) -> np.ndarray:
    """M[mask, i] with φ = v @ M: +w(|S|) on S ∪ {i}, −w(|S|) on S, w(s) = s!(k−s−1)!/k!."""
    sizes = np.array([bin(m).count("1") for m in range(1 << k)])
    weights = np.array([factorial(s) * factorial(k - s - 1) / factorial(k) for s in range(k)] + [0.0])
    member = (np.arange(1 << k)[:, None] >> np.arange(k)) & 1 == 1
    return np.where(member, weights[np.maximum(sizes - 1, 0)][:, None], -weights[sizes][:, None])


def _sampled(group: np.ndarray, k: int, codes: np.ndarray, ts_ms: np.ndarray, starts: np.ndarray,
             local: np.ndarray, n_channels: int, predict: Predict, rng: np.random.Generator) -> np.ndarray:
    perms = np.argsort(rng.random((len(group), SAMPLED_PERMUTATIONS, k)), axis=2)
    steps = np.arange(k + 1)
    position = np.argsort(perms, axis=2)  # position of player i in each permutation
    coalitions = position[:, :, None, :] < steps[None, None, :, None]  # [g, P, k+1, k]: first `step` players
    rows = np.repeat(group, SAMPLED_PERMUTATIONS * (k + 1))
    v = _coalition_values(rows, coalitions.reshape(-1, k), codes, ts_ms, starts, local, n_channels, predict)
    v = v.reshape(len(group), SAMPLED_PERMUTATIONS, k + 1)
    gains = np.diff(v, axis=2)  # gain of the player added at each step
    phi = np.take_along_axis(gains, position, axis=2)  # back to player order
    return phi.mean(axis=1)


def _coalition_values(rows: np.ndarray, coalitions: np.ndarray, codes: np.ndarray, ts_ms: np.ndarray,
                      starts: np.ndarray, local: np.ndarray, n_channels: int, predict: Predict) -> np.ndarray:
    """The model on each row's journey `rows[r]` reduced to the players in `coalitions[r]`."""
    lengths = np.diff(starts)[rows]
    row_of = np.repeat(np.arange(len(rows)), lengths)
    first = np.repeat(starts[rows] - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    touch = first + np.arange(len(row_of))
    keep = coalitions[row_of, local[touch]]
    kept_rows = row_of[keep]
    sub_starts = np.concatenate(([0], np.cumsum(np.bincount(kept_rows, minlength=len(rows)))))
    features = journey_features(codes[touch[keep]], ts_ms[touch[keep]], sub_starts, n_channels)
    return np.asarray(predict(features), np.float64)


def credit_weights(phi: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per journey, the channels' shares of its conversion: positive φ normalised to 1 over the channels
    present; equal shares where no channel has a positive φ (the model sees no lift on the path)."""
    positive = np.where(present, np.maximum(phi, 0.0), 0.0)
    total = positive.sum(axis=1, keepdims=True)
    equal = present / np.maximum(present.sum(axis=1, keepdims=True), 1)
    return np.where(total > 0, positive / np.where(total > 0, total, 1.0), equal)
