"""Approval and offline rules, kept apart from I/O so every branch is testable."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal


def needs_approval(
    kind: str, currency: str, total: Decimal, thresholds: Mapping[str, Decimal]
) -> bool:
    """No-receipt and goodwill refunds always; receipt refunds above the currency's threshold.

    A currency with no threshold configured always needs approval: an unknown amount scale
    must not slip through unapproved.
    """
    if kind != "receipt":
        return True
    limit = thresholds.get(currency)
    return limit is None or total > limit


def offline_card_refusal(
    card_amount: Decimal,
    pending_card_total: Decimal,
    currency: str,
    per_refund: Mapping[str, Decimal],
    pending_cap: Mapping[str, Decimal],
) -> str | None:
    """Why a card refund may not go ahead while HQ cannot confirm it, or None if it may."""
    if card_amount <= 0:
        return None
    limit = per_refund.get(currency)
    if limit is None:
        return f"no offline card refund limit is configured for {currency}"
    if card_amount > limit:
        return f"card refund {card_amount} exceeds the offline per-refund limit {limit}"
    cap = pending_cap.get(currency)
    if cap is None:
        return f"no offline pending limit is configured for {currency}"
    if pending_card_total + card_amount > cap:
        return f"pending offline card refunds would exceed {cap} {currency}"
    return None
