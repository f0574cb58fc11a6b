"""`mkt-ray schema` prints the JSON Schema derived from the contract; it accepts valid events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema

from mkt_ray.cli import main
from mkt_ray.contract import BatchDecoder, json_schema
from mkt_ray.workload import generate_workload


def test_schema_command_prints_the_derived_schema(capsys) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_every_event_the_decoder_accepts_validates_against_the_schema() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    lines = list(generate_workload(3000, ["acme"], 2, now, invalid_share=0.0, duplicate_share=0.0))
    batch = BatchDecoder(["acme"]).decode(lines, now_ms=int(now.timestamp() * 1000))
    assert len(batch.events) == len(lines)
    validator = jsonschema.Draft202012Validator(json_schema())
    for line in lines:
        validator.validate(json.loads(line))


def test_schema_rejects_what_the_contract_rejects_structurally() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    base = {"schema_version": 1, "event_id": "e", "tenant_id": "acme", "event_type": "touchpoint",
            "timestamp": "2026-11-27T11:00:00Z", "source": "meta", "campaign_id": "c", "anonymous_id": "a"}
    assert validator.is_valid(base)
    for broken in ({**base, "colour": "red"}, {**base, "schema_version": 2}, {**base, "tenant_id": "Acme"},
                   {k: v for k, v in base.items() if k != "campaign_id"}, {**base, "metadata": {"email": "x"}},
                   {k: v for k, v in base.items() if k != "anonymous_id"}):
        assert not validator.is_valid(broken), broken
