"""cluster.yaml and cluster.aws.yaml pass Ray's own cluster-config checks (what `ray up` runs before any SSH)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster.aws.yaml"])
def test_cluster_config_is_valid_for_ray_up(name):
    config = prepare_config(load(name))
    validate_config(config)
    assert config["file_mounts"] == {"~/mkt-ray": "."}
    assert any("pip install -q -e ~/mkt-ray" in command for command in config["setup_commands"])
    assert all("source ~/mkt-venv/bin/activate && ulimit -n 65536 && ray start" in " ".join(config[key])
               for key in ("head_start_ray_commands", "worker_start_ray_commands"))


def test_on_prem_config_has_a_head_and_every_listed_worker():
    config = prepare_config(load("cluster.yaml"))
    (node_type,) = config["available_node_types"].values()  # the local provider's single type
    workers = len(config["provider"]["worker_ips"])
    assert (config["provider"]["type"], node_type["min_workers"], node_type["max_workers"]) == ("local", workers, workers)


def test_aws_config_has_documented_head_and_worker_types():
    config = prepare_config(load("cluster.aws.yaml"))
    assert config["head_node_type"] == "mkt.head"
    assert set(config["available_node_types"]) == {"mkt.head", "mkt.worker"}
    assert config["available_node_types"]["mkt.worker"]["min_workers"] == 2


def test_validation_catches_a_broken_config():
    """The check the tests rely on can fail: an unknown top-level key is refused."""
    config = prepare_config(load("cluster.aws.yaml"))
    broken = copy.deepcopy(config)
    broken["worker_count"] = 3
    with pytest.raises(ValidationError):
        validate_config(broken)
