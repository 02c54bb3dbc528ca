"""Which of the contract's patterns a finding shows, from the data alone, and its fix steps.

Integration patterns (the systems talked past each other) come from the kind of mismatch
and, for amounts, from recomputation: `rounding-drift` and `promo-mismatch` are named only
when a rule reproduces HQ's figure to the minor unit (`recompute.explain`), `field-mapping`
only when a plain transform of the store's record gives HQ's (another currency code, a
factor of 10, 100 or 1000, a tender recorded under another type). Process patterns (a
person went around the workflow) come from who made the refund and how: a cash refund at a
register the gateway never saw (`register-bypass`), goodwill with no approval on record on
either side (`verbal-approval`), a distribution-center or customer-service refund the store
never saw (`cross-team-handoff`), store credit spent on a sale that was then refunded again
to a card or cash (`store-credit-loop`; the store's own refunds followed by the credit's
code or customer, HQ-only ones by amount).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from edge.contract.recon import IntegrationPattern, ProcessPattern
from edge.domain.money import fmt
from edge.domain.recon.recompute import Recomputation, evidence, explain
from edge.domain.recon.records import Finding, HqEntry, StoreRefund

PAID_OUT = frozenset({"card", "cash"})
SCALES = (Decimal(10), Decimal(100), Decimal(1000))


@dataclass(frozen=True, slots=True)
class Found:
    """A pattern (or none), the facts it rests on, and whether a transform of the store's
    record reproduces HQ's (None: nothing was recomputed)."""

    pattern: IntegrationPattern | ProcessPattern | None = None
    evidence: list[str] = field(default_factory=list)
    reproducible: bool | None = None


def _scaled(store: Decimal, hq: Decimal) -> Decimal | None:
    if store and hq:
        for k in SCALES:
            if hq == store * k or store == hq * k:
                return k
    return None


def _amount_pattern(f: Finding) -> Found:
    s, e = f.store, f.entry
    assert s is not None
    assert e is not None
    c = s.currency
    if f.detail == "total" and (k := _scaled(s.total, e.total)) is not None:
        return Found(
            "field-mapping",
            [
                f"HQ's total {fmt(e.total, c)} is the store's {fmt(s.total, c)} scaled by {k}: "
                "an amount mapped in the wrong unit (major vs minor)"
            ],
            True,
        )
    if f.detail.startswith("tender") and sorted(a for _, a in s.tenders) == sorted(
        a for _, a in e.tenders
    ):
        ours = ", ".join(f"{t} {fmt(a, c)}" for t, a in s.tenders)
        theirs = ", ".join(f"{t} {fmt(a, c)}" for t, a in e.tenders)
        return Found(
            "field-mapping",
            [f"same amounts under other tender types: store {ours}; HQ {theirs}"],
            True,
        )
    result: Recomputation = explain(s, e.total, e.tax)
    line = evidence(s, result, (e.total, e.tax))
    if result.alternative is not None:
        family = result.alternative.family
        return Found("rounding-drift" if family == "rounding" else "promo-mismatch", [line], True)
    return Found(None, [line], result.reproducible)


