"""The simulated ERP and storefront, told to hold what a real one gets wrong: each mismatch
kind and each pattern of the reconciliation guide, planted in HQ's `erp_documents` so that
the next digest carries it.

Each injection changes exactly one thing and says what (`Planted`): the fields of one
digest entry (before, after), the entries it adds, or the refund it removes from the
digest. Differences on a gateway refund are planted on a settled one (the newest, unless
`return_id` names it), so that HQ settling it later does not change them again. The
process patterns add refunds the store never saw (source `register`, `customer_service`,
`distribution_center`, `storefront`); they go to the one gateway of the store HQ knows,
else to every gateway of the store.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.recon import (
    DigestEntry,
    DigestLine,
    DigestSource,
    DigestTender,
    MismatchKind,
    Pattern,
    RefundKind,
)
from edge.contract.timefmt import iso, utcnow
from edge.errors import EdgeError
from edge.hq.recon.digest import catalog_of, entry_from_refund, gateways_of_store
from edge.hq.tables import erp_documents, insert, refunds

Injection = Literal[
    "missing-at-hq",
    "unknown-to-store",
    "amount-mismatch",
    "currency-mismatch",
    "missing-reference",
    "status-mismatch",
    "duplicate",
    "api-sync-failure",
    "field-mapping",
    "rounding-drift",
    "promo-mismatch",
    "partial-sync",
    "async-gap",
    "register-bypass",
    "verbal-approval",
    "cross-team-handoff",
    "store-credit-loop",
]
INJECTIONS: tuple[Injection, ...] = get_args(Injection)

# what the gateway should report for each: the mismatch kind, and the pattern behind it.
# Some kinds imply their pattern (contract v1.1, seed 002): a refund the digest lost is an
# API sync failure, and so is a Return ID booked twice (a retried delivery); the same
# figure under another currency code is a field mapping; a refund booked without its sale
# or order is the partial sync. An arbitrary amount, a status both sides decided, and an
# ERP-only receipt carry none.
EXPECTED: dict[Injection, tuple[MismatchKind, Pattern | None]] = {
    "missing-at-hq": ("missing-at-hq", "api-sync-failure"),
    "unknown-to-store": ("unknown-to-store", None),
    "amount-mismatch": ("amount-mismatch", None),
    "currency-mismatch": ("currency-mismatch", "field-mapping"),
    "missing-reference": ("missing-reference", "partial-sync"),
    "status-mismatch": ("status-mismatch", None),
    "duplicate": ("duplicate", "api-sync-failure"),
    "api-sync-failure": ("missing-at-hq", "api-sync-failure"),
    "field-mapping": ("amount-mismatch", "field-mapping"),
    "rounding-drift": ("amount-mismatch", "rounding-drift"),
    "promo-mismatch": ("amount-mismatch", "promo-mismatch"),
    "partial-sync": ("missing-reference", "partial-sync"),
    "async-gap": ("status-mismatch", "async-gap"),
    "register-bypass": ("unknown-to-store", "register-bypass"),
    "verbal-approval": ("unknown-to-store", "verbal-approval"),
    "cross-team-handoff": ("unknown-to-store", "cross-team-handoff"),
    "store-credit-loop": ("unknown-to-store", "store-credit-loop"),
}

NOT_INJECTABLE = {
    "unconfirmed": (
        "`unconfirmed` is the gateway's checkpoint on refunds HQ never decides; HQ plants it"
        " by not answering: run `edge-gateway hq --failure-rate 1` (the simulated processor"
        " is always unavailable) and wait past the gateway's settle_within"
    )
}


class InjectError(EdgeError):
    """The injection cannot be planted as asked (no such refund, nothing to change)."""


@dataclass(frozen=True)
class InjectOptions:
    units: int = 1  # amount-mismatch: minor units added to the ERP's total (may be < 0)
    currency: str | None = None  # currency-mismatch: the ERP's currency (default: another)
    delay_h: float = 4.0  # async-gap: hours after the refund the ERP's batch posts it
    mapping: Literal["units", "tender"] = "units"  # field-mapping: amounts or tender type
    amount: Decimal = Decimal("25.00")  # refunds the store never saw: their total
    sale_id: str | None = None  # refunds the store never saw: the sale or order they name


@dataclass
class Planted:
    """What an injection changed, as the next digest shows it."""

    what: Injection
    kind: MismatchKind
    pattern: Pattern | None
    store_id: str
    gateway_id: str | None
    return_id: str | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # JSON form
    added: list[str] = field(default_factory=list)  # external refs of new entries
    removed: list[str] = field(default_factory=list)  # Return IDs no longer listed

    def as_dict(self) -> dict[str, Any]:
        return {
            "injected": self.what,
            "expected_kind": self.kind,
            "expected_pattern": self.pattern,
            "store_id": self.store_id,
            "gateway_id": self.gateway_id,
            "return_id": self.return_id,
            "changes": {k: {"before": a, "after": b} for k, (a, b) in self.changes.items()},
            "added": self.added,
            "removed": self.removed,
        }


async def inject(
    conn: AsyncConnection,
    what: str,
    store_id: str,
    *,
    gateway_id: str | None = None,
    return_id: str | None = None,
    options: InjectOptions | None = None,
    now: datetime,
) -> Planted:
    """Plant `what` for the store; returns exactly what changed."""
    if what in NOT_INJECTABLE:
        raise InjectError(NOT_INJECTABLE[what])
    if what not in INJECTIONS:
        raise InjectError(f"unknown injection {what!r}; one of: {', '.join(INJECTIONS)}")
    name: Injection = what
    opts = options or InjectOptions()
    kind, pattern = EXPECTED[name]
    planted = Planted(name, kind, pattern, store_id, gateway_id)
    if name in _ALTER:
        await _alter(conn, planted, return_id, opts)
    else:
        await _add(conn, planted, opts, now)
    return planted


# ---- differences on a gateway refund ---------------------------------------------------


def _unit(amount: Decimal) -> Decimal:
    """The currency's minor unit, as the amount is written ("19.99": 0.01, "1200": 1)."""
    exponent = amount.as_tuple().exponent
    return Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)


