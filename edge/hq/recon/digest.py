"""Digests: what HQ and its ERP hold for one gateway's store over a period [from, to).

HQ's own record of a gateway refund is its `refunds` row (the `refund.requested` data as
received, plus the outcome). When the ERP holds a document for that refund
(`erp_documents`), the digest lists the ERP's version instead, one entry per document: the
gateway then compares its ledger with what finance will book, not with HQ's copy of its own
message. A document marked `dropped` (the integration lost the refund) removes the refund
from the digest. Documents without a gateway refund (a register cash refund, a
distribution-center return, a goodwill credit) are listed as they are.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.recon import (
    DIGEST_REFUNDS_MAX,
    Digest,
    DigestEntry,
    DigestLine,
    DigestTender,
)
from edge.contract.timefmt import iso, parse_iso
from edge.hq.tables import erp_documents, gateways, insert, orders, recon_digests, refunds, streams

# A refund is created on the gateway before HQ receives it; a gateway clock running ahead
# of HQ's could put `received_at` before `created_at`. Refunds received up to this long
# before the period starts are read too, then filtered by their own `created_at`.
CLOCK_SLACK = timedelta(hours=1)

HQ_STATUS = {"received": "pending", "settled": "settled", "declined": "declined"}


def new_digest_id(at: datetime) -> str:
    """Time-ordered and unique across instances (a random tail)."""
    return f"D-{at.astimezone(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:16]}"


def hq_ref(return_id: str) -> str:
    """HQ's own id of a refund the ERP has no document for."""
    return f"HQ-{return_id}"


def _dec(value: Any, default: str = "0") -> Decimal:
    return Decimal(str(value if value is not None else default))


def entry_from_refund(row: Any, catalog: dict[str, dict[str, Any]]) -> DigestEntry:
    """HQ's record of a gateway refund as a digest entry (`row`: a `refunds` row).

    Lines carry the event's `amount` (what was paid for the units, tax excluded) and
    `tax`; their SKU and category come from HQ's copy of the sale (`orders`) when HQ has
    one, else null: the gateway's event does not repeat them.
    """
    data = json.loads(row["request"])
    sale_id = data.get("sale_id")
    sale = catalog.get(sale_id or "", {})
    sale_lines = {str(x.get("line_id")): x for x in sale.get("lines", [])}
    status = HQ_STATUS[row["status"]]
    decided_at = parse_iso(row["decided_at"]) if row["decided_at"] else None
    return DigestEntry(
        return_id=row["return_id"],
        external_ref=row["erp_ref"] or hq_ref(row["return_id"]),
        source="gateway",
        sale_id=sale_id,
        order_id=sale_id if data.get("sale_channel") == "online" else None,
        currency=row["currency"],
        total=_dec(row["total"]),
        tax=_dec(data.get("tax")),
        tenders=[
            DigestTender(type=str(t["type"]), amount=_dec(t["amount"]))
            for t in data.get("tenders", [])
        ],
        lines=[
            DigestLine(
                line_id=str(x["line_id"]),
                sku=sale_lines.get(str(x["line_id"]), {}).get("sku"),
                category=sale_lines.get(str(x["line_id"]), {}).get("category"),
                quantity=int(x["quantity"]),
                amount=_dec(x["amount"]),
                tax=_dec(x.get("tax")),
            )
            for x in data.get("lines", [])
        ],
        status=status,
        processor_ref=row["processor_ref"],
        erp_ref=row["erp_ref"],
        created_at=_created(row),
        settled_at=decided_at if status == "settled" else None,
        erp_posted_at=decided_at if row["erp_ref"] else None,
        edited_by=None,
        approved_by=data.get("approved_by"),
        kind=data.get("kind", "receipt"),
    )


async def catalog_of(conn: AsyncConnection, sale_ids: set[str]) -> dict[str, dict[str, Any]]:
    """HQ's copies of these sales (online orders loaded with `hq orders load`)."""
    if not sale_ids:
        return {}
    query = select(orders.c.sale_id, orders.c.sale).where(orders.c.sale_id.in_(sorted(sale_ids)))
    return {str(k): json.loads(v) for k, v in (await conn.execute(query)).all()}


@dataclass(frozen=True)
class Period:
    from_: datetime
    to: datetime

    def holds(self, at: datetime) -> bool:
        return self.from_ <= at < self.to


