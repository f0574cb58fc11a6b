"""Read Ray's Prometheus endpoint over HTTP, as a Prometheus server would."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from mkt_ray.observability import metrics_export_url


def scrape() -> dict[str, list[tuple[dict, float]]]:
    """Every sample of this node's endpoint: metric name -> [(labels, value)]."""
    body = urllib.request.urlopen(metrics_export_url(), timeout=10).read().decode()
    samples: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples
