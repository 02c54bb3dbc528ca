"""Online orders fetched from HQ are journaled here, so they can be refunded like local sales.

The HQ link only fetches; the sale rules live with the LAN API, so the composition root
hands `OrderJournal.record` to the link.

The refund path reads the sale from the ledger; an order HQ sent is therefore validated
with the same rules as `POST /v1/sales`, priced, and recorded with source `hq` (which also
tells HQ, through a `sale.recorded` event, which store took the order back).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from edge.api.context import fingerprint
from edge.api.schemas import SaleIn
from edge.contract.payloads import Malformed
from edge.domain.errors import DomainError, SaleConflict
from edge.domain.views import SaleView
from edge.ledger.ledger import Ledger


class OrderJournal:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def record(self, sale: dict[str, Any]) -> SaleView:
        """The sale as the ledger now holds it; raises Malformed if HQ's sale is unusable."""
        try:
            body = SaleIn.model_validate(sale)
            priced = body.priced()
        except (ValidationError, DomainError) as exc:
            raise Malformed(f"HQ's order is not a valid sale: {str(exc)[:300]}") from None
        data = body.model_dump(mode="json")
        try:
            _, view = await self._ledger.record_sale(
                data, priced, fingerprint(data), "hq", source="hq"
            )
        except SaleConflict:
            local = await self._ledger.sale(body.sale_id)
            if local is None:
                raise
            return local
        return view
