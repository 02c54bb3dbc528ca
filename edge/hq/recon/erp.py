"""The simulated ERP with a field-mapping profile: it books each settled refund as the
profile's document (Shopify refund, NetSuite credit memo, SAP FI document) in
`erp_documents`, where the next digest reads it.

A refund the profile refuses (no order or payment reference) is not booked: the refund is
still settled with the processor, HQ's record shows no ERP reference, and the refusal is
logged and counted, which is what a reconciliation should then surface.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.timefmt import iso, utcnow
from edge.hq.processor import Decision, RefundRequest
from edge.hq.recon.digest import catalog_of, entry_from_refund
from edge.hq.recon.erp_profiles import ErpProfile, MissingReference
from edge.hq.store import HqStore
from edge.hq.tables import erp_documents, insert

log = logging.getLogger(__name__)


def erp_ref_of(profile: str, store_id: str, return_id: str) -> str:
    """Derived from the refund, so a second post after a crash books nothing new."""
    digest = hashlib.sha256(f"{profile}|{store_id}|{return_id}".encode()).hexdigest()[:16]
    return f"ERP-{digest.upper()}"


class ProfiledErp:
    """`Erp` for the HQ service: posts the mapped document into HQ's store."""

    def __init__(self, store: HqStore, profile: ErpProfile) -> None:
        self._store = store
        self.profile = profile
        self.counters: Counter[str] = Counter()

    async def post(self, request: RefundRequest, decision: Decision) -> str | None:
        if decision.status != "settled":
            return None
        try:
            document = self.profile.document(request, decision.processor_ref)
        except MissingReference as exc:
            self.counters["refused"] += 1
            log.warning("ERP (%s) refused a refund: %s", self.profile.name, exc)
            return None
        ref = erp_ref_of(self.profile.name, request.store_id, request.return_id)
        await self._store.write(
            partial(
                _book,
                request=request,
                decision=decision,
                ref=ref,
                document=document,
                profile=self.profile.name,
            )
        )
        self.counters["posted"] += 1
        return ref


async def _book(
    conn: AsyncConnection,
    request: RefundRequest,
    decision: Decision,
    ref: str,
    document: dict[str, object],
    profile: str,
) -> None:
    now = iso(utcnow())
    row = {
        "return_id": request.return_id,
        "request": json.dumps(request.data),
        "status": "settled",
        "currency": request.currency,
        "total": str(request.total),
        "processor_ref": decision.processor_ref,
        "erp_ref": ref,
        "decided_at": now,
        "received_at": now,
    }
    sale_id = request.data.get("sale_id")
    catalog = await catalog_of(conn, {str(sale_id)} if sale_id else set())
    entry = entry_from_refund(row, catalog)
    stmt = insert(conn, erp_documents).values(
        doc_id=ref,
        store_id=request.store_id,
        gateway_id=request.gateway_id,
        return_id=request.return_id,
        created_at=iso(entry.created_at),
        presence="posted",
        entry=entry.model_dump_json(by_alias=True),
        profile=profile,
        document=json.dumps(document),
        recorded_at=now,
    )
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=[erp_documents.c.doc_id]))
