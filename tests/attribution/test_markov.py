"""Exact Markov attribution against closed forms worked by hand and a brute-force chain built here."""

from __future__ import annotations

import random
import sys
from fractions import Fraction as F

import numpy as np
import pytest

from mkt_ray.attribution import ChannelPath, _markov, markov_attribution, path_states
from mkt_ray.errors import InputError


def _paths(*rows):
    return [ChannelPath(tuple(text.split(" > ")), conv, value, nulls) for text, conv, value, nulls in rows]


def _assert_close(result, credits, effects, probability, tol=1e-12):
    assert result.conversion_probability == pytest.approx(float(probability), abs=tol)
    assert set(result.credits) == set(credits) == set(result.removal_effects)
    for channel, (conversions, revenue) in credits.items():
        assert result.removal_effects[channel] == pytest.approx(float(effects[channel]), abs=tol)
        assert result.credits[channel]["conversions"] == pytest.approx(float(conversions), abs=tol)
        assert result.credits[channel]["revenue"] == pytest.approx(float(revenue), abs=tol)


def test_first_order_matches_the_closed_form_worked_by_hand() -> None:
    paths = _paths(("A > B", 2, 20.0, 1), ("A", 0, 0.0, 2), ("B > C", 1, 5.0, 1), ("C", 1, 10.0, 0))
    # Transition counts (each path adds conv + null journeys to each step, conv/null to its last state):
    #   start: A 3+2 = 5, B 2, C 1                      (of 8)
    #   A: B 3, null 2                                   (of 5)
    #   B: conv 2, null 1, C 2                           (of 5)
    #   C: conv 1 + 1 = 2, null 1                        (of 3)
    # Conversion probabilities x = (I - Q)^-1 r:
    #   x_C = 2/3;  x_B = 2/5 + 2/5 x_C = 2/3;  x_A = 3/5 x_B = 2/5
    #   P = 5/8 x_A + 2/8 x_B + 1/8 x_C = 1/4 + 1/6 + 1/12 = 1/2
    # Removing a channel sends its state to null:
    #   without A: P = 2/8 * 2/3 + 1/8 * 2/3 = 1/4               -> RE_A = 1 - (1/4)/(1/2) = 1/2
    #   without B: x_A = x_B = 0, P = 1/8 * 2/3 = 1/12           -> RE_B = 1 - 1/6 = 5/6
    #   without C: x_B = 2/5, x_A = 6/25, P = 3/20 + 1/10 = 1/4  -> RE_C = 1/2
    # Sum RE = 11/6, shares 3/11, 5/11, 3/11 of 4 conversions and 35 in value.
    effects = {"A": F(1, 2), "B": F(5, 6), "C": F(1, 2)}
    credits = {"A": (F(12, 11), F(105, 11)), "B": (F(20, 11), F(175, 11)), "C": (F(12, 11), F(105, 11))}
    _assert_close(markov_attribution(paths), credits, effects, F(1, 2))


def test_second_order_matches_the_closed_form_worked_by_hand() -> None:
    paths = _paths(("A > B > C", 1, 10.0, 0), ("A > B", 0, 0.0, 1), ("C > B > C", 1, 6.0, 1), ("A", 1, 4.0, 0))
    # States of order 2: A>B>C -> (A,B),(B,C); A>B -> (A,B); C>B>C -> (C,B),(B,C); A -> (A,) (shorter than k).
    #   start: (A,B) 2, (C,B) 2, (A,) 1      (of 5)
    #   (A,B): (B,C) 1, null 1;  (B,C): conv 2, null 1;  (C,B): (B,C) 2;  (A,): conv 1
    #   x(B,C) = 2/3, x(A,B) = 1/3, x(C,B) = 2/3, x(A,) = 1; P = 2/15 + 4/15 + 3/15 = 3/5
    #   without A ((A,B), (A,) gone): P = 2/5 * 2/3 = 4/15          -> RE_A = 1 - 4/9 = 5/9
    #   without B ((A,B), (B,C), (C,B) gone): P = 1/5                -> RE_B = 2/3
    #   without C ((B,C), (C,B) gone): x(A,B) = 0, P = 1/5           -> RE_C = 2/3
    # Sum RE = 17/9, shares 5/17, 6/17, 6/17 of 3 conversions and 20 in value.
    effects = {"A": F(5, 9), "B": F(2, 3), "C": F(2, 3)}
    credits = {"A": (F(15, 17), F(100, 17)), "B": (F(18, 17), F(120, 17)), "C": (F(18, 17), F(120, 17))}
    result = markov_attribution(paths, order=2)
    assert result.states == 4
    _assert_close(result, credits, effects, F(3, 5))


def test_order_k_states_are_sliding_windows_with_repeats_merged() -> None:
    assert path_states(("A", "B", "C", "D"), 2) == (("A", "B"), ("B", "C"), ("C", "D"))
    assert path_states(("A", "B", "C", "D"), 3) == (("A", "B", "C"), ("B", "C", "D"))
    assert path_states(("A",), 2) == (("A",),)
    assert path_states(("A", "B"), 3) == (("A", "B"),)
    assert path_states(("A", "A", "A", "B"), 2) == (("A", "A"), ("A", "B"))
    assert path_states(("A", "A", "B", "B"), 1) == (("A",), ("B",))


