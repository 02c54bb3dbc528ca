"""Typed payloads carried on the in-process event bus.

They mirror the contract's WebSocket messages (`scan`, `device.status`,
`refund.updated`) so the API can forward them without reshaping.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from edge.domain.views import RefundStatus, RefundView


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class ScanEvent(_Event):
    """A decoded scan routed to a lane."""

    type: Literal["scan"] = "scan"
    lane: str
    device: str
    symbology: str
    data: str
    parsed: dict[str, Any]
    at: datetime


class DeviceStatusEvent(_Event):
    """A device came, went or failed."""

    type: Literal["device.status"] = "device.status"
    lane: str | None
    device: str
    kind: Literal["keyboard", "serial", "nfc", "pcsc"]
    state: Literal["connected", "disconnected", "error"]
    detail: str = ""
    at: datetime


class ApprovalGrantEvent(_Event):
    """A manager badge tap produced a single-use approval grant for a lane."""

    type: Literal["approval.granted"] = "approval.granted"
    lane: str
    grant: str
    manager_id: str
    expires_at: datetime


class RefundUpdated(_Event):
    """A refund changed status (recorded, settled or declined by HQ)."""

    type: Literal["refund.updated"] = "refund.updated"
    return_id: str
    status: RefundStatus
    refund: RefundView
    at: datetime

    @classmethod
    def of(cls, refund: RefundView, at: datetime) -> RefundUpdated:
        """The event for a refund the ledger just wrote (not validated again)."""
        return cls.model_construct(
            return_id=refund.return_id, status=refund.status, refund=refund, at=at
        )


class OutboxAppended(_Event):
    """New events were committed to the outbox; wakes the HQ relay."""

    type: Literal["outbox.appended"] = "outbox.appended"
    last_seq: int
