"""Match the ledger's refunds with HQ's digest and find every difference, once.

Matching, in three passes over dicts (O(n)):

1. by `return_id`: an entry that names a gateway refund is that refund. A `return_id` listed
   more than once is one `duplicate` (the entry most like the store's is the match).
2. an entry without `return_id` but with a sale or order reference: the unmatched store
   refund of that sale or order with the same currency and total, created within
   `MATCH_WINDOW` of it (the closest in time). The window is 4 hours: an ERP that imports on
   a batch cycle stamps its own `created_at`, up to one cycle after the refund.
3. an entry without `return_id` or reference: the unmatched store refund with the same
   currency and total within the same window, the closest in time.

Then, for each pair, at most one finding of each kind and never two for one cause: a
currency mismatch is not also an amount mismatch; a missing reference is reported once even
if lines are missing too. An entry that refunds units of a sale line the store already
refunded in full is a `duplicate`, not also `unknown-to-store`. `status-mismatch` is only
reported past the checkpoint (`settle_within` after the refund), when one side has decided
(settled or declined) and the other holds another status.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from edge.contract.recon import MismatchKind
from edge.domain.money import ZERO
from edge.domain.recon.diagnose import diagnose
from edge.domain.recon.records import Finding, HqEntry, PriorMismatch, StoreRefund
from edge.domain.recon.stats import BaseRates

MATCH_WINDOW = timedelta(hours=4)


def entry_key(entry: HqEntry) -> str:
    return entry.return_id or f"ext:{entry.external_ref}"


def _finding(
    kind: MismatchKind,
    store: StoreRefund | None,
    entry: HqEntry | None,
    *,
    key: str | None = None,
    amounts: tuple[Decimal | None, Decimal | None] | None = None,
    detail: str = "",
) -> Finding:
    if store is not None:
        ident, currency, occurred = store.return_id, store.currency, store.created_at
    else:
        assert entry is not None  # a finding has at least one side
        ident, currency, occurred = entry_key(entry), entry.currency, entry.created_at
    s_amt, h_amt = amounts or (
        store.total if store else None,
        entry.total if entry else None,
    )
    same_currency = store is None or entry is None or store.currency == entry.currency
    delta = h_amt - s_amt if s_amt is not None and h_amt is not None and same_currency else None
    return Finding(
        kind=kind,
        key=key or f"{kind}:{ident}",
        return_id=store.return_id if store else entry.return_id if entry else None,
        external_ref=entry.external_ref if entry else None,
        sale_id=(store.reference if store else None) or (entry.reference if entry else None),
        currency=currency,
        store_amount=s_amt,
        hq_amount=h_amt,
        delta=delta,
        occurred_at=occurred,
        store=store,
        entry=entry,
        detail=detail,
    )


def _tender_sums(tenders: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for kind, amount in tenders:
        sums[kind] += amount
    return {k: v for k, v in sums.items() if v}


def _amount_finding(store: StoreRefund, entry: HqEntry) -> Finding | None:
    if entry.total != store.total:
        return _finding("amount-mismatch", store, entry, detail="total")
    if entry.tax != store.tax:
        return _finding(
            "amount-mismatch", store, entry, amounts=(store.tax, entry.tax), detail="tax"
        )
    ours, theirs = _tender_sums(store.tenders), _tender_sums(entry.tenders)
    if ours != theirs:
        kind = min(set(ours) ^ set(theirs) or {k for k in ours if ours[k] != theirs.get(k)})
        return _finding(
            "amount-mismatch",
            store,
            entry,
            amounts=(ours.get(kind, ZERO), theirs.get(kind, ZERO)),
            detail=f"tender {kind}",
        )
    return None


def compare_pair(
    store: StoreRefund, entry: HqEntry, *, now: datetime, settle_within: timedelta
) -> list[Finding]:
    """What differs between one store refund and the entry that matched it."""
    found: list[Finding] = []
    if entry.currency != store.currency:
        found.append(_finding("currency-mismatch", store, entry))
    elif (amount := _amount_finding(store, entry)) is not None:
        found.append(amount)
    if (store.reference and not entry.reference) or (store.lines and not entry.lines):
        what = "reference" if store.reference and not entry.reference else "lines"
        found.append(_finding("missing-reference", store, entry, detail=what))
    statuses = {store.hq_status, entry.status}
    if (
        len(statuses) == 2
        and statuses & {"settled", "declined"}
        and now - store.created_at > settle_within
    ):
        found.append(_finding("status-mismatch", store, entry, detail="status"))
    return found


class _Pool:
    """Unmatched store refunds, looked up by (reference, currency, total) or
    (currency, total); a refund claimed by one entry is gone from both."""

    def __init__(self, refunds: Iterable[StoreRefund]) -> None:
        self.by_ref: dict[tuple[str, str, Decimal], list[StoreRefund]] = defaultdict(list)
        self.by_amount: dict[tuple[str, Decimal], list[StoreRefund]] = defaultdict(list)
        self.taken: set[str] = set()
        for r in refunds:
            for ref in {r.sale_id, r.order_id} - {None}:
                assert ref is not None
                self.by_ref[(ref, r.currency, r.total)].append(r)
            self.by_amount[(r.currency, r.total)].append(r)

    def claim(self, entry: HqEntry) -> StoreRefund | None:
        if entry.reference is not None:
            candidates: list[StoreRefund] = []
            for ref in {entry.sale_id, entry.order_id} - {None}:
                assert ref is not None
                candidates += self.by_ref.get((ref, entry.currency, entry.total), [])
        else:
            candidates = self.by_amount.get((entry.currency, entry.total), [])
        best: StoreRefund | None = None
        for r in candidates:
            gap = abs(r.created_at - entry.created_at)
            if r.return_id in self.taken or gap > MATCH_WINDOW:
                continue
            if best is None or gap < abs(best.created_at - entry.created_at):
                best = r
        if best is not None:
            self.taken.add(best.return_id)
        return best


Units = dict[tuple[str, str], list[tuple[datetime, int, StoreRefund | HqEntry]]]


def _units(
    store_refunds: Sequence[StoreRefund],
    orphans: Sequence[HqEntry],
    sold: dict[tuple[str, str], int],
) -> Units:
    """Units refunded per (sale or order, line), by the store and by HQ-only entries."""
    units: Units = defaultdict(list)
    for r in store_refunds:
        for ln in r.lines if r.reference is not None else ():
            assert r.reference is not None
            sold.setdefault((r.reference, ln.line_id), ln.sold.quantity)
            units[(r.reference, ln.line_id)].append((r.created_at, ln.quantity, r))
    for e in orphans:
        for hl in e.lines if e.reference is not None else ():
            assert e.reference is not None
            if (e.reference, hl.line_id) in sold:
                units[(e.reference, hl.line_id)].append((e.created_at, hl.quantity, e))
    return units


def _over_refunds(
    store_refunds: Sequence[StoreRefund],
    orphans: Sequence[HqEntry],
    sold_units: Mapping[tuple[str, str], int],
) -> tuple[list[Finding], set[str]]:
    """`duplicate` findings for refunds of more units of a sale line than were sold, store
    and HQ-only refunds together; and the external refs of HQ entries so reported. When an
    HQ-only entry takes part, it is the extra refund; else the store's latest one is."""
    sold: dict[tuple[str, str], int] = dict(sold_units)
    findings: list[Finding] = []
    flagged: set[str] = set()
    for line_key, parts in _units(store_refunds, orphans, sold).items():
        total = sum(q for _, q, _ in parts)
        if total <= sold[line_key]:
            continue
        detail = f"line {line_key[1]}: {total} units refunded of {sold[line_key]} sold"
        hq_only: list[StoreRefund | HqEntry] = [p for _, _, p in parts if isinstance(p, HqEntry)]
        guilty = hq_only or [max(parts, key=lambda p: p[0])[2]]
        for p in guilty:
            ident = p.external_ref if isinstance(p, HqEntry) else p.return_id
            if ident not in flagged:
                flagged.add(ident)
                store, entry = (None, p) if isinstance(p, HqEntry) else (p, None)
                findings.append(
                    _finding(
                        "duplicate", store, entry, key=f"duplicate:units:{ident}", detail=detail
                    )
                )
    return findings, {f.external_ref for f in findings if f.external_ref}


