"""`mkt-ray schema`: the JSON Schema producers can validate events against."""

from __future__ import annotations

import json

from mkt_ray.contract import json_schema


def run_schema() -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0