async def digest_entries(
    conn: AsyncConnection, store_id: str, gateway_id: str, period: Period
) -> list[DigestEntry]:
    """Every refund HQ or its ERP holds for the gateway's store created in the period."""
    received_from = iso(period.from_ - CLOCK_SLACK)
    query = select(refunds).where(
        refunds.c.store_id == store_id,
        refunds.c.gateway_id == gateway_id,
        refunds.c.received_at >= received_from,
    )
    rows = [r for r in (await conn.execute(query)).mappings() if period.holds(_created(r))]
    # documents keep `created_at` as `iso` writes it, so the text compares as the time
    query = select(erp_documents).where(
        erp_documents.c.store_id == store_id,
        erp_documents.c.created_at >= iso(period.from_),
        erp_documents.c.created_at < iso(period.to),
    )
    docs = list((await conn.execute(query)).mappings())
    by_return: dict[str, list[Any]] = {}
    for d in docs:
        if d["return_id"] is not None:
            by_return.setdefault(d["return_id"], []).append(d)
    known = await _gateway_of(conn, set(by_return))
    sales = {str(json.loads(r["request"]).get("sale_id") or "") for r in rows} - {""}
    catalog = await catalog_of(conn, sales)
    entries: list[DigestEntry] = []
    for r in rows:
        held = by_return.get(r["return_id"], [])
        if any(d["presence"] == "dropped" for d in held):
            continue  # the integration lost it: HQ's digest does not list it
        if held:
            entries.extend(DigestEntry.model_validate_json(d["entry"]) for d in held)
        else:
            entries.append(entry_from_refund(r, catalog))
    for d in docs:
        if d["presence"] != "posted" or d["gateway_id"] not in (None, gateway_id):
            continue
        if d["return_id"] is not None and d["return_id"] in known:
            continue  # listed with its gateway refund above (or another gateway's)
        entries.append(DigestEntry.model_validate_json(d["entry"]))
    entries.sort(key=lambda e: (e.created_at, e.external_ref))
    return entries


def _created(row: Any) -> datetime:
    """When the gateway created the refund (its `refund.requested` data); when HQ received
    it, for a request that does not say."""
    created = json.loads(row["request"]).get("created_at")
    try:
        return parse_iso(str(created))
    except ValueError:
        return parse_iso(str(row["received_at"]))


async def _gateway_of(conn: AsyncConnection, return_ids: set[str]) -> dict[str, str]:
    if not return_ids:
        return {}
    query = select(refunds.c.return_id, refunds.c.gateway_id).where(
        refunds.c.return_id.in_(sorted(return_ids))
    )
    return {str(k): str(v) for k, v in (await conn.execute(query)).all()}


def split(entries: list[DigestEntry], period: Period, now: datetime) -> list[Digest]:
    """One digest, or several when there are more entries than one may list: the period is
    cut where `created_at` changes, so each entry lies in exactly one sub-period."""
    chunks: list[tuple[datetime, datetime, list[DigestEntry]]] = []
    start, rest = period.from_, entries
    while len(rest) > DIGEST_REFUNDS_MAX:
        cut = DIGEST_REFUNDS_MAX
        while cut > 0 and rest[cut].created_at == rest[cut - 1].created_at:
            cut -= 1
        if cut == 0:
            raise ValueError(
                f"more than {DIGEST_REFUNDS_MAX} refunds created at {rest[0].created_at}"
            )
        chunks.append((start, rest[cut].created_at, rest[:cut]))
        start, rest = rest[cut].created_at, rest[cut:]
    chunks.append((start, period.to, rest))
    return [
        Digest(digest_id=new_digest_id(now), from_=a, to=b, generated_at=now, refunds=part)
        for a, b, part in chunks
    ]


async def build_digests(
    conn: AsyncConnection, store_id: str, gateway_id: str, period: Period, now: datetime
) -> list[Digest]:
    """The digest(s) for one gateway and period."""
    return split(await digest_entries(conn, store_id, gateway_id, period), period, now)


async def record_digest(
    conn: AsyncConnection,
    digest: Digest,
    store_id: str,
    gateway_id: str,
    trigger: str,
    instance: str | None,
    slot: str | None = None,
) -> bool:
    """Note a digest as sent; False when another instance holds the same scheduled `slot`
    (it publishes that one, this instance does not)."""
    stmt = insert(conn, recon_digests).values(
        digest_id=digest.digest_id,
        store_id=store_id,
        gateway_id=gateway_id,
        period_from=iso(digest.from_),
        period_to=iso(digest.to),
        generated_at=iso(digest.generated_at),
        entries=len(digest.refunds),
        trigger=trigger,
        slot=slot,
        instance=instance,
    )
    done = await conn.execute(stmt.on_conflict_do_nothing().returning(recon_digests.c.digest_id))
    return done.first() is not None


async def known_gateways(conn: AsyncConnection) -> list[tuple[str, str]]:
    """Every gateway HQ has heard from: events (`streams`) or state (`gateways`)."""
    query = union(
        select(streams.c.store_id, streams.c.gateway_id),
        select(gateways.c.store_id, gateways.c.gateway_id),
    )
    return sorted((str(s), str(g)) for s, g in (await conn.execute(query)).all())


async def gateways_of_store(conn: AsyncConnection, store_id: str) -> list[str]:
    return [g for s, g in await known_gateways(conn) if s == store_id]


def daily_slot(now: datetime, hour_utc: int) -> datetime:
    """The latest scheduled run at or before `now` (`hour_utc`:00 UTC)."""
    at = now.astimezone(UTC).replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    return at if at <= now else at - timedelta(days=1)


def interval_slot(now: datetime, interval_s: float) -> datetime:
    """The latest multiple of `interval_s` since the epoch at or before `now`."""
    ts = now.timestamp()
    return datetime.fromtimestamp(ts - ts % interval_s, UTC)
