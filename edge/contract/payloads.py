"""Payload models of the MQTT contract, for both ends (the gateway and the HQ service).

Every incoming payload is validated before anything acts on it; unknown fields are
ignored so either side may add fields (the contract changes only by adding), while a
missing or mistyped field makes the message malformed: logged, counted, ignored.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.contract.field_paths import first_error
from edge.contract.ids import ULID_PATTERN
from edge.contract.wire_types import Instant

Severity = Literal["info", "warning", "critical"]
AckStatus = Literal["accepted", "settled", "declined", "rejected"]

M = TypeVar("M", bound=BaseModel)


class Malformed(ValueError):
    """A payload that is not JSON or does not match its model: the wire contract's one
    error, shared by both ends (each logs, counts and drops the message)."""


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AckMsg(_In):
    event_id: str = Field(pattern=ULID_PATTERN)
    status: AckStatus
    return_id: str | None = Field(None, max_length=128)
    processor_ref: str | None = Field(None, max_length=256)
    erp_ref: str | None = Field(None, max_length=256)
    reason: str | None = Field(None, max_length=1024)


class CommandMsg(_In):
    request_id: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] = Field(default_factory=dict)


class LookupMsg(_In):
    """On `lookup`: a code the gateway does not hold (as long as the LAN API admits), and
    where to answer (also the MQTT 5 Response Topic, with `request_id` as Correlation Data)."""

    request_id: str = Field(min_length=1, max_length=128)
    code: str = Field(min_length=1, max_length=512)
    reply_to: str = Field(min_length=1, max_length=512)


class LookupReplyMsg(_In):
    """On `lookup-reply`: `sale` is a sale as in `POST /v1/sales` (`"channel": "online"`),
    null when not found; the gateway validates it as a sale before journaling it."""

    request_id: str = Field(min_length=1, max_length=128)
    found: bool
    sale: dict[str, Any] | None = None


class PresenceMsg(_In):
    state: Literal["online", "offline"]
    instance: str | None = None


class StateMsg(_In):
    state: Literal["online", "offline"]
    bd_seq: int | None = None
    version: str | None = None
    started_at: datetime | None = None


ALERT_DETAIL_MAX = 4096


class AlertMsg(_In):
    """On `alerts` when raised and when cleared, and in health's `alerts_open`; an alert is
    one per (`alert`, `subject`), e.g. `event-rejected` per event id."""

    alert: str = Field(min_length=1, max_length=128)
    severity: Severity
    detail: str = Field("", max_length=ALERT_DETAIL_MAX)
    subject: str = Field("", max_length=256)
    at: Instant
    state: Literal["raised", "cleared"] = "raised"


def parse(model: type[M], payload: bytes) -> M:
    """Decode and validate one payload in one pass (pydantic-core reads the bytes); raises
    Malformed (never anything else)."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        if first["type"] == "json_invalid":
            raise Malformed(f"not JSON: {first['msg']}") from None
        raise Malformed(first_error(exc, "(payload)")) from None


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def dumps(data: Any) -> bytes:
    """Compact JSON, the one encoding on the wire."""
    return _ENCODER.encode(data).encode()


def encode(model: BaseModel) -> bytes:
    """A payload model as it goes on the wire: its JSON form (amounts as decimal text,
    times as the contract writes them, keyword fields by their alias) in `dumps`' encoding."""
    return dumps(model.model_dump(mode="json", by_alias=True))
