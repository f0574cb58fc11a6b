"""Parity of the rule-based attribution kernel with the plain-Python reference, plus credit invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mkt_ray.kernels import RULE_MODELS, model_code, rule_credits, rule_credits_by_name
from tests.kernels.attribution_reference import journey_weights, rule_credits_ref

BASE_MS = 1_795_000_000_000
MS, DAY = 1, 86_400_000
WEEK = 7 * DAY
LOOKBACK = 30 * DAY


def journey(touch_ts_ms, conv_ts_ms=BASE_MS, *, conversions=1.0, revenue=100.0, half_life_ms=WEEK,
            first_share=0.4, last_share=0.4):
    return {"touch_ts_ms": list(touch_ts_ms), "conv_ts_ms": conv_ts_ms, "conversions": conversions,
            "revenue": revenue, "half_life_ms": half_life_ms, "first_share": first_share,
            "last_share": last_share}


def as_arrays(journeys):
    """The kernel's CSR arguments (after the model) for a list of reference journeys."""
    sizes = [len(j["touch_ts_ms"]) for j in journeys]
    starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
    touch = np.array([t for j in journeys for t in j["touch_ts_ms"]], dtype=np.int64)
    per_conv = [np.array([j[key] for j in journeys], dtype=np.float64) for key in
                ("conv_ts_ms", "conversions", "revenue", "half_life_ms", "first_share", "last_share")]
    return (starts, touch, *per_conv)


def credits_of(model, journeys):
    return rule_credits_by_name(model, *as_arrays(journeys))


