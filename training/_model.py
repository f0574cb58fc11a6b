"""The conversion model: LightGBM parameters, data-parallel training with Ray Train, holdout metrics.

Ray Train's current LightGBM API (Ray 2.60, Train v2): a `LightGBMTrainer` runs `train_loop_per_worker`
on `ScalingConfig.num_workers` workers; each reads its shard of the Ray Datasets, calls `lightgbm.train`
with `ray.train.lightgbm.get_network_params()` (the workers' socket ring) and reports metrics and the
final model through `RayTrainReportCallback`, whose checkpoint holds `model.txt`.
"""

from __future__ import annotations

import tempfile
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import ray.data

LABEL = "label"


def lgb_params(num_threads: int, seed: int = 0) -> dict[str, Any]:
    """Small trees and a modest rate: the journeys are short and the signal is per channel."""
    return {"objective": "binary", "metric": ["binary_logloss", "auc"], "learning_rate": 0.1,
            "num_leaves": 15, "min_data_in_leaf": 50, "feature_fraction": 1.0, "num_threads": num_threads,
            "seed": seed, "deterministic": True, "force_row_wise": True, "verbose": -1}


def _final_report_callback():
    """`RayTrainReportCallback` that reports once, with the final checkpoint, instead of every iteration.

    Each `ray.train.report` is a round trip through the Train controller: on this 2-core machine 40
    per-iteration reports made a 17k-row fit take 110 s instead of about 10 s.
    """
    from ray.train.lightgbm import RayTrainReportCallback

    class FinalReportCallback(RayTrainReportCallback):
        def _report_metrics(self, report_dict: dict) -> None:
            pass  # the metrics of the last iteration go with the checkpoint

    return FinalReportCallback(metrics={"valid_logloss": "valid-binary_logloss", "valid_auc": "valid-auc"})


def _train_loop(config: dict[str, Any]) -> None:
    """Runs on each Ray Train worker: its shards as pandas, then `lightgbm.train` in the worker ring."""
    import ray.train
    from ray.train.lightgbm import get_network_params

    features, categorical = config["features"], config["categorical"]
    frames = {name: ray.train.get_dataset_shard(name).materialize().to_pandas() for name in ("train", "valid")}
    sets = {name: _dataset(frame[features].to_numpy(np.float32), frame[LABEL].to_numpy(np.float32), features,
                           categorical) for name, frame in frames.items()}
    lgb.train({**config["params"], **get_network_params()}, sets["train"],
              num_boost_round=config["num_boost_round"], valid_sets=[sets["valid"]], valid_names=["valid"],
              callbacks=[_final_report_callback()])


def train_distributed(train: ray.data.Dataset, valid: ray.data.Dataset, features: list[str], categorical: list[str],
                      num_workers: int, num_boost_round: int, seed: int = 0) -> lgb.Booster:
    """Train on Ray Train workers (1 CPU each) and return the final booster.

    Only `train` is split among the workers; each reads the whole (small) holdout itself. A split dataset
    gets a coordinator actor of its own, which on a 2-core machine cost ~4 s of the job to start.
    """
    from ray.train import DataConfig, RunConfig, ScalingConfig
    from ray.train.lightgbm import LightGBMTrainer, RayTrainReportCallback

    with tempfile.TemporaryDirectory(prefix="mkt-train-") as storage:
        trainer = LightGBMTrainer(
            _train_loop,
            train_loop_config={"features": features, "categorical": categorical, "num_boost_round": num_boost_round,
                               "params": lgb_params(num_threads=1, seed=seed)},
            scaling_config=ScalingConfig(num_workers=num_workers, resources_per_worker={"CPU": 1}),
            datasets={"train": train, "valid": valid},
            dataset_config=DataConfig(datasets_to_split=["train"]),
            run_config=RunConfig(storage_path=storage, name="train_attribution"),
        )
        result = trainer.fit()
        return RayTrainReportCallback.get_model(result.checkpoint)


def train_local(x: np.ndarray, y: np.ndarray, features: list[str], categorical: list[str], num_boost_round: int,
                num_threads: int = 1, seed: int = 0) -> lgb.Booster:
    """The same model in this process (the plain baseline and `training.evaluate`)."""
    return lgb.train(lgb_params(num_threads, seed), _dataset(x, y, features, categorical), num_boost_round=num_boost_round)


def _dataset(x: np.ndarray, y: np.ndarray, features: list[str], categorical: list[str]) -> lgb.Dataset:
    # numpy, not the frame: pandas 3 frames from Arrow hold pyarrow-backed columns LightGBM refuses
    return lgb.Dataset(x, label=y, feature_name=features, categorical_feature=categorical, free_raw_data=False)


def holdout_metrics(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """AUC (rank statistic, ties averaged), log-loss, and calibration by deciles of the prediction."""
    y = y.astype(bool)
    eps = 1e-15
    q = np.clip(p, eps, 1 - eps)
    logloss = float(-np.mean(np.where(y, np.log(q), np.log(1 - q)))) if len(y) else float("nan")
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives and negatives:
        ranks = pd.Series(p).rank(method="average").to_numpy()
        auc = float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
    else:
        auc = float("nan")
    order = np.argsort(p, kind="stable")
    table = []
    for chunk in np.array_split(order, min(bins, max(len(order), 1))):
        if len(chunk):
            table.append({"predicted": float(p[chunk].mean()), "observed": float(y[chunk].mean()), "n": len(chunk)})
    ece = sum(abs(row["predicted"] - row["observed"]) * row["n"] for row in table) / max(len(y), 1)
    return {"auc": auc, "logloss": logloss, "rows": len(y), "positives": positives,
            "calibration": {"mean_predicted": float(p.mean()) if len(p) else float("nan"),
                            "observed_rate": float(y.mean()) if len(y) else float("nan"),
                            "ece": float(ece), "deciles": table}}
