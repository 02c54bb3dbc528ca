"""One scenario per mismatch kind: the kind, the class, the pattern and the five answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from edge.contract.recon import DigestEntry, Mismatch
from edge.domain.recon import (
    Finding,
    HqEntry,
    PriorMismatch,
    StoreRefund,
    compare,
    entry_from_wire,
    mismatch_to_wire,
    summarize,
    unconfirmed,
)
from tests.recon.test_domain_builders import (
    NOW,
    PERIOD_FROM,
    PERIOD_TO,
    SETTLE,
    T0,
    entry_of,
    hq_only,
    sale_refund,
    unlinked_refund,
)


def run(
    store: Sequence[StoreRefund],
    entries: Sequence[HqEntry],
    history: Sequence[PriorMismatch] = (),
) -> list[Finding]:
    return compare(
        store,
        entries,
        period_from=PERIOD_FROM,
        period_to=PERIOD_TO,
        now=NOW,
        settle_within=SETTLE,
        history=history,
    )


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [(f.kind, f.key) for f in findings]
    return findings[0]


def answers(f: Finding) -> tuple[bool | None, ...]:
    a = f.diagnosis.answers
    return (a["repeats"], a["manual_touch"], a["concentrated"], a["delayed"], a["reproducible"])


def test_a_digest_that_agrees_yields_nothing() -> None:
    store = [sale_refund("R-1"), unlinked_refund("R-2", "25.00")]
    assert run(store, [entry_of(r) for r in store]) == []


def test_unconfirmed_is_a_refund_still_pending_past_settle_within() -> None:
    late = sale_refund("R-1", hq_status="pending", decided_at=None)
    fresh = sale_refund("R-2", hq_status="pending", decided_at=None, created_at=NOW)
    decided = sale_refund("R-3")
    f = only(unconfirmed([late, fresh, decided], NOW, SETTLE))
    assert (f.kind, f.key, f.return_id, f.store_amount) == (
        "unconfirmed",
        "unconfirmed:R-1",
        "R-1",
        Decimal("21.59"),
    )
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "api-sync-failure")
    # one finding, no history: nothing to repeat; HQ's side of it is unknown; sent at once
    assert answers(f) == (None, None, None, False, None)
    assert "sent to HQ at" in f.diagnosis.evidence[1]
    assert f.diagnosis.fix_sequence[0].startswith("Check the gateway's outbox")


def test_missing_at_hq_made_offline_is_a_delayed_sync_failure() -> None:
    r = sale_refund("R-1", offline=True, sent_at=None)
    other = sale_refund("R-2")
    early = sale_refund("R-0", created_at=PERIOD_FROM - timedelta(hours=1))
    f = only(run([r, other, early], [entry_of(other)]))
    assert (f.kind, f.return_id, f.hq_amount, f.delta) == ("missing-at-hq", "R-1", None, None)
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "api-sync-failure")
    assert answers(f) == (None, None, None, True, None)
    assert any("made offline" in e for e in f.diagnosis.evidence)


def test_unknown_to_store_from_the_erp_with_nothing_to_go_on_is_undetermined() -> None:
    e = hq_only("ERP-9", "12.00", sale_id="S-404")
    f = only(run([], [e]))
    assert (f.kind, f.key, f.return_id, f.external_ref) == (
        "unknown-to-store",
        "unknown-to-store:ext:ERP-9",
        None,
        "ERP-9",
    )
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("undetermined", None)
    assert answers(f) == (None, None, None, False, None)


def test_an_amount_no_rule_reproduces_is_not_drift() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, total=r.total + Decimal("0.03"))]))
    assert (f.kind, f.store_amount, f.hq_amount, f.delta) == (
        "amount-mismatch",
        Decimal("21.59"),
        Decimal("21.62"),
        Decimal("0.03"),
    )
    assert f.diagnosis.pattern is None
    # untouched on both sides (integration), at once and not reproducible (process)
    assert answers(f) == (None, False, None, False, False)
    assert f.diagnosis.class_ == "undetermined"
    assert any("no rounding or discount rule" in e for e in f.diagnosis.evidence)


def test_a_tax_difference_is_an_amount_mismatch_on_the_tax() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, tax=r.tax + Decimal("0.01"))]))
    assert (f.kind, f.detail, f.store_amount, f.delta) == (
        "amount-mismatch",
        "tax",
        Decimal("1.60"),
        Decimal("0.01"),
    )


def test_currency_mismatch_is_field_mapping_and_not_also_an_amount_mismatch() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, currency="EUR")]))
    assert (f.kind, f.currency, f.delta) == ("currency-mismatch", "USD", None)
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "field-mapping")
    assert answers(f) == (None, False, None, False, True)
    assert "EUR 21.59" in f.diagnosis.evidence[1]


def test_missing_reference_is_a_partial_sync() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, sale_id=None, lines=())]))
    assert (f.kind, f.detail, f.sale_id) == ("missing-reference", "reference", r.sale_id)
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "partial-sync")
    assert answers(f) == (None, False, None, False, None)


def test_missing_lines_alone_is_a_missing_reference() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, lines=())]))
    assert (f.kind, f.detail) == ("missing-reference", "lines")


def test_status_pending_at_hq_past_the_checkpoint_is_an_async_gap() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, status="pending", settled_at=None, erp_posted_at=None)]))
    assert (f.kind, f.delta) == ("status-mismatch", Decimal(0))
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "async-gap")
    assert answers(f) == (None, False, None, True, None)


def test_status_differences_before_the_checkpoint_are_in_flight() -> None:
    r = sale_refund("R-1", created_at=NOW - timedelta(hours=2))
    assert run([r], [entry_of(r, status="pending", settled_at=None)]) == []


def test_settled_against_declined_has_no_pattern_and_is_voted() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, status="declined", settled_at=None)]))
    assert (f.kind, f.diagnosis.pattern) == ("status-mismatch", None)
    # untouched (integration), HQ posted at once (process): no lead, undetermined
    assert answers(f) == (None, False, None, False, None)
    assert f.diagnosis.class_ == "undetermined"


def test_the_same_return_id_twice_is_one_duplicate() -> None:
    r = sale_refund("R-1")
    twice = entry_of(r, external_ref="HQ-R-1-retry")
    f = only(run([r], [entry_of(r), twice]))
    assert (f.kind, f.key, f.store_amount, f.hq_amount, f.delta) == (
        "duplicate",
        "duplicate:R-1",
        r.total,
        2 * r.total,
        r.total,
    )
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "api-sync-failure")
    assert "HQ-R-1-retry" in f.diagnosis.evidence[0]


def test_more_units_refunded_than_sold_is_a_duplicate_and_not_also_unknown() -> None:
    r = sale_refund("R-1", lines=((2, "10.00", "0", "1.60", 2, "toys"),))
    cash = hq_only(
        "POS-77",
        "10.80",
        source="register",
        kind="cash",
        sale_id=r.sale_id,
        lines=(replace(entry_of(r).lines[0], quantity=1),),
    )
    f = only(run([r], [entry_of(r), cash]))
    assert (f.kind, f.external_ref, f.return_id) == ("duplicate", "POS-77", None)
    assert f.detail == "line 1: 3 units refunded of 2 sold"
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("process", "register-bypass")


def test_a_loose_entry_matches_its_refund_by_sale_amount_and_time() -> None:
    r = sale_refund("R-1", lines=((2, "10.00", "0", "1.60", 1, "toys"),))
    near = entry_of(r, return_id=None, created_at=r.created_at + timedelta(hours=3))
    assert run([r], [near]) == []
    far = entry_of(r, return_id=None, created_at=r.created_at + timedelta(hours=5))
    assert sorted(f.kind for f in run([r], [far])) == ["missing-at-hq", "unknown-to-store"]
    # outside the window, an entry for a line already refunded in full refunds it twice
    whole = sale_refund("R-2")
    far = entry_of(whole, return_id=None, created_at=whole.created_at + timedelta(hours=5))
    assert sorted(f.kind for f in run([whole], [far])) == ["duplicate", "missing-at-hq"]


def test_a_loose_entry_without_reference_matches_by_amount_and_is_missing_reference() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, return_id=None, sale_id=None)]))
    assert (f.kind, f.return_id, f.external_ref) == ("missing-reference", "R-1", "HQ-R-1")


def test_repeats_for_the_same_customer_in_history() -> None:
    r = sale_refund("R-1", customer_ref="C-9", hq_status="pending", decided_at=None)
    prior = PriorMismatch(
        key="unconfirmed:R-0",
        kind="unconfirmed",
        pattern="api-sync-failure",
        detected_at=T0 - timedelta(days=10),
        customer_ref="C-9",
        resolved_at=T0 - timedelta(days=9),
    )
    f = only(unconfirmed([r], NOW, SETTLE, history=[prior]))
    assert f.diagnosis.answers["repeats"] is True
    assert any("same customer C-9" in e for e in f.diagnosis.evidence)
    # itself found before is the same mismatch, not a repeat
    same = replace(prior, key="unconfirmed:R-1", customer_ref="C-9")
    refound = only(unconfirmed([r], NOW, SETTLE, history=[same]))
    assert refound.diagnosis.answers["repeats"] is False
    # another pattern for the same customer is another problem
    other = replace(prior, pattern="field-mapping")
    unlike = only(unconfirmed([r], NOW, SETTLE, history=[other]))
    assert unlike.diagnosis.answers["repeats"] is False


def test_concentrated_only_far_above_the_base_rate() -> None:
    cats = ["shoes", "toys", "books", "tools"]
    store = [
        sale_refund(f"R-{c}-{i}", lines=((1, "20.00", "0", "1.60", 1, c),))
        for c in cats
        for i in range(2)
    ]
    dropped = {f"R-{c}-0" for c in cats}
    spread = run(store, [entry_of(r) for r in store if r.return_id not in dropped])
    assert len(spread) == 4
    assert {f.diagnosis.answers["concentrated"] for f in spread} == {False}
    shoes = [
        sale_refund(f"R-shoes-{i}", lines=((1, "20.00", "0", "1.60", 1, "shoes"),))
        for i in range(2, 5)
    ]
    store += shoes
    hot = run(store, [entry_of(r) for r in store if r not in shoes])
    assert len(hot) == 3
    assert {f.diagnosis.answers["concentrated"] for f in hot} == {True}
    assert any("category:shoes" in e for e in hot[0].diagnosis.evidence)


def test_delayed_when_hq_posted_it_hours_later() -> None:
    r = sale_refund("R-1")
    late = entry_of(
        r, total=r.total + Decimal("0.03"), erp_posted_at=r.created_at + timedelta(hours=5)
    )
    f = only(run([r], [late]))
    assert f.diagnosis.answers["delayed"] is True
    assert any("HQ posted to the ERP 5:00:00 after" in e for e in f.diagnosis.evidence)


def test_an_approval_on_record_is_a_manual_touch() -> None:
    r = unlinked_refund("R-1", "30.00", approved_by="m-17")
    f = only(run([r], [entry_of(r, total=Decimal("31.00"))]))
    assert f.diagnosis.answers["manual_touch"] is True
    assert any("approval by m-17" in e for e in f.diagnosis.evidence)


def test_a_finding_maps_onto_the_contract_mismatch() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, total=r.total + Decimal("0.03"))]))
    wire = mismatch_to_wire(f, mismatch_id="M-1", detected_at=NOW, now=NOW)
    again = Mismatch.model_validate_json(wire.model_dump_json())
    assert again == wire
    body = wire.model_dump(mode="json")
    assert (body["delta"], body["diagnosis"]["class"], body["age_s"]) == (
        "0.03",
        "undetermined",
        3 * 86_400.0,
    )
    assert set(body["diagnosis"]["answers"]) == {
        "repeats",
        "manual_touch",
        "concentrated",
        "delayed",
        "reproducible",
    }
    summary = summarize([f])
    assert summary.amount_at_risk == {"USD": Decimal("0.03")}
    assert summary.by_kind == {"amount-mismatch": 1}


def test_a_digest_entry_off_the_wire_matches_its_refund() -> None:
    r = sale_refund("R-1")
    body = {
        "return_id": "R-1",
        "external_ref": "HQ-1",
        "source": "gateway",
        "sale_id": r.sale_id,
        "order_id": None,
        "currency": "USD",
        "total": "21.59",
        "tax": "1.60",
        "tenders": [{"type": "card", "amount": "21.59"}],
        "lines": [
            {
                "line_id": "1",
                "sku": "SKU-1",
                "category": "shoes",
                "quantity": 1,
                "amount": "19.99",
                "tax": "1.60",
            }
        ],
        "status": "settled",
        "processor_ref": "pr_1",
        "erp_ref": None,
        "created_at": "2026-11-19T12:00:00.000Z",
        "settled_at": None,
        "erp_posted_at": None,
        "edited_by": None,
        "approved_by": None,
        "kind": "receipt",
    }
    e = entry_from_wire(DigestEntry.model_validate(body))
    assert (e.total, e.tenders, e.lines[0].amount) == (
        Decimal("21.59"),
        (("card", Decimal("21.59")),),
        Decimal("19.99"),
    )
    assert run([r], [e]) == []
