"""Synthetic workloads: realistic, deterministic streams of raw messages with their ground truth.

`generate_workload(n, tenants, seed, now)` yields exactly n JSON messages (bytes, no newline); after
iterating, `.truth` is the ground truth. `write_workload(path, ...)` writes `path` (JSON lines) and
`<stem>.truth.json` beside it.

Ground truth (`truth` dict):
- `events`, `valid` (accepted, first-seen), `duplicates` (exact re-sends of earlier valid lines),
  `quarantined` and `reasons` ({code: count} for all 19 reason codes): what `BatchDecoder` must report
  when the lines are decoded in order through one decoder with `now_ms = truth["now_ms"]`.
- `kpis[tenant]`: sums of impressions, clicks, conversions (a conversion without the field counts 1),
  cost and revenue over the valid, non-duplicate events.
- `channels[c]`: the channel's `lift` (additive log-odds of conversion), click rate, median cpc and
  removal effect over all tenants.
- `channel_shares[tenant or "all"][c]`: the true causal share of conversions of channel c. A journey
  with channel set S converts with p(S) = sigmoid(base_logit[tenant] + sum of lift[c] for c in S);
  over the journeys completed in the stream, removal_effect[c] = sum(p(S) - p(S minus c)) / sum(p(S))
  (the expected fraction of conversions lost if c were removed) and share[c] = removal_effect[c] /
  sum of all channels' removal effects (so shares sum to 1; direct conversions are the baseline).
- `journeys[tenant]`: completed journeys and their expected conversions.
"""

from mkt_ray.workload._model import CHANNEL_NAMES, CHANNELS, Channel
from mkt_ray.workload._spec import WorkloadSpec
from mkt_ray.workload._workload import Workload, generate_workload
from mkt_ray.workload._write import truth_path, write_workload

__all__ = [
    "CHANNELS",
    "CHANNEL_NAMES",
    "Channel",
    "Workload",
    "WorkloadSpec",
    "generate_workload",
    "truth_path",
    "write_workload",
]
