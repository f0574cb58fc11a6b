"""From journeys to a fitted data-driven model: features, holdout split, channel Shapley values, credits.

Shared by the Ray job (`train_attribution`), `evaluate` and the benchmark, so all three fit and credit
the same way; only where the booster is trained differs (Ray Train workers or this process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mkt_ray.attribution import DIRECT, ChannelPath, markov_attribution
from mkt_ray.errors import InputError
from training._features import categorical_features, channel_codes, feature_names, journey_features
from training._journeys import Journeys
from training._model import LABEL
from training._shapley import credit_weights, shapley_by_channel

HOLDOUT_SHARE = 0.2  # the newest journeys (by end time) are held out


@dataclass(frozen=True)
class Design:
    """The model's view of the journeys: vocabulary, features, labels, and the time split."""

    channels: tuple[str, ...]
    codes: np.ndarray  # channel code per touchpoint
    x: np.ndarray  # features of the journeys with touchpoints
    y: np.ndarray
    rows: np.ndarray  # journey index of each row of x
    train: np.ndarray  # bool per row: before the holdout cutoff
    cutoff_ms: int

    @property
    def features(self) -> list[str]:
        return feature_names(self.channels)

    @property
    def categorical(self) -> list[str]:
        return categorical_features()


def design(journeys: Journeys, channels: tuple[str, ...] | None = None) -> Design:
    """Features of every journey with touchpoints (an empty direct journey says nothing about channels)
    and the time-based holdout: journeys ending at or after the cutoff are validation. `channels` is a
    trained model's vocabulary (default: the journeys' channels, sorted)."""
    seen = set(journeys.channels.tolist())
    if channels is None:
        channels = tuple(sorted(seen))
    elif not seen <= set(channels):
        raise InputError(f"channels {sorted(seen - set(channels))} are not known to the model "
                         f"(it was trained on {', '.join(channels)}); train a new version")
    rows = np.flatnonzero(np.diff(journeys.starts) > 0)
    y = journeys.converted[rows]
    if not len(rows) or y.all() or not y.any():
        raise InputError(f"training needs converting and non-converting journeys; found {int(y.sum())} converting "
                         f"and {int((~y).sum())} non-converting with touchpoints (widen --since/--until?)")
    codes = channel_codes(journeys.channels, channels)
    x = journey_features(codes, journeys.touch_ts_ms, journeys.starts, len(channels))[rows]
    ends = journeys.end_ms[rows]
    cutoff = int(np.quantile(ends, 1 - HOLDOUT_SHARE, method="higher"))
    train = ends < cutoff
    if train.all() or not train.any():  # every journey ends at the same moment: hold out the last rows
        train = np.arange(len(rows)) < int(len(rows) * (1 - HOLDOUT_SHARE))
    return Design(channels, codes, x, y, rows, train, cutoff)


def feature_table(d: Design, part: np.ndarray) -> pa.Table:
    """Rows of `d` selected by `part` as an Arrow table (feature columns + label) for Ray Data."""
    columns = {name: d.x[part, i] for i, name in enumerate(d.features)}
    columns[LABEL] = d.y[part].astype(np.float32)
    return pa.table(columns)


@dataclass(frozen=True)
class ChannelCredit:
    """The fitted model's credit: per-channel values for online use and totals over the conversions."""

    data_driven: dict[str, float]  # channel -> mean positive Shapley value over conversions containing it
    markov: dict[str, float]  # channel -> removal effect
    credits: dict[str, dict[str, float]]  # data_driven totals: channel -> {"conversions", "revenue"}


def credit(journeys: Journeys, d: Design, predict: Callable[[np.ndarray], np.ndarray]) -> ChannelCredit:
    """Shapley credit of every conversion (direct ones wholly `(direct)`), channel values, Markov."""
    lengths = np.diff(journeys.starts)
    conv = np.flatnonzero(journeys.converted & (lengths > 0))
    touch = np.concatenate([np.arange(journeys.starts[j], journeys.starts[j + 1]) for j in conv]) if len(conv) \
        else np.zeros(0, np.int64)
    sub_starts = np.concatenate(([0], np.cumsum(lengths[conv]))).astype(np.int64)
    codes = d.codes[touch]
    phi = shapley_by_channel(codes, journeys.touch_ts_ms[touch], sub_starts, len(d.channels), predict)
    present = np.zeros((len(conv), len(d.channels)), bool)
    present[np.repeat(np.arange(len(conv)), lengths[conv]), codes] = True
    weights = credit_weights(phi, present)
    conversions = weights.T @ journeys.conversions[conv]
    revenue = weights.T @ journeys.revenue[conv]
    credits = {ch: {"conversions": float(conversions[i]), "revenue": float(revenue[i])}
               for i, ch in enumerate(d.channels)}
    direct = journeys.converted & (lengths == 0)
    if direct.any():
        credits[DIRECT] = {"conversions": float(journeys.conversions[direct].sum()),
                           "revenue": float(journeys.revenue[direct].sum())}
    positive = np.where(present, np.maximum(phi, 0.0), 0.0)
    counts = present.sum(axis=0)
    values = {ch: float(positive[:, i].sum() / counts[i]) if counts[i] else 0.0 for i, ch in enumerate(d.channels)}
    return ChannelCredit(values, markov_values(journeys), credits)


def markov_values(journeys: Journeys) -> dict[str, float]:
    """Removal effects of the exact first-order Markov chain over the same journeys (conversions and nulls)."""
    return markov_attribution(markov_paths(journeys)).removal_effects


def markov_paths(journeys: Journeys) -> list[ChannelPath]:
    """One path per journey: a conversion's (its count and revenue; `(direct)` without touchpoints) or a null."""
    channels = journeys.channels.tolist()
    starts = journeys.starts.tolist()
    paths = []
    for j in range(len(journeys)):
        path = tuple(channels[starts[j]:starts[j + 1]]) or (DIRECT,)
        if journeys.converted[j]:
            paths.append(ChannelPath(path, float(journeys.conversions[j]), float(journeys.revenue[j]), 0.0))
        else:
            paths.append(ChannelPath(path, 0.0, 0.0, 1.0))
    return paths
