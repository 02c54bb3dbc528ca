"""The compiled envelope check enforces exactly the contract model's schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from edge.contract.envelope import EventEnvelope
from edge.contract.wire_envelope import check_envelope, envelope_schema


def _comparable(schema: dict[str, Any]) -> dict[str, Any]:
    """Without the title (the class name) and defaults (the model fills in `schema`; the
    check only needs to accept its absence)."""
    props = {
        name: {k: v for k, v in prop.items() if k != "default"}
        for name, prop in schema["properties"].items()
    }
    required = set(schema["required"]) - {"schema"}
    return {**schema, "title": None, "properties": props, "required": sorted(required)}


def test_the_check_and_the_model_have_one_schema() -> None:
    model = EventEnvelope.model_json_schema(by_alias=True)
    assert _comparable(envelope_schema()) == _comparable(model)


def test_the_check_accepts_and_refuses_what_the_model_does() -> None:
    good = {
        "event_id": "01KB0000000000000000000000",
        "type": "sale.recorded",
        "store_id": "0042",
        "gateway_id": "gw-01",
        "seq": 7,
        "occurred_at": "2026-11-22T10:15:00.000Z",
        "data": {"sale_id": "S-1"},
    }
    payload = EventEnvelope.model_validate(good).model_dump_json(by_alias=True)
    assert check_envelope(payload.encode())["seq"] == 7
    for bad in ({**good, "seq": 0}, {**good, "extra": 1}, {**good, "type": "sale.voided"}):
        with pytest.raises(ValidationError):
            EventEnvelope.model_validate(bad)
        with pytest.raises(ValidationError):
            check_envelope(json.dumps(bad).encode())