def random_journeys(seed, n_conv=300, max_touch=12):
    """Seeded journeys: 0..max_touch touchpoints over a 30-day lookback, ties in time, half-lives from
    tiny to a week, per-conversion position shares, integer and fractional conversion values."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_conv):
        n = int(rng.choice([0, 1, 2, 3, int(rng.integers(1, max_touch + 1))]))
        conv_ts = BASE_MS + int(rng.integers(0, DAY))
        ages = rng.integers(0, LOOKBACK, n)
        if n and rng.random() < 0.3:  # equal timestamps, some or all
            ages[rng.random(n) < 0.6] = ages[0]
        first = float(rng.uniform(0, 1))
        out.append(journey(
            sorted(conv_ts - ages), conv_ts,
            conversions=float(rng.choice([1.0, 2.0, rng.uniform(0.1, 5)])),
            revenue=float(rng.choice([0.0, rng.gamma(2, 50), rng.uniform(0, 1e6)])),
            half_life_ms=float(rng.choice([WEEK, DAY, MS, 1e-3, rng.uniform(1, 40 * DAY)])),
            first_share=first, last_share=float(rng.uniform(0, 1 - first))))
    return out


def assert_matches_reference(model, journeys, result):
    expected = rule_credits_ref(model, journeys)
    assert all(len(a) == len(expected) for a in result)
    values = [(j["conversions"], j["revenue"]) for j in journeys for _ in j["touch_ts_ms"]]
    for i, ((w, cc, rc), (conv, rev)) in enumerate(zip(expected, values, strict=True)):
        got = (result[0][i], result[1][i], result[2][i])
        for a, b, scale in zip(got, (w, cc, rc), (1.0, conv, rev), strict=True):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12 * scale), (model, i, got, (w, cc, rc))


def per_conversion_sums(starts, values):
    return np.array([math.fsum(values[starts[c]:starts[c + 1]]) for c in range(len(starts) - 1)])


@pytest.mark.parametrize("model", RULE_MODELS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_journeys_match_reference(model, seed):
    journeys = random_journeys(seed)
    assert_matches_reference(model, journeys, credits_of(model, journeys))


def test_model_codes_are_tuple_indices():
    assert RULE_MODELS == ("first_touch", "last_touch", "linear", "position_based", "time_decay")
    assert [model_code(name) for name in RULE_MODELS] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("model", RULE_MODELS)
def test_by_code_equals_by_name(model):
    args = as_arrays(random_journeys(5, n_conv=50))
    for a, b in zip(rule_credits(model_code(model), *args), rule_credits_by_name(model, *args), strict=True):
        np.testing.assert_array_equal(a, b)
    rule_credits(np.int64(model_code(model)), *args)  # numpy integers are codes too


def test_time_decay_long_lookback_does_not_underflow():
    """2^(-30 days / 1 ms) is 0 in float64: without shifting the exponents this is 0/0."""
    touches = [BASE_MS - LOOKBACK + 1, BASE_MS - 15 * DAY, BASE_MS - 1, BASE_MS - 1]
    for h in (1.0, 1e-3, 1e-300):
        w = credits_of("time_decay", [journey(touches, half_life_ms=h)])[0]
        np.testing.assert_array_equal(w, [0.0, 0.0, 0.5, 0.5])
    w = credits_of("time_decay", [journey(touches, half_life_ms=WEEK)])[0]
    np.testing.assert_allclose(w / w[-1], [2.0 ** (-(LOOKBACK - 2) / WEEK), 2.0 ** (-(15 * DAY - 1) / WEEK), 1, 1],
                               rtol=1e-12)


@pytest.mark.parametrize("h", [WEEK, MS, 1e-3, math.inf])
def test_time_decay_equal_deltas_share_equally(h):
    w = credits_of("time_decay", [journey([BASE_MS - LOOKBACK + 1] * 5, half_life_ms=h)])[0]
    np.testing.assert_array_equal(w, [0.2] * 5)


def test_time_decay_halves_per_half_life():
    w = credits_of("time_decay", [journey([BASE_MS - 2 * WEEK, BASE_MS - WEEK, BASE_MS])])[0]
    np.testing.assert_allclose(w, np.array([1, 2, 4]) / 7, rtol=1e-15)


def test_position_based_custom_shares():
    journeys = [journey([1, 2, 3, 4], first_share=0.3, last_share=0.5),
                journey([1, 2, 3], first_share=0.0, last_share=1.0),
                journey([1, 2], first_share=0.9, last_share=0.1),
                journey([7], first_share=0.1, last_share=0.1),
                journey([1, 2, 3, 4, 5])]
    w = credits_of("position_based", journeys)[0]
    np.testing.assert_allclose(w, [0.3, 0.1, 0.1, 0.5, 0, 0, 1, 0.5, 0.5, 1, 0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4],
                               rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("model", RULE_MODELS)
def test_empty_input(model):
    for starts in ([0], []):
        out = rule_credits_by_name(model, starts, [], [], [], [], [], [], [])
        assert [(a.dtype, a.shape) for a in out] == [(np.float64, (0,))] * 3
    out = credits_of(model, [journey([]), journey([])])  # conversions without touchpoints: (direct)
    assert [a.shape for a in out] == [(0,)] * 3


@pytest.mark.parametrize("model", RULE_MODELS)
def test_chunked_equals_one_shot(model):
    journeys = random_journeys(7, n_conv=200)
    whole = credits_of(model, journeys)
    parts = [credits_of(model, journeys[lo:hi]) for lo, hi in ((0, 1), (1, 80), (80, 80), (80, 200))]
    for k in range(3):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_integer_inputs_and_scalar_settings():
    starts, touch = [0, 2, 5], [10, 20, 30, 30, 40]
    w, cc, rc = rule_credits(4, starts, touch, np.array([50, 60]), np.array([1, 3]), np.array([10, 0]),
                             WEEK, 0.4, 0.4)
    np.testing.assert_allclose(per_conversion_sums(np.array(starts), cc), [1, 3], rtol=1e-15)
    np.testing.assert_allclose(rc[:2].sum(), 10, rtol=1e-15)


def test_bad_arguments_say_what_to_fix():
    args = as_arrays([journey([1, 2]), journey([3])])
    with pytest.raises(ValueError, match="valid names: first_touch, last_touch, linear, position_based"):
        model_code("shapley")
    with pytest.raises(ValueError, match="4 = time_decay"):
        rule_credits(5, *args)
    with pytest.raises(ValueError, match="integer model code"):
        rule_credits("linear", *args)
    with pytest.raises(ValueError, match="from 0 to len"):
        rule_credits(2, [0, 2], *args[1:])
    with pytest.raises(ValueError, match="must not decrease"):
        rule_credits(2, [0, 3, 2, 3], [1, 2, 3], *([np.zeros(3)] * 6))
    with pytest.raises(ValueError, match="revenue has 3 entries"):
        rule_credits(2, *args[:4], np.ones(3), *args[5:])
    for h in (0.0, -1.0, math.nan):
        bad = as_arrays([journey([1, 2]), journey([3], half_life_ms=h)])
        with pytest.raises(ValueError, match="conversion 1 has"):
            rule_credits_by_name("time_decay", *bad)
        rule_credits_by_name("linear", *bad)  # half-life only matters to time_decay
    for first, last in ((-0.1, 0.4), (0.4, -0.1), (0.7, 0.4), (math.nan, 0.4)):
        bad = as_arrays([journey([1, 2, 3], first_share=first, last_share=last)])
        with pytest.raises(ValueError, match="conversion 0 has"):
            rule_credits_by_name("position_based", *bad)


# --- properties -------------------------------------------------------------------------------------

touch_times = st.one_of(
    st.lists(st.integers(0, LOOKBACK - 1), max_size=8),
    st.integers(0, LOOKBACK - 1).flatmap(lambda age: st.lists(st.just(age), min_size=1, max_size=8)),
)
shares = st.tuples(st.floats(0, 1), st.floats(0, 1)).map(lambda fl: (fl[0], fl[1] * (1 - fl[0])))
conversion = st.builds(
    lambda ages, conv_ts, conversions, revenue, h, fl: journey(
        sorted(conv_ts - a for a in ages), conv_ts, conversions=conversions, revenue=revenue,
        half_life_ms=h, first_share=fl[0], last_share=fl[1]),
    touch_times,
    st.integers(BASE_MS - 10 * 365 * DAY, BASE_MS + 10 * 365 * DAY),
    st.one_of(st.just(1.0), st.integers(0, 100).map(float), st.floats(0, 1e6, allow_subnormal=False)),
    # not down to subnormals: 2.2e-313 / 4 keeps 10 significant digits, not 12; no money is that small
    st.one_of(st.just(0.0), st.floats(1e-200, 1e9)),
    st.one_of(st.just(float(WEEK)), st.floats(1e-6, 1e12), st.just(math.inf)),
    shares,
)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(RULE_MODELS), st.lists(conversion, max_size=12))
def test_credits_sum_to_conversion_values(model, journeys):
    starts, *_ = args = as_arrays(journeys)
    weight, conv_credit, rev_credit = rule_credits_by_name(model, *args)
    assert weight.min(initial=0) >= 0 and conv_credit.min(initial=0) >= 0 and rev_credit.min(initial=0) >= 0
    for c, j in enumerate(journeys):
        lo, hi = starts[c], starts[c + 1]
        if hi == lo:
            continue
        assert math.isclose(math.fsum(weight[lo:hi]), 1.0, rel_tol=1e-12)
        assert math.isclose(math.fsum(conv_credit[lo:hi]), j["conversions"], rel_tol=1e-12)
        assert math.isclose(math.fsum(rev_credit[lo:hi]), j["revenue"], rel_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(conversion, max_size=10))
def test_every_model_matches_reference_property(journeys):
    for model in RULE_MODELS:
        assert_matches_reference(model, journeys, credits_of(model, journeys))


@settings(max_examples=60, deadline=None)
@given(st.lists(conversion.map(lambda j: {**j, "touch_ts_ms": j["touch_ts_ms"][-1:] or [BASE_MS]}),
                min_size=1, max_size=10))
def test_single_touchpoint_gets_everything(journeys):
    for model in RULE_MODELS:
        weight, conv_credit, rev_credit = credits_of(model, journeys)
        np.testing.assert_array_equal(weight, 1.0)
        np.testing.assert_array_equal(conv_credit, [j["conversions"] for j in journeys])
        np.testing.assert_array_equal(rev_credit, [j["revenue"] for j in journeys])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, LOOKBACK - 1), min_size=1, max_size=10), shares)
def test_position_based_custom_shares_property(ages, fl):
    j = journey(sorted(BASE_MS - a for a in ages), first_share=fl[0], last_share=fl[1])
    weight = credits_of("position_based", [j])[0]
    np.testing.assert_allclose(weight, journey_weights("position_based", j["touch_ts_ms"], BASE_MS,
                                                       first_share=fl[0], last_share=fl[1]),
                               rtol=1e-12, atol=1e-12)
    if len(ages) >= 3:
        assert (weight[0], weight[-1]) == fl
