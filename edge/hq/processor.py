"""Where HQ settles a refund: the pluggable processor and ERP interfaces, and simulations.

A real integration implements `RefundProcessor` (the payment processor's refund call,
keyed by the Return ID as its idempotency key, so a retry after a crash never pays twice)
and `Erp` (posting the credit memo). The simulations approve, decline by rule, and can be
made slow or failing, so the whole flow can be exercised without either system.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from edge.errors import EdgeError


@dataclass(frozen=True)
class RefundRequest:
    """A refund as HQ received it from a gateway (the `refund.requested` event's data)."""

    return_id: str
    store_id: str
    gateway_id: str
    currency: str
    total: Decimal
    data: dict[str, Any]

    @property
    def card_amount(self) -> Decimal:
        total = Decimal(0)
        for tender in self.data.get("tenders", []):
            if tender.get("type") == "card":
                try:
                    total += Decimal(str(tender.get("amount", "0")))
                except InvalidOperation:
                    continue
        return total

    @property
    def payment_tokens(self) -> list[str]:
        return [
            str(t["payment_token"]) for t in self.data.get("tenders", []) if t.get("payment_token")
        ]

    @classmethod
    def from_row(cls, row: Any) -> RefundRequest:
        return cls(
            return_id=row["return_id"],
            store_id=row["store_id"],
            gateway_id=row["gateway_id"],
            currency=row["currency"],
            total=Decimal(row["total"]),
            data=json.loads(row["request"]),
        )


@dataclass(frozen=True)
class Decision:
    status: Literal["settled", "declined"]
    processor_ref: str | None
    reason: str | None = None


class ProcessorUnavailable(EdgeError):
    """The processor could not answer now; HQ tries again later (the refund stays open)."""


class RefundProcessor(Protocol):
    async def refund(self, request: RefundRequest) -> Decision:
        """Refund to the original tenders; must be idempotent per `request.return_id`."""
        ...


class Erp(Protocol):
    async def post(self, request: RefundRequest, decision: Decision) -> str | None:
        """Book the outcome; returns the ERP document reference (None if nothing booked)."""
        ...


class SimulatedSettings(BaseModel):
    """How the bundled processor simulation behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decline_card_over: Decimal | None = Field(Decimal("500.00"), ge=0)
    decline_token_prefix: str = "tok_decline"  # noqa: S105 - a test token prefix, no secret
    delay_s: float = Field(0.0, ge=0, le=60)
    failure_rate: float = Field(0.0, ge=0, le=1)


def _ref(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16].upper()
    return f"{prefix}-{digest}"


class SimulatedProcessor:
    """Approves; declines card refunds over a limit or to a `tok_decline...` token.

    References are derived from the Return ID, so asking twice gives the same answer: the
    idempotency a real processor gives through its idempotency key.
    """

    def __init__(self, settings: SimulatedSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()
        self.calls = 0

    async def refund(self, request: RefundRequest) -> Decision:
        self.calls += 1
        if self._settings.delay_s:
            await asyncio.sleep(self._settings.delay_s)
        if self._rng.random() < self._settings.failure_rate:
            raise ProcessorUnavailable("simulated processor outage")
        limit = self._settings.decline_card_over
        if limit is not None and request.card_amount > limit:
            return Decision("declined", None, f"card refund over {limit} needs a manual review")
        prefix = self._settings.decline_token_prefix
        if prefix and any(t.startswith(prefix) for t in request.payment_tokens):
            return Decision(
                "declined", _ref("SIM", request.return_id), "issuer declined the refund"
            )
        return Decision("settled", _ref("SIM", request.return_id))


class SimulatedErp:
    """Books settled refunds as credit memos with a reference derived from the Return ID."""

    async def post(self, request: RefundRequest, decision: Decision) -> str | None:
        if decision.status != "settled":
            return None
        return _ref("ERP", request.store_id, request.return_id)