def integration_pattern(f: Finding) -> Found:
    s, e = f.store, f.entry
    if f.kind in ("unconfirmed", "missing-at-hq"):
        assert s is not None
        sent = (
            f"sent to HQ at {s.sent_at.isoformat()}"
            if s.sent_at
            else "made offline, not yet delivered to HQ"
            if s.offline
            else "no delivery to HQ on record"
        )
        held = (
            "HQ has not settled or declined it"
            if f.kind == "unconfirmed"
            else ("HQ's digest does not list it")
        )
        return Found("api-sync-failure", [f"refund {s.return_id} {sent}; {held}"])
    if f.kind == "currency-mismatch":
        assert s is not None
        assert e is not None
        same = s.total == e.total
        return Found(
            "field-mapping",
            [
                f"store holds {s.currency} {s.total:f}, HQ holds {e.currency} {e.total:f}"
                + (": the same figure under another currency code" if same else "")
            ],
            True if same else None,
        )
    if f.kind == "missing-reference":
        assert e is not None
        gone = "its sale/order reference" if f.detail == "reference" else "its lines"
        return Found("partial-sync", [f"HQ's {e.external_ref} arrived without {gone}"])
    if f.kind == "amount-mismatch":
        return _amount_pattern(f)
    if f.kind == "status-mismatch":
        assert s is not None
        assert e is not None
        text = f"store status {s.hq_status}, HQ status {e.status}"
        if "pending" in (s.hq_status, e.status):
            return Found("async-gap", [text + ": one side has not caught up with the other"])
        return Found(None, [text + ": both decided, differently"])
    if f.kind == "duplicate" and f.key.startswith("duplicate:units:"):
        return Found(None, [f.detail])
    if f.kind == "duplicate":
        return Found("api-sync-failure", [f"{f.detail}: a retried delivery recorded again"])
    return Found()


def credit_loops(refunds: Sequence[StoreRefund]) -> dict[str, str]:
    """return_id -> the loop it is part of: a refund that issued store credit, and a later
    refund, to a card or cash, of a sale paid with that credit. The credit is followed by
    its code; a sale whose store-credit code is unknown is tied to credit issued earlier to
    the same customer."""
    issued: dict[str, StoreRefund] = {}
    by_customer: dict[str, list[StoreRefund]] = defaultdict(list)
    for r in refunds:
        for code in r.store_credit_codes:
            issued[code] = r
        if r.customer_ref and (r.store_credit_codes or r.refund_to == "store_credit"):
            by_customer[r.customer_ref].append(r)
    loops: dict[str, str] = {}
    for r in refunds:
        if not PAID_OUT & {t for t, _ in r.tenders}:
            continue
        sources = [(c, issued[c]) for c in r.sale_credit_codes if c in issued]
        if not sources and "store_credit" in r.sale_tender_types and r.customer_ref:
            sources = [("(code unknown)", s) for s in by_customer.get(r.customer_ref, [])]
        for code, s in sources:
            if s.created_at >= r.created_at or s.return_id == r.return_id:
                continue
            out = "/".join(sorted(PAID_OUT & {t for t, _ in r.tenders}))
            text = (
                f"store credit {code} issued by refund {s.return_id} "
                f"({fmt(s.total, s.currency)}) paid for sale {r.sale_id}, which refund "
                f"{r.return_id} gave back again as {out} ({fmt(r.total, r.currency)})"
            )
            loops.setdefault(r.return_id, text)
            loops.setdefault(s.return_id, text)
    return loops


def _issues_credit(e: HqEntry) -> bool:
    return e.kind == "store_credit" or (
        bool(e.tenders) and all(t == "store_credit" for t, _ in e.tenders)
    )


def hq_credit_loops(entries: Sequence[HqEntry]) -> dict[str, str]:
    """external_ref -> the loop it is part of, among refunds only HQ holds (the seed's
    loop starts with customer service, outside the store): store credit issued, and a
    refund made at or after it, of another sale or order, paid out to a card or cash for
    the same amount. HQ's entries carry neither the credit's code nor the customer, so the
    amount ties them; the evidence says so."""
    credits = sorted((e for e in entries if _issues_credit(e)), key=lambda e: e.created_at)
    payouts = sorted(
        (e for e in entries if not _issues_credit(e) and PAID_OUT & {t for t, _ in e.tenders}),
        key=lambda e: e.created_at,
    )
    loops: dict[str, str] = {}
    for c in credits:
        for p in payouts:
            if (
                p.external_ref in loops
                or p.currency != c.currency
                or p.total != c.total
                or p.created_at < c.created_at
                or (p.reference is not None and p.reference == c.reference)
            ):
                continue
            out = "/".join(sorted(PAID_OUT & {t for t, _ in p.tenders}))
            text = (
                f"store credit {c.external_ref} ({fmt(c.total, c.currency)}) issued by "
                f"{c.source.replace('_', ' ')}, and refund {p.external_ref} of "
                f"{p.reference or 'no sale'} paid back as {out} for the same amount: two "
                "refunds for one problem (tied by amount: HQ records no credit code)"
            )
            loops[c.external_ref] = loops[p.external_ref] = text
            break
    return loops