def _with(entry: DigestEntry, **changes: Any) -> DigestEntry:
    return DigestEntry.model_validate({**entry.model_dump(), **changes})


def _amount_mismatch(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    if opts.units == 0:
        raise InjectError("amount-mismatch needs a non-zero number of minor units")
    return _with(entry, total=entry.total + opts.units * _unit(entry.total))


def _currency_mismatch(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    other = opts.currency or ("EUR" if entry.currency != "EUR" else "USD")
    if other == entry.currency:
        raise InjectError(f"the refund is already in {other}")
    return _with(entry, currency=other)


def _missing_reference(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    if entry.sale_id is None and entry.order_id is None:
        raise InjectError(f"refund {entry.return_id} has no sale or order reference to drop")
    return _with(entry, sale_id=None, order_id=None)


def _partial_sync(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    """The guide's partial sync: the credit arrives without the order, the payment record
    and the line items."""
    if entry.sale_id is None and not entry.lines:
        raise InjectError(f"refund {entry.return_id} has no order reference or lines to drop")
    return _with(entry, sale_id=None, order_id=None, processor_ref=None, lines=[])


def _status_mismatch(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    return _with(entry, status="declined", settled_at=None)


def _async_gap(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    """The ERP takes refunds in a batch hours later: still pending there, posted then."""
    posted = entry.created_at + timedelta(hours=opts.delay_h)
    return _with(entry, status="pending", settled_at=None, erp_posted_at=posted)


def _rounding_drift(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    """The ERP rounds tax per unit (quantity * round(tax / quantity)) where the store
    rounded per line: the total differs by exactly the sum of those roundings."""
    unit = _unit(entry.total)
    lines, drift = [], Decimal(0)
    for line in entry.lines:
        per_unit = (line.tax / line.quantity).quantize(unit, rounding=ROUND_HALF_UP)
        tax = per_unit * line.quantity
        drift += tax - line.tax
        lines.append(line.model_copy(update={"tax": tax}))
    if not drift:
        raise InjectError(f"refund {entry.return_id}: per-unit tax rounds to the same total")
    return _with(
        entry,
        lines=[x.model_dump() for x in lines],
        tax=entry.tax + drift,
        total=entry.total + drift,
    )


def _promo_mismatch(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    """The integration sent the full item price without the promotion: the ERP credits the
    lines at full price, the total by exactly the refund's discount more."""
    discount = Decimal(str(_request(row).get("discount") or "0"))
    paid = sum((x.amount for x in entry.lines), Decimal(0))
    if not discount or not entry.lines or not paid:
        raise InjectError(f"refund {entry.return_id} has no discounted lines")
    unit = _unit(entry.total)
    shares = [(discount * x.amount / paid).quantize(unit, rounding=ROUND_DOWN) for x in entry.lines]
    shares[-1] += discount - sum(shares, Decimal(0))
    lines = [
        x.model_copy(update={"amount": x.amount + s}).model_dump()
        for x, s in zip(entry.lines, shares, strict=True)
    ]
    return _with(entry, lines=lines, total=entry.total + discount)


def _field_mapping(entry: DigestEntry, row: RowMapping, opts: InjectOptions) -> DigestEntry:
    """Amounts sent in minor units into a major-unit field (19.99 booked as 1999.00), or
    the tender type mapped to the wrong one."""
    if opts.mapping == "tender":
        if not entry.tenders:
            raise InjectError(f"refund {entry.return_id} has no tender to map wrong")
        swap = {"card": "cash", "cash": "card", "store_credit": "card"}
        first = entry.tenders[0]
        mapped = DigestTender(type=swap.get(first.type, "cash"), amount=first.amount)
        return _with(
            entry, tenders=[mapped.model_dump(), *(t.model_dump() for t in entry.tenders[1:])]
        )
    unit = _unit(entry.total)
    if unit == 1:
        raise InjectError(f"{entry.currency} has no minor unit to confuse with its major one")

    def minor(amount: Decimal) -> Decimal:
        return (amount / unit).quantize(unit)

    lines = [
        x.model_copy(update={"amount": minor(x.amount), "tax": minor(x.tax)}).model_dump()
        for x in entry.lines
    ]
    return _with(entry, total=minor(entry.total), tax=minor(entry.tax), lines=lines)


_ALTER = {
    "amount-mismatch": _amount_mismatch,
    "currency-mismatch": _currency_mismatch,
    "missing-reference": _missing_reference,
    "partial-sync": _partial_sync,
    "status-mismatch": _status_mismatch,
    "async-gap": _async_gap,
    "rounding-drift": _rounding_drift,
    "promo-mismatch": _promo_mismatch,
    "field-mapping": _field_mapping,
    "duplicate": None,
    "missing-at-hq": None,
    "api-sync-failure": None,
}


def _request(row: RowMapping) -> dict[str, Any]:
    data = json.loads(row["request"])
    return data if isinstance(data, dict) else {}


async def _candidates(
    conn: AsyncConnection, store_id: str, gateway_id: str | None, return_id: str | None
) -> list[RowMapping]:
    query = select(refunds).where(refunds.c.store_id == store_id)
    if gateway_id is not None:
        query = query.where(refunds.c.gateway_id == gateway_id)
    if return_id is not None:
        query = query.where(refunds.c.return_id == return_id)
    rows = list((await conn.execute(query.order_by(refunds.c.received_at.desc()))).mappings())
    if return_id is not None:
        if not rows:
            raise InjectError(f"HQ holds no refund {return_id} for store {store_id}")
        if rows[0]["status"] != "settled":
            raise InjectError(
                f"refund {return_id} is {rows[0]['status']} at HQ: plant differences on"
                " settled refunds, so settling it later does not change them"
            )
    rows = [r for r in rows if r["status"] == "settled"]
    if not rows:
        raise InjectError(f"HQ holds no settled refund for store {store_id} to plant it on")
    return rows


async def _docs_of(conn: AsyncConnection, return_id: str) -> list[RowMapping]:
    query = select(erp_documents).where(erp_documents.c.return_id == return_id)
    return list((await conn.execute(query)).mappings())


async def _base(conn: AsyncConnection, row: RowMapping) -> tuple[str, DigestEntry]:
    """The ERP's document for the refund and its entry: the one it holds, or a copy of
    HQ's record (the same entry the digest lists now)."""
    docs = await _docs_of(conn, row["return_id"])
    if len(docs) > 1 or any(d["presence"] != "posted" for d in docs):
        raise InjectError(f"refund {row['return_id']} already carries a planted difference")
    if docs:
        return str(docs[0]["doc_id"]), DigestEntry.model_validate_json(docs[0]["entry"])
    sale_id = _request(row).get("sale_id")
    catalog = await catalog_of(conn, {str(sale_id)} if sale_id else set())
    entry = entry_from_refund(row, catalog)
    return entry.external_ref, entry


async def _alter(
    conn: AsyncConnection, planted: Planted, return_id: str | None, opts: InjectOptions
) -> None:
    rows = await _candidates(conn, planted.store_id, planted.gateway_id, return_id)
    change = _ALTER[planted.what]
    failures: list[str] = []
    for row in rows:
        try:
            doc_id, base = await _base(conn, row)
        except InjectError as exc:
            if return_id is not None:
                raise
            failures.append(str(exc))
            continue
        planted.return_id, planted.gateway_id = row["return_id"], row["gateway_id"]
        if planted.what == "duplicate":
            await _put(conn, doc_id, base, planted, injected=None)
            copy = f"{base.external_ref}-DUP"
            await _put(conn, copy, _with(base, external_ref=copy, erp_ref=copy), planted)
            planted.added.append(copy)
            return
        if planted.what in ("missing-at-hq", "api-sync-failure"):
            await _put(conn, f"DROPPED-{row['return_id']}", base, planted, presence="dropped")
            planted.removed.append(row["return_id"])
            return
        assert change is not None
        try:
            after = change(base, row, opts)
        except InjectError as exc:
            if return_id is not None:
                raise
            failures.append(str(exc))
            continue
        before_json, after_json = base.model_dump(mode="json"), after.model_dump(mode="json")
        planted.changes = {
            k: (before_json[k], after_json[k])
            for k in after_json
            if before_json[k] != after_json[k]
        }
        await _put(conn, doc_id, after, planted)
        return
    raise InjectError(
        f"no settled refund of store {planted.store_id} takes {planted.what}: "
        + "; ".join(failures[:3])
    )


async def _put(
    conn: AsyncConnection,
    doc_id: str,
    entry: DigestEntry,
    planted: Planted,
    *,
    injected: str | None = "",
    presence: str = "posted",
) -> None:
    """Write (or rewrite) one ERP document."""
    values = {
        "doc_id": doc_id,
        "store_id": planted.store_id,
        "gateway_id": planted.gateway_id,
        "return_id": entry.return_id,
        "created_at": iso(entry.created_at),
        "presence": presence,
        "entry": entry.model_dump_json(by_alias=True),
        "injected": planted.what if injected == "" else injected,
        "recorded_at": iso(utcnow()),
    }
    stmt = insert(conn, erp_documents).values(**values)
    update = {k: v for k, v in values.items() if k not in ("doc_id", "recorded_at")}
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=[erp_documents.c.doc_id], set_=update)
    )


# ---- refunds the store never saw ---------------------------------------------------------

_PREFIX: dict[str, str] = {
    "erp": "ERP",
    "register": "POS",
    "customer_service": "CS",
    "distribution_center": "DC",
    "storefront": "SF",
}


async def _currency_of(conn: AsyncConnection, store_id: str) -> str:
    query = (
        select(refunds.c.currency)
        .where(refunds.c.store_id == store_id)
        .order_by(refunds.c.received_at.desc())
        .limit(1)
    )
    return str((await conn.execute(query)).scalar_one_or_none() or "USD")


def _erp_only(
    source: DigestSource,
    kind: RefundKind,
    *,
    currency: str,
    total: Decimal,
    now: datetime,
    sale_id: str | None,
    tender: str,
    order: bool = False,
    lines: bool = True,
    approved_by: str | None = None,
) -> DigestEntry:
    ref = f"{_PREFIX[source]}-{uuid.uuid4().hex[:12].upper()}"
    return DigestEntry(
        return_id=None,
        external_ref=ref,
        source=source,
        sale_id=sale_id,
        order_id=sale_id if order else None,
        currency=currency,
        total=total,
        tax=Decimal(0) * total,
        tenders=[DigestTender(type=tender, amount=total)],
        lines=[
            DigestLine(
                line_id="1", sku=None, category=None, quantity=1, amount=total, tax=0 * total
            )
        ]
        if lines
        else [],
        status="settled",
        processor_ref=None,
        erp_ref=ref if source == "erp" else None,
        created_at=now,
        settled_at=now,
        erp_posted_at=now if source == "erp" else None,
        edited_by=None,
        approved_by=approved_by,
        kind=kind,
    )


async def _add(conn: AsyncConnection, planted: Planted, opts: InjectOptions, now: datetime) -> None:
    if planted.gateway_id is None:
        known = await gateways_of_store(conn, planted.store_id)
        planted.gateway_id = known[0] if len(known) == 1 else None
    cur = opts.currency or await _currency_of(conn, planted.store_id)
    total = opts.amount
    order = f"WEB-{uuid.uuid4().hex[:8].upper()}"
    entries: list[DigestEntry]
    if planted.what == "unknown-to-store":
        entries = [
            _erp_only(
                "erp",
                "receipt",
                currency=cur,
                total=total,
                now=now,
                sale_id=opts.sale_id or order,
                tender="card",
                order=True,
            )
        ]
    elif planted.what == "register-bypass":
        # a cash refund at the register, outside the gateway: no Return ID, no approval
        entries = [
            _erp_only(
                "register",
                "cash",
                currency=cur,
                total=total,
                now=now,
                sale_id=opts.sale_id,
                tender="cash",
            )
        ]
    elif planted.what == "verbal-approval":
        # a goodwill credit approved by phone: no order reference, no approval on record
        entries = [
            _erp_only(
                "customer_service",
                "goodwill",
                currency=cur,
                total=total,
                now=now,
                sale_id=None,
                tender="card",
                lines=False,
            )
        ]
    elif planted.what == "cross-team-handoff":
        # an order fulfilled from the distribution center, returned there
        entries = [
            _erp_only(
                "distribution_center",
                "receipt",
                currency=cur,
                total=total,
                now=now,
                sale_id=opts.sale_id or order,
                tender="card",
                order=True,
            )
        ]
    else:  # store-credit-loop: credit issued by customer service, spent on an order that
        # is then refunded to the card: two refunds for one original problem
        entries = [
            _erp_only(
                "customer_service",
                "store_credit",
                currency=cur,
                total=total,
                now=now,
                sale_id=opts.sale_id or order,
                tender="store_credit",
                order=True,
                approved_by="cs-lead",
            ),
            _erp_only(
                "storefront",
                "receipt",
                currency=cur,
                total=total,
                now=now,
                sale_id=f"WEB-{uuid.uuid4().hex[:8].upper()}",
                tender="card",
                order=True,
            ),
        ]
    for entry in entries:
        await _put(conn, entry.external_ref, entry, planted)
        planted.added.append(entry.external_ref)
