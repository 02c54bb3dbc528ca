"""Properties of matching: a digest made from the ledger yields nothing, and every planted
difference is found exactly once, with the right kind; the checkpoint finds exactly the
refunds still pending past settle_within."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.contract.recon import MismatchKind
from edge.domain.money import from_minor
from edge.domain.recon import HqEntry, StoreRefund, mismatch_to_wire, summarize, unconfirmed
from tests.recon.test_domain_builders import NOW, SETTLE, T0, entry_of, hq_only, sale_refund
from tests.recon.test_domain_kinds import run

# operator -> the kind it must produce (None: a benign change that must produce nothing)
OPERATORS: dict[str, MismatchKind | None] = {
    "drop": "missing-at-hq",
    "unknown": "unknown-to-store",
    "amount": "amount-mismatch",
    "currency": "currency-mismatch",
    "drop-reference": "missing-reference",
    "duplicate": "duplicate",
    "flip-status": "status-mismatch",
    "strip-return-id": None,
}


@st.composite
def ledgers(draw: st.DrawFn) -> list[StoreRefund]:
    out = []
    for i in range(draw(st.integers(1, 25))):
        sold = draw(st.integers(1, 4))
        unit = from_minor(draw(st.integers(100, 50_000)), "USD")
        tax = from_minor(draw(st.integers(0, 4_000)), "USD")
        out.append(
            sale_refund(
                f"R-{i}",
                lines=((sold, str(unit), "0", str(tax), draw(st.integers(1, sold)), "cat"),),
                created_at=T0
                + timedelta(minutes=draw(st.integers(0, 2_000))),  # all past the checkpoint
                channel=draw(st.sampled_from(["store", "online"])),
                customer_ref=draw(st.sampled_from([None, "C-1", "C-2"])),
            )
        )
    return out


def plant(
    op: str, r: StoreRefund, n: int, k: int
) -> tuple[list[HqEntry], tuple[MismatchKind, str] | None]:
    e = entry_of(r)
    kind = OPERATORS[op]
    planted = (kind, r.return_id) if kind else None
    if op == "drop":
        return [], planted
    if op == "unknown":
        extra = hq_only(f"ERP-{n}", "1.23", return_id=f"R-UNK-{n}", source="gateway")
        return [e, extra], ("unknown-to-store", f"R-UNK-{n}")
    if op == "amount":
        return [replace(e, total=e.total + from_minor(k, "USD"))], planted
    if op == "currency":
        return [replace(e, currency="EUR")], planted
    if op == "drop-reference":
        return [replace(e, sale_id=None, order_id=None, lines=())], planted
    if op == "duplicate":
        return [e, replace(e, external_ref=f"{e.external_ref}-again")], planted
    if op == "flip-status":
        return [replace(e, status="declined", settled_at=None)], planted
    return [replace(e, return_id=None)], None  # strip-return-id


@settings(max_examples=200, deadline=None)
@given(ledgers(), st.data())
def test_every_planted_difference_is_found_exactly_once(
    store: list[StoreRefund], data: st.DataObject
) -> None:
    assert run(store, [entry_of(r) for r in store]) == []
    ops = data.draw(st.lists(st.sampled_from(list(OPERATORS)), max_size=len(store)))
    k = data.draw(st.integers(-500, 500).filter(bool))
    entries: list[HqEntry] = []
    planted: Counter[tuple[MismatchKind, str]] = Counter()
    for n, r in enumerate(store):
        if n < len(ops):
            got, mark = plant(ops[n], r, n, k)
            entries += got
            if mark:
                planted[mark] += 1
        else:
            entries.append(entry_of(r))
    entries = data.draw(st.permutations(entries))
    found = run(store, entries)
    assert Counter((f.kind, f.return_id or f.external_ref or "") for f in found) == planted
    assert len({f.key for f in found}) == len(found)
    summary = summarize(found)
    assert sum(summary.by_kind.values()) == len(found)
    for i, f in enumerate(found):
        wire = mismatch_to_wire(f, mismatch_id=f"M-{i}", detected_at=NOW, now=NOW)
        assert (wire.kind, wire.delta, wire.diagnosis.class_) == (
            f.kind,
            f.delta,
            f.diagnosis.class_,
        )
        assert wire.diagnosis.evidence, "every diagnosis rests on facts"
        assert wire.diagnosis.fix_sequence


@settings(max_examples=100, deadline=None)
@given(ledgers(), st.data())
def test_the_checkpoint_finds_exactly_the_late_pending_refunds(
    store: list[StoreRefund], data: st.DataObject
) -> None:
    pending = data.draw(st.lists(st.booleans(), min_size=len(store), max_size=len(store)))
    ages = data.draw(st.lists(st.integers(0, 72), min_size=len(store), max_size=len(store)))
    refunds = [
        replace(r, hq_status="pending" if p else "settled", created_at=NOW - timedelta(hours=h))
        for r, p, h in zip(store, pending, ages, strict=True)
    ]
    found = unconfirmed(refunds, NOW, SETTLE)
    expect = {r.return_id for r, p, h in zip(refunds, pending, ages, strict=True) if p and h > 24}
    assert {f.return_id for f in found} == expect
    assert all(f.kind == "unconfirmed" for f in found)
    assert all(f.store_amount is not None and f.store_amount > Decimal(0) for f in found)