def process_pattern(
    f: Finding, loops: dict[str, str], hq_loops: dict[str, str] | None = None
) -> Found:
    s, e = f.store, f.entry
    if s is not None and s.return_id in loops:
        return Found("store-credit-loop", [loops[s.return_id]])
    if s is None and e is not None and e.external_ref in (hq_loops or {}):
        return Found("store-credit-loop", [(hq_loops or {})[e.external_ref]])
    if e is not None and s is None and e.kind == "cash" and e.source == "register":
        return Found(
            "register-bypass",
            [
                f"HQ's {e.external_ref}: a cash refund of {fmt(e.total, e.currency)} keyed at a "
                "register, with no gateway record"
            ],
        )
    kinds = {x.kind for x in (s, e) if x is not None}
    if "goodwill" in kinds and all(x.approved_by is None for x in (s, e) if x is not None):
        who = e.external_ref if e else s.return_id if s else "?"
        return Found(
            "verbal-approval", [f"goodwill refund {who} with no approval on record on either side"]
        )
    if e is not None and s is None and e.source in ("distribution_center", "customer_service"):
        return Found(
            "cross-team-handoff",
            [
                f"HQ's {e.external_ref} was made by {e.source.replace('_', ' ')} "
                f"({fmt(e.total, e.currency)}); the store never saw it"
            ],
        )
    return Found()


# Fix steps per pattern; `{id}` is the refund's return_id or HQ's external ref.
FIXES: dict[str, list[str]] = {
    "api-sync-failure": [
        "Check the gateway's outbox and HQ's import log for {id}: delivered, acknowledged, "
        "rejected?",
        "Re-deliver {id} from the gateway's outbox (idempotent by return_id) and confirm "
        "HQ lists it",
        "Alert on any refund still unconfirmed after settle_within",
    ],
    "field-mapping": [
        "Audit the integration's refund field mapping (currency, amount units, tender type) "
        "against {id}",
        "Correct the mapping, then repost {id} at HQ from the gateway's record",
    ],
    "rounding-drift": [
        "Make the ERP import take the gateway's per-line amounts and tax as sent instead of "
        "recomputing them ({id})",
        "Post the rounding difference of {id} as an adjustment",
    ],
    "promo-mismatch": [
        "Send the discount allocation (line and order discount) with each refund line and map "
        "it in the ERP ({id})",
        "Correct {id} at HQ to the discounted amounts the customer paid",
    ],
    "partial-sync": [
        "Map the sale/order reference and the lines for refund events, not only for orders ({id})",
        "Re-link {id} at HQ to its original sale",
    ],
    "async-gap": [
        "Compare again after HQ's next batch import; alert only when {id} is still "
        "different past settle_within",
        "Shorten the ERP's import cycle or push the settlement on change",
    ],
    "register-bypass": [
        "Record {id} through the gateway (or post it at HQ with its sale) so the refund has "
        "a gateway record",
        "Make the register send every return through the gateway; no cash refund outside it",
    ],
    "verbal-approval": [
        "Record who approved {id}, and when",
        "Require an approval on record (PIN or badge) for every goodwill refund, whatever its size",
    ],
    "cross-team-handoff": [
        "Post {id} against its sale and tell the store",
        "Give the returns team the same refund workflow, through the gateway or HQ's API",
    ],
    "store-credit-loop": [
        "Tie the card/cash refund {id} to the original store credit and to the first "
        "problem it compensated",
        "Refund a sale paid with store credit back to store credit, or log the credit as a refund",
    ],
}
