"""The outbox event envelope HQ receives, validated before it is written or sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.contract.ids import ULID_PATTERN

EVENT_TYPES = (
    "sale.recorded",
    "refund.requested",
    "inventory.returned",
)
EventType = Literal["sale.recorded", "refund.requested", "inventory.returned"]


class EventEnvelope(BaseModel):
    """Contract envelope: at-least-once, `seq` gapless per gateway, `event_id` a ULID."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(pattern=ULID_PATTERN)
    type: EventType
    schema_: int = Field(1, alias="schema", ge=1)
    store_id: str = Field(min_length=1)
    gateway_id: str = Field(min_length=1)
    seq: int = Field(ge=1)
    occurred_at: datetime
    data: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
