"""Plain-Python reference for the rule-based attribution models, from the event contract's
"Attribution semantics", not from the kernel code.

One journey at a time, as Python lists: touchpoint times in journey order (timestamp, then processing
order). time_decay is written as weight_i = 1 / sum_j 2^((delta_i - delta_j) / h), the same normalised
2^(-delta / h) divided through by its own term, so no term is ever exponentiated alone and long
lookbacks cannot turn into 0/0; an exponent past the float range counts as infinity.
"""

from __future__ import annotations

import math


def journey_weights(model, touch_ts_ms, conv_ts_ms, half_life_ms=7 * 86_400_000, first_share=0.4,
                    last_share=0.4):
    """Weights (summing to 1) of one journey of n >= 1 touchpoints under a rule-based model."""
    n = len(touch_ts_ms)
    if n == 0:
        return []
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "position_based":
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        between = (1.0 - first_share - last_share) / (n - 2)
        return [first_share] + [between] * (n - 2) + [last_share]
    if model == "time_decay":
        deltas = [int(conv_ts_ms) - int(t) for t in touch_ts_ms]  # exact integer milliseconds
        return [1.0 / sum(_pow2((d_i - d_j) / half_life_ms) for d_j in deltas) for d_i in deltas]
    raise ValueError(f"not a rule-based model: {model!r}")


def _pow2(exponent):
    return math.inf if exponent >= 1024 else 2.0**exponent  # 2.0**1024 raises OverflowError


def journey_credits(model, touch_ts_ms, conv_ts_ms, conversions=1.0, revenue=0.0, **settings):
    """[(weight, conversion credit, revenue credit)] per touchpoint of one journey."""
    weights = journey_weights(model, touch_ts_ms, conv_ts_ms, **settings)
    return [(w, w * conversions, w * revenue) for w in weights]


def rule_credits_ref(model, journeys):
    """Flat per-touchpoint credits over a list of journeys, each a dict with keys `touch_ts_ms` (list),
    `conv_ts_ms`, `conversions`, `revenue`, `half_life_ms`, `first_share`, `last_share`."""
    out = []
    for j in journeys:
        out.extend(journey_credits(
            model, j["touch_ts_ms"], j["conv_ts_ms"], j["conversions"], j["revenue"],
            half_life_ms=j["half_life_ms"], first_share=j["first_share"], last_share=j["last_share"]))
    return out
