"""The envelope check both ends run on the wire bytes: one compiled pydantic validator.

`EventEnvelope` (`edge.contract.envelope`) is the contract's model. `WireEnvelope` states the
same fields with the same constraints as a TypedDict, so that `check_envelope` validates
the bytes as they are stored or received in one pass of pydantic-core, without decoding
the JSON first and without building a model instance: about half the cost per event of
`EventEnvelope.model_validate_json`. A test keeps the two JSON schemas equal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from edge.contract.envelope import EventType
from edge.contract.ids import ULID_PATTERN


@with_config(ConfigDict(extra="forbid"))
class WireEnvelope(TypedDict):
    """Contract envelope: at-least-once, `seq` gapless per gateway, `event_id` a ULID."""

    event_id: Annotated[str, Field(pattern=ULID_PATTERN)]
    type: EventType
    schema: NotRequired[Annotated[int, Field(ge=1)]]
    store_id: Annotated[str, Field(min_length=1)]
    gateway_id: Annotated[str, Field(min_length=1)]
    seq: Annotated[int, Field(ge=1)]
    occurred_at: datetime
    data: dict[str, Any]


_ENVELOPE: TypeAdapter[WireEnvelope] = TypeAdapter(WireEnvelope)


def check_envelope(payload: bytes | str) -> WireEnvelope:
    """The envelope in `payload` (JSON); raises pydantic's ValidationError otherwise."""
    return _ENVELOPE.validate_json(payload)


def envelope_schema() -> dict[str, Any]:
    """The JSON schema the check enforces (for the test that compares it with the model's)."""
    return _ENVELOPE.json_schema()
