"""Online orders fetched from HQ are journaled here, so they can be refunded like local sales.

The refund path reads the sale from the ledger; an order HQ sent is therefore validated
with the same rules as `POST /v1/sales`, priced, and recorded with source `hq` (which also
tells HQ, through a `sale.recorded` event, which store took the order back).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import ValidationError

from edge.api.context import fingerprint
from edge.api.schemas import SaleIn
from edge.bus import EventBus
from edge.domain.errors import PolicyViolation, SaleConflict
from edge.events import OutboxAppended
from edge.hqlink.payloads import Malformed
from edge.ledger import hq_sync
from edge.ledger.ledger import Ledger
from edge.ledger.timefmt import utcnow


class OrderJournal:
    def __init__(self, ledger: Ledger, bus: EventBus) -> None:
        self._ledger = ledger
        self._bus = bus

    async def record(self, sale: dict[str, Any]) -> dict[str, Any]:
        """The sale as the ledger now holds it; raises Malformed if HQ's sale is unusable."""
        try:
            body = SaleIn.model_validate(sale)
            priced = body.priced()
        except (ValidationError, ValueError, PolicyViolation) as exc:
            raise Malformed(f"HQ's order is not a valid sale: {str(exc)[:300]}") from None
        data = body.model_dump(mode="json")
        job = partial(
            hq_sync.record_hq_sale,
            origin=self._ledger.origin,
            sale=data,
            priced=priced,
            fingerprint=fingerprint(data),
            at=utcnow(),
        )
        try:
            recorded, view = await self._ledger.write(job)
        except SaleConflict:
            local = await self._ledger.sale(body.sale_id)
            if local is None:
                raise
            return local
        if recorded.last_seq is not None:
            self._bus.publish(OutboxAppended(last_seq=recorded.last_seq))
        return view
