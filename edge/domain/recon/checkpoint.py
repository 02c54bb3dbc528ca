"""The checkpoint: gateway refunds HQ has not settled or declined in time, without a digest.

The seed's cheapest fix: a check that runs 24 hours after every refund and flags anything
that has not synced. It reads the ledger alone, so it works while HQ sends no digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from edge.domain.recon.diagnose import diagnose
from edge.domain.recon.records import Finding, PriorMismatch, StoreRefund
from edge.domain.recon.stats import BaseRates


def unconfirmed(
    refunds: Sequence[StoreRefund],
    now: datetime,
    settle_within: timedelta,
    *,
    history: Sequence[PriorMismatch] = (),
    base_rates: BaseRates | None = None,
) -> list[Finding]:
    """Every refund still pending at HQ more than `settle_within` after it was made, each
    diagnosed. A refund HQ decided late is no longer open, so it is not reported.
    `refunds` also gives the base rates unless `base_rates` is passed."""
    late = [
        Finding(
            kind="unconfirmed",
            key=f"unconfirmed:{r.return_id}",
            return_id=r.return_id,
            external_ref=None,
            sale_id=r.reference,
            currency=r.currency,
            store_amount=r.total,
            hq_amount=None,
            delta=None,
            occurred_at=r.created_at,
            store=r,
            detail=f"pending {now - r.created_at} after it was made",
        )
        for r in refunds
        if r.hq_status == "pending" and now - r.created_at > settle_within
    ]
    return diagnose(
        late,
        store_refunds=refunds,
        history=history,
        settle_within=settle_within,
        base_rates=base_rates,
    )