def _by_return_id(
    grouped: Mapping[str, list[HqEntry]], by_rid: Mapping[str, StoreRefund]
) -> tuple[list[tuple[StoreRefund, HqEntry]], list[HqEntry], list[Finding]]:
    """Pairs, HQ-only entries and `duplicate` findings of the entries with a return_id."""
    pairs: list[tuple[StoreRefund, HqEntry]] = []
    orphans: list[HqEntry] = []
    findings: list[Finding] = []
    for rid, group in grouped.items():
        store = by_rid.get(rid)
        first = _pick(store, group) if store else group[0]
        if store is not None:
            pairs.append((store, first))
        else:
            orphans.append(first)
        if len(group) > 1:
            refs = ", ".join(e.external_ref for e in group if e is not first)
            findings.append(
                _finding(
                    "duplicate",
                    store,
                    first,
                    key=f"duplicate:{rid}",
                    amounts=(
                        store.total if store else first.total,
                        sum((e.total for e in group), ZERO),
                    ),
                    detail=f"return {rid} listed {len(group)} times (also as {refs})",
                )
            )
    return pairs, orphans, findings


def _pick(store: StoreRefund, entries: list[HqEntry]) -> HqEntry:
    """Of entries sharing a return_id, the one most like the store's refund."""
    for e in entries:
        if e.currency == store.currency and e.total == store.total:
            return e
    return entries[0]


