"""Which original tenders a refund goes back to, and as what.

Original tenders are taken in the configured order, each capped at what it paid minus
what it already got back. A card comes back to the same payment token; cash as cash;
a gift card or store credit as new store credit (one code per refund).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from edge.domain.errors import InvalidRequest
from edge.domain.money import ZERO
from edge.domain.views import RefundTenderType

STORE_CREDIT_SOURCES = frozenset({"gift_card", "store_credit"})


@dataclass(frozen=True)
class OriginalTender:
    tender_id: str
    type: str
    amount: Decimal
    payment_token: str | None = None
    auth_code: str | None = None


@dataclass(frozen=True)
class TenderRefund:
    """One tender of a refund; `sources` says which original tenders it draws on."""

    type: RefundTenderType
    amount: Decimal
    sources: tuple[tuple[str, Decimal], ...]
    payment_token: str | None = None
    auth_code: str | None = None

    @property
    def tender_id(self) -> str | None:
        return self.sources[0][0] if len(self.sources) == 1 else None


def allocate_refund(
    total: Decimal,
    tenders: Sequence[OriginalTender],
    refunded: Mapping[str, Decimal],
    order: Sequence[str],
    refund_to: str,
) -> list[TenderRefund]:
    """Spread `total` over the original tenders; never beyond what any tender paid."""
    rank = {kind: i for i, kind in enumerate(order)}
    ranked = sorted(enumerate(tenders), key=lambda it: (rank.get(it[1].type, len(rank)), it[0]))
    remaining = total
    draws: list[tuple[OriginalTender, Decimal]] = []
    for _, tender in ranked:
        if remaining <= 0:
            break
        room = tender.amount - refunded.get(tender.tender_id, ZERO)
        take = min(room, remaining)
        if take > 0:
            draws.append((tender, take))
            remaining -= take
    if remaining > 0:
        raise InvalidRequest("the refund exceeds what the sale's tenders can give back", "lines")

    out: list[TenderRefund] = []
    credit_sources: list[tuple[str, Decimal]] = []
    credit_at: int | None = None
    for tender, take in draws:
        if refund_to == "store_credit" or tender.type in STORE_CREDIT_SOURCES:
            if credit_at is None:
                credit_at = len(out)
            credit_sources.append((tender.tender_id, take))
        elif tender.type == "card":
            out.append(
                TenderRefund(
                    type="card",
                    amount=take,
                    sources=((tender.tender_id, take),),
                    payment_token=tender.payment_token,
                    auth_code=tender.auth_code,
                )
            )
        else:
            out.append(TenderRefund(type="cash", amount=take, sources=((tender.tender_id, take),)))
    if credit_sources and credit_at is not None:
        credit = TenderRefund(
            type="store_credit",
            amount=sum((amt for _, amt in credit_sources), ZERO),
            sources=tuple(credit_sources),
        )
        out.insert(credit_at, credit)
    return out