def _brute_force(paths, order):
    """P(conversion) per removed channel from the full stochastic matrix raised to a high power.

    Built independently of the module: transitions counted in plain Python with self-loops kept (they
    must not change the answer), absorbing states with probability-1 self-loops, P^(2^60) by squaring.
    """
    def states(channels):
        if len(channels) <= order:
            return [tuple(channels)]
        return [tuple(channels[i:i + order]) for i in range(len(channels) - order + 1)]

    counts = {}
    for channels, conv, _value, nulls in paths:
        seq = ["start", *states(channels)]
        for a, b in zip(seq, seq[1:], strict=False):
            counts[a, b] = counts.get((a, b), 0) + conv + nulls
        counts[seq[-1], "conv"] = counts.get((seq[-1], "conv"), 0) + conv
        counts[seq[-1], "null"] = counts.get((seq[-1], "null"), 0) + nulls
    names = sorted({a for a, _ in counts} | {b for _, b in counts}, key=str)
    index = {name: i for i, name in enumerate(names)}
    channels = sorted({c for channels, *_ in paths for c in channels})

    def conversion_probability(removed):
        m = np.zeros((len(names), len(names)))
        for (a, b), w in counts.items():
            m[index[a], index[b]] += w
        for name in names:
            gone = isinstance(name, tuple) and removed in name
            if name in ("conv", "null") or gone:
                m[index[name]] = 0
                m[index[name], index[name] if not gone else index["null"]] = 1
        m /= m.sum(axis=1, keepdims=True)
        for _ in range(60):
            m = m @ m
        return m[index["start"], index["conv"]]

    base = conversion_probability(None)
    return base, {c: 1 - conversion_probability(c) / base for c in channels}


def _random_paths(seed, n, channels="ABCDE", max_len=6):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        path = [rng.choice(channels) for _ in range(rng.randint(1, max_len))]
        conv = rng.randint(0, 3)
        rows.append((path, conv, conv * rng.uniform(1, 100), rng.randint(0 if conv else 1, 4)))
    return rows


@pytest.mark.parametrize("order", [1, 2, 3])
def test_removal_effects_and_credits_match_brute_force_matrix_powers(order) -> None:
    rows = _random_paths(seed=11 + order, n=60)
    base, effects = _brute_force(rows, order)
    result = markov_attribution([ChannelPath(tuple(p), c, v, z) for p, c, v, z in rows], order=order)
    assert result.conversion_probability == pytest.approx(base, abs=1e-12)
    total_effect = sum(effects.values())
    conversions, value = sum(r[1] for r in rows), sum(r[2] for r in rows)
    for channel, effect in effects.items():
        assert result.removal_effects[channel] == pytest.approx(effect, abs=1e-10)
        assert result.credits[channel]["conversions"] == pytest.approx(conversions * effect / total_effect, rel=1e-9)
        assert result.credits[channel]["revenue"] == pytest.approx(value * effect / total_effect, rel=1e-9)


def test_batched_looped_iterated_and_sparse_lu_solves_agree(monkeypatch) -> None:
    paths = [ChannelPath(tuple(p), c, v, z) for p, c, v, z in _random_paths(seed=5, n=300, channels="ABCDEFGH")]
    batched = markov_attribution(paths, order=2)
    monkeypatch.setattr(_markov, "_BATCH_MAX_CELLS", 0)
    looped = markov_attribution(paths, order=2)
    monkeypatch.setattr(_markov, "DENSE_MAX_STATES", 10)
    pytest.importorskip("scipy")
    iterated = markov_attribution(paths, order=2)
    monkeypatch.setattr(_markov, "_MAX_ITERATIONS", 1)  # no fixed point in one step: the LU fallback
    factored = markov_attribution(paths, order=2)
    for other in (looped, iterated, factored):
        for channel, effect in batched.removal_effects.items():
            assert other.removal_effects[channel] == pytest.approx(effect, abs=1e-12)


def test_large_chain_without_scipy_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(_markov, "DENSE_MAX_STATES", 1)
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(InputError, match="pip install scipy"):
        markov_attribution(_paths(("A > B > C", 1, 1.0, 0), ("B > C", 0, 0.0, 1)), order=2)


def test_credits_sum_to_totals_and_edge_cases() -> None:
    paths = [ChannelPath(tuple(p), c, v, z) for p, c, v, z in _random_paths(seed=3, n=500)]
    result = markov_attribution(paths)
    assert sum(c["conversions"] for c in result.credits.values()) == pytest.approx(sum(p.conversions for p in paths))
    assert sum(c["revenue"] for c in result.credits.values()) == pytest.approx(sum(p.value for p in paths))
    assert all(0 <= e <= 1 for e in result.removal_effects.values())
    # only non-converting journeys: nothing to credit, nothing divided by zero
    none = markov_attribution(_paths(("A > B", 0, 0.0, 3)))
    assert none.conversion_probability == 0 and none.credits["A"] == {"conversions": 0.0, "revenue": 0.0}
    assert markov_attribution([]).credits == {}
    # one channel that always converts takes everything
    solo = markov_attribution(_paths(("A", 2, 8.0, 0), ("A > A", 1, 1.0, 1)))
    assert solo.credits == {"A": {"conversions": 3.0, "revenue": 9.0}} and solo.removal_effects == {"A": 1.0}
    with pytest.raises(InputError, match="order"):
        markov_attribution(paths, order=0)
