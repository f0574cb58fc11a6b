"""Markov-chain attribution, exact: absorbing-chain algebra instead of ChannelAttribution's simulation.

The chain. Transient states are `(start)` and the path states; `(conversion)` and `(null)` absorb.
Each path of `conversions` converting and `nulls` non-converting journeys adds `conversions + nulls` to
every transition along `(start) → s1 → … → sn`, then `conversions` to `sn → (conversion)` and `nulls`
to `sn → (null)`; rows are normalised to probabilities. With Q the transient-to-transient block and r
the column into `(conversion)`, the conversion probability from every state is x = (I − Q)⁻¹ r (one
linear solve; the fundamental matrix is never formed) and P(conversion) = x[start].

States of order k (ChannelAttribution's convention). A path c1 … cn becomes the windows of k
consecutive channels, (c1…ck), (c2…ck+1), …, (cn−k+1…cn); a path shorter than k is one state, the
whole path (c1…cn). Consecutive identical states are merged into one (so at order 1, `A > A > B` is
`A > B`); a self-loop never changes an absorption probability, so this is a convention, not a choice.

Removal effect. Removing channel c sends every state that contains c straight to `(null)`:
RE(c) = 1 − P(conversion | c removed) / P(conversion). Channel credit = total conversions (value) ×
RE(c) / Σ RE: the removal-effect shares of ChannelAttribution and the literature (Anderl et al. 2016).

Cost: one solve for the chain and one per channel on the states without it. Up to `DENSE_MAX_STATES`
states the solves are dense LAPACK (small chains batched into one call); above, a scipy.sparse fixed-point
iteration to 1e-15 (see `_sparse_probabilities` for why not sparse LU, which stays as its fallback).
Measured on 2 cores, 20k random paths: 14 channels at k = 3 (2,954 states) take 2.2 s dense and
0.21 s iterated, agreeing to 3e-15; 20 channels at k = 3 (8,398 states) 60 s dense, 0.38 s iterated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mkt_ray.attribution._paths import ChannelPath
from mkt_ray.errors import InputError

DENSE_MAX_STATES = 3000
_BATCH_MAX_CELLS = 4_000_000  # (channels + 1) × states² floats solved in one batched call
_MAX_ITERATIONS = 20_000  # sparse fixed point; beyond, exact LU


@dataclass(frozen=True)
class MarkovResult:
    """Per-channel credits and removal effects of one fitted chain (channels in sorted order)."""

    credits: dict[str, dict[str, float]]  # channel -> {"conversions": x, "revenue": y}
    removal_effects: dict[str, float]
    conversion_probability: float
    order: int
    states: int  # transient path states, `(start)` not counted


def markov_attribution(paths: Iterable[ChannelPath], order: int = 1) -> MarkovResult:
    """Fit the order-k chain on the paths and split total conversions and value by removal effects."""
    if order < 1:
        raise InputError(f"the Markov order must be at least 1, got {order}")
    weighted, total_conversions, total_value = _aggregate(paths, order)
    channels = sorted({channel for states in weighted for state in states for channel in state})
    state_ids = _number_states(weighted)
    removed = _membership(state_ids, channels)
    probabilities = _conversion_probabilities(*_transitions(weighted, state_ids), removed)
    base, without = float(probabilities[0]), probabilities[1:]
    effects = 1.0 - without / base if base > 0 else np.zeros(len(channels))
    effects = np.clip(effects, 0.0, 1.0)  # exact algebra keeps them in [0, 1]; clip rounding only
    shares = effects / effects.sum() if effects.sum() > 0 else np.zeros(len(channels))
    credits = {
        channel: {"conversions": float(total_conversions * share), "revenue": float(total_value * share)}
        for channel, share in zip(channels, shares.tolist(), strict=True)
    }
    removal_effects = dict(zip(channels, effects.tolist(), strict=True))
    return MarkovResult(credits, removal_effects, base, order, len(state_ids))


def path_states(channels: tuple[str, ...], order: int) -> tuple[tuple[str, ...], ...]:
    """The order-k states of one path (see the module docstring), consecutive repeats merged."""
    if len(channels) <= order:
        windows = [channels]
    else:
        windows = [channels[i : i + order] for i in range(len(channels) - order + 1)]
    states = [windows[0]]
    for window in windows[1:]:
        if window != states[-1]:
            states.append(window)
    return tuple(states)


def _aggregate(paths: Iterable[ChannelPath], order: int) -> tuple[dict, float, float]:
    """{state sequence: [conversions, nulls]} over paths with journeys, and the totals of every path."""
    weighted: dict[tuple[tuple[str, ...], ...], list[float]] = {}
    total_conversions = total_value = 0.0
    for path in paths:
        total_conversions += path.conversions
        total_value += path.value
        if path.conversions + path.nulls <= 0 or not path.channels:
            continue
        counts = weighted.setdefault(path_states(tuple(path.channels), order), [0.0, 0.0])
        counts[0] += path.conversions
        counts[1] += path.nulls
    return weighted, total_conversions, total_value


def _number_states(weighted: dict) -> dict[tuple[str, ...], int]:
    """State -> row of the chain; row 0 is `(start)`. Sorted, so the chain does not depend on path order."""
    states = sorted({state for sequence in weighted for state in sequence})
    return {state: row for row, state in enumerate(states, start=1)}


def _transitions(weighted: dict, state_ids: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Q as coordinates (rows, columns, probabilities) and r (transient → conversion), rows normalised."""
    n = len(state_ids) + 1
    sources: list[int] = []
    targets: list[int] = []
    weights: list[float] = []
    last_rows: list[int] = []
    for sequence, (conversions, nulls) in weighted.items():
        rows = [0, *(state_ids[state] for state in sequence)]
        sources += rows[:-1]
        targets += rows[1:]
        weights += [conversions + nulls] * (len(rows) - 1)
        last_rows.append(rows[-1])
    keys, inverse = np.unique(np.asarray(sources, np.int64) * n + np.asarray(targets, np.int64), return_inverse=True)
    counts = np.bincount(inverse, weights=np.asarray(weights, np.float64), minlength=len(keys))
    ends = np.asarray(list(weighted.values()), np.float64).reshape(-1, 2)
    last = np.asarray(last_rows, np.int64)
    to_conversion = np.bincount(last, weights=ends[:, 0], minlength=n)
    totals = np.bincount(keys // n, weights=counts, minlength=n) + to_conversion
    totals += np.bincount(last, weights=ends[:, 1], minlength=n)
    totals[totals == 0] = 1.0  # only `(start)` of an empty chain; its row stays zero
    return keys // n, keys % n, counts / totals[keys // n], to_conversion / totals


def _membership(state_ids: dict, channels: list[str]) -> np.ndarray:
    """removed[c, s]: state s contains channel c (row 0, `(start)`, contains none)."""
    column = {channel: i for i, channel in enumerate(channels)}
    removed = np.zeros((len(channels), len(state_ids) + 1), dtype=bool)
    for state, row in state_ids.items():
        removed[[column[channel] for channel in set(state)], row] = True
    return removed


def _conversion_probabilities(rows: np.ndarray, columns: np.ndarray, probabilities: np.ndarray, r: np.ndarray,
                              removed: np.ndarray) -> np.ndarray:
    """P(conversion from start) for the full chain, then with each channel's states sent to null."""
    n = len(r)
    keeps = np.vstack([np.ones((1, n), dtype=bool), ~removed])
    if n - 1 > DENSE_MAX_STATES:
        return _sparse_probabilities(rows, columns, probabilities, r, keeps)
    a = np.eye(n)
    a[rows, columns] -= probabilities
    if len(keeps) * n * n <= _BATCH_MAX_CELLS:
        # A removed state's row becomes the identity row with right-hand side 0: x = 0 there.
        batch = np.where(keeps[:, :, None], a[None, :, :], np.eye(n)[None, :, :])
        rhs = np.where(keeps, r[None, :], 0.0)
        return np.linalg.solve(batch, rhs[:, :, None])[:, 0, 0]
    out = np.empty(len(keeps))
    for i, keep in enumerate(keeps):
        kept = np.flatnonzero(keep)
        out[i] = np.linalg.solve(a[np.ix_(kept, kept)], r[kept])[0]  # row 0, `(start)`, is always kept
    return out


def _sparse_probabilities(rows: np.ndarray, columns: np.ndarray, probabilities: np.ndarray, r: np.ndarray,
                          keeps: np.ndarray) -> np.ndarray:
    """The same systems, every channel at once, by the fixed point x = keep · (Q x + r); LU if that stalls.

    Order-k chains are expander-like (de Bruijn) graphs on which sparse LU fills in badly: 8,398
    states (20 channels, k = 3, 20k paths) gave 8-13M LU entries, 2-4 s per factorisation, 42 s for
    the 21 solves, where this iteration (the Neumann series of the fundamental matrix, deterministic)
    needed 119 steps, 4 ms. It stops when the error bound Δ·ρ/(1−ρ) (Δ the last change, ρ its
    contraction rate) is below 1e-15; a chain that contracts too slowly falls back to exact LU.
    """
    try:
        from scipy import sparse
        from scipy.sparse.linalg import spsolve
    except ImportError:
        raise InputError(
            f"the Markov chain has {len(r) - 1} states, more than the {DENSE_MAX_STATES} solved densely; "
            "run `pip install scipy` for the sparse solver, or lower --order"
        ) from None
    n = len(r)
    q = sparse.csr_matrix((probabilities, (rows, columns)), shape=(n, n))
    keep = keeps.T.astype(np.float64)  # states × (chain, then one column per removed channel)
    x = r[:, None] * keep
    last_change = 0.0
    for _ in range(_MAX_ITERATIONS):
        step = (q @ x + r[:, None]) * keep
        change = float(np.abs(step - x).max())
        x = step
        rate = change / last_change if last_change > 0 else np.inf  # inf on the first step: no rate yet
        if change == 0 or (rate < 1 and change * rate / (1 - rate) < 1e-15):
            return x[0]
        last_change = change
    a = (sparse.identity(n, format="csr") - q).tocsr()
    out = np.empty(len(keeps))
    for i, kept_mask in enumerate(keeps):
        kept = np.flatnonzero(kept_mask)
        out[i] = spsolve(a[kept][:, kept].tocsc(), r[kept])[0]
    return out
