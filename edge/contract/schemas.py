"""The JSON Schema of every MQTT payload model, one file per payload, for HQ engineers who
integrate in another language. `scripts/contract-schemas` writes them to docs/schemas/, and
a test keeps the committed files equal to what the models say."""

from __future__ import annotations

import json

from pydantic import BaseModel

from edge.contract.commands import CmdResultMsg
from edge.contract.envelope import EventEnvelope
from edge.contract.health import BirthMsg, HealthMsg, WillMsg
from edge.contract.payloads import (
    AckMsg,
    AlertMsg,
    CommandMsg,
    LookupMsg,
    LookupReplyMsg,
    PresenceMsg,
)
from edge.contract.recon import Digest, Report

DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic generates

# file stem -> the model of that payload (topic leaf, and which message on it)
SCHEMAS: dict[str, type[BaseModel]] = {
    "state-birth": BirthMsg,
    "state-will": WillMsg,
    "health": HealthMsg,
    "events": EventEnvelope,
    "acks": AckMsg,
    "alerts": AlertMsg,
    "cmd": CommandMsg,
    "cmd-result": CmdResultMsg,
    "lookup": LookupMsg,
    "lookup-reply": LookupReplyMsg,
    "hq-presence": PresenceMsg,
    "recon-digest": Digest,
    "recon-report": Report,
}


def schema_files() -> dict[str, str]:
    """`{file name: its text}`, stable (fields in model order, one trailing newline), so a
    diff of the committed files shows exactly what a change of the contract changed."""
    return {f"{stem}.json": _text(model) for stem, model in SCHEMAS.items()}


def _text(model: type[BaseModel]) -> str:
    schema = {"$schema": DIALECT, **model.model_json_schema(by_alias=True)}
    return json.dumps(schema, indent=2) + "\n"