def match(
    store_refunds: Sequence[StoreRefund],
    entries: Sequence[HqEntry],
    *,
    period_from: datetime,
    period_to: datetime,
    now: datetime,
    settle_within: timedelta,
    sold_units: Mapping[tuple[str, str], int] | None = None,
) -> tuple[list[Finding], int]:
    """Every difference between the two sides, undiagnosed; and how many refunds matched
    with no difference at all (the report's `matched`)."""
    by_rid = {r.return_id: r for r in store_refunds}
    grouped: dict[str, list[HqEntry]] = defaultdict(list)
    loose: list[HqEntry] = []
    for e in entries:
        if e.return_id is not None:
            grouped[e.return_id].append(e)
        else:
            loose.append(e)
    pairs, orphans, findings = _by_return_id(grouped, by_rid)
    pool = _Pool(r for r in store_refunds if r.return_id not in grouped)
    # Referenced entries first: they are the surer matches.
    for e in sorted(loose, key=lambda x: x.reference is None):
        store = pool.claim(e)
        if store is not None:
            pairs.append((store, e))
        else:
            orphans.append(e)
    matched = 0
    for store, e in pairs:
        found = compare_pair(store, e, now=now, settle_within=settle_within)
        findings += found
        matched += not found
    seen = set(grouped) | pool.taken
    for r in store_refunds:
        if r.return_id not in seen and period_from <= r.created_at < period_to:
            findings.append(_finding("missing-at-hq", r, None))
    over, over_refs = _over_refunds(store_refunds, orphans, sold_units or {})
    findings += over
    findings += [
        _finding("unknown-to-store", None, e) for e in orphans if e.external_ref not in over_refs
    ]
    return findings, matched


def compare(
    store_refunds: Sequence[StoreRefund],
    entries: Sequence[HqEntry],
    *,
    period_from: datetime,
    period_to: datetime,
    now: datetime,
    settle_within: timedelta,
    history: Sequence[PriorMismatch] = (),
    base_rates: BaseRates | None = None,
    sold_units: Mapping[tuple[str, str], int] | None = None,
) -> list[Finding]:
    """Every mismatch between the ledger and a digest for [period_from, period_to), each
    diagnosed. `store_refunds` should hold the period's refunds (and may hold earlier ones:
    they are matched by `return_id` but never reported missing); `sold_units` adds sale
    line quantities the refunds do not carry ((sale or order id, line id) -> units sold).
    `base_rates` defaults to those of `store_refunds`."""
    findings, _ = match(
        store_refunds,
        entries,
        period_from=period_from,
        period_to=period_to,
        now=now,
        settle_within=settle_within,
        sold_units=sold_units,
    )
    return diagnose(
        findings,
        store_refunds=store_refunds,
        history=history,
        settle_within=settle_within,
        base_rates=base_rates,
    )
