"""One scenario per pattern, and the `both` class: pattern, class, answers, fix order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from edge.contract.recon import INTEGRATION_PATTERNS, PROCESS_PATTERNS
from edge.domain.recon import Finding, compare
from edge.domain.recon.patterns import FIXES
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
from tests.recon.test_domain_kinds import answers, only, run


def test_every_pattern_has_fix_steps() -> None:
    assert set(FIXES) == set(INTEGRATION_PATTERNS) | set(PROCESS_PATTERNS)


def test_api_sync_failure_for_a_refund_delivered_but_not_listed() -> None:
    r = sale_refund("R-1")
    f = only(run([r], []))
    assert (f.kind, f.diagnosis.class_, f.diagnosis.pattern) == (
        "missing-at-hq",
        "integration",
        "api-sync-failure",
    )
    assert answers(f) == (None, None, None, False, None)


def test_field_mapping_an_amount_in_minor_units() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, total=r.total * 100)]))
    assert (f.kind, f.diagnosis.class_, f.diagnosis.pattern) == (
        "amount-mismatch",
        "integration",
        "field-mapping",
    )
    assert answers(f) == (None, False, None, False, True)
    assert "scaled by 100" in f.diagnosis.evidence[1]


def test_field_mapping_a_tender_under_another_type() -> None:
    r = sale_refund("R-1")
    f = only(run([r], [entry_of(r, tenders=(("cash", r.total),))]))
    assert (f.kind, f.detail, f.delta) == ("amount-mismatch", "tender card", -r.total)
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "field-mapping")
    assert "store card 21.59; HQ cash 21.59" in f.diagnosis.evidence[1]


def test_rounding_drift_when_hq_rounds_tax_on_each_unit() -> None:
    # 3 units at 3.33 with 1.00 tax: the gateway gives the first unit 0.34 tax (largest
    # remainder), an ERP rounding on each unit 0.33.
    r = sale_refund("R-1", lines=((3, "3.33", "0", "1.00", 1, "toys"),))
    assert (r.total, r.tax) == (Decimal("3.67"), Decimal("0.34"))
    f = only(run([r], [entry_of(r, total=Decimal("3.66"), tax=Decimal("0.33"))]))
    assert (f.kind, f.delta) == ("amount-mismatch", Decimal("-0.01"))
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "rounding-drift")
    assert answers(f) == (None, False, None, False, True)
    assert f.diagnosis.evidence[1].startswith(
        "HQ's 3.66 (tax 0.33) for R-1 = each unit's amount and tax rounded half up"
    )


def test_promo_mismatch_when_hq_leaves_the_order_discount_out() -> None:
    r = sale_refund("R-1", lines=((2, "50.00", "0", "6.40", 1, "shoes"),), order_discount="20.00")
    assert (r.total, r.tax) == (Decimal("43.20"), Decimal("3.20"))
    f = only(run([r], [entry_of(r, total=Decimal("53.20"))]))
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("integration", "promo-mismatch")
    assert "the order discount left out (order-discount-ignored)" in f.diagnosis.evidence[1]
    assert f.diagnosis.fix_sequence[0].startswith("Send the discount allocation")


def test_partial_sync_when_hq_holds_it_without_its_order() -> None:
    r = sale_refund("R-1", channel="online")
    f = only(run([r], [entry_of(r, order_id=None)]))
    assert (f.kind, f.diagnosis.pattern, f.diagnosis.class_) == (
        "missing-reference",
        "partial-sync",
        "integration",
    )


def test_async_gap_when_the_gateway_never_heard_hq_settle() -> None:
    r = sale_refund("R-1", hq_status="pending", decided_at=None)
    e = entry_of(r, status="settled", settled_at=T0 + timedelta(hours=30))
    f = only(run([r], [e]))
    assert (f.kind, f.diagnosis.pattern) == ("status-mismatch", "async-gap")
    assert answers(f) == (None, False, None, True, None)


def test_register_bypass_a_cash_refund_the_gateway_never_saw() -> None:
    e = hq_only("POS-1", "30.00", source="register", kind="cash", sale_id="S-9")
    f = only(run([sale_refund("R-1")], [entry_of(sale_refund("R-1")), e]))
    assert (f.kind, f.diagnosis.class_, f.diagnosis.pattern) == (
        "unknown-to-store",
        "process",
        "register-bypass",
    )
    assert answers(f) == (None, None, None, False, None)
    assert f.diagnosis.fix_sequence[-1].startswith("Make the register send every return")


def test_verbal_approval_goodwill_with_no_approval_on_record() -> None:
    e = hq_only("SF-3", "15.00", source="storefront", kind="goodwill")
    f = only(run([], [e]))
    assert (f.kind, f.diagnosis.class_, f.diagnosis.pattern) == (
        "unknown-to-store",
        "process",
        "verbal-approval",
    )
    approved = replace(e, approved_by="lead-4")
    g = only(run([], [approved]))
    assert g.diagnosis.pattern is None
    assert g.diagnosis.answers["manual_touch"] is True


def test_cross_team_handoff_three_dc_returns_cluster() -> None:
    store = [sale_refund(f"R-{i}") for i in range(6)]
    dc = [
        hq_only(f"DC-{i}", "40.00", source="distribution_center", order_id=f"W-{i}")
        for i in range(3)
    ]
    found = run(store, [*map(entry_of, store), *dc])
    assert len(found) == 3
    for f in found:
        assert (f.kind, f.diagnosis.class_, f.diagnosis.pattern) == (
            "unknown-to-store",
            "process",
            "cross-team-handoff",
        )
        assert f.diagnosis.answers["concentrated"] is True
        assert f.diagnosis.answers["repeats"] is True  # same refund kind, same pattern
    assert any("source:distribution_center" in e for e in found[0].diagnosis.evidence)


def loop() -> tuple[Finding, ...]:
    credit = unlinked_refund("R-1", "25.00", store_credit_codes=("SC-7",), customer_ref="C-1")
    spent = sale_refund(
        "R-2",
        sale_tender="store_credit",
        refund_to="cash",
        tenders=(("cash", Decimal("21.59")),),
        sale_credit_codes=("SC-7",),
        customer_ref="C-1",
        created_at=T0 + timedelta(days=1),
    )
    other = sale_refund("R-3")
    e = entry_of(spent, total=spent.total + Decimal("0.07"))
    return tuple(
        compare(
            [credit, spent, other],
            [entry_of(credit), e, entry_of(other)],
            period_from=PERIOD_FROM,
            period_to=PERIOD_TO,
            now=NOW,
            settle_within=SETTLE,
        )
    )


def test_store_credit_loop_credit_spent_then_refunded_to_cash() -> None:
    (f,) = loop()
    assert (f.kind, f.return_id) == ("amount-mismatch", "R-2")
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("process", "store-credit-loop")
    assert any(
        "store credit SC-7 issued by refund R-1 (25.00) paid for sale S-R-2" in e
        for e in f.diagnosis.evidence
    )


def test_store_credit_loop_made_outside_the_store() -> None:
    # the seed's loop: customer service issues store credit; the order it paid is later
    # refunded to the card by the storefront. Neither reached the store.
    credit = hq_only(
        "CS-1",
        "25.00",
        source="customer_service",
        kind="store_credit",
        order_id="W-1",
        tenders=(("store_credit", Decimal("25.00")),),
        approved_by="cs-lead",
    )
    card = hq_only(
        "SF-1",
        "25.00",
        source="storefront",
        order_id="W-2",
        tenders=(("card", Decimal("25.00")),),
        created_at=T0 + timedelta(hours=2),
    )
    found = {f.external_ref: f for f in run([], [credit, card])}
    for f in found.values():
        assert (f.kind, f.diagnosis.class_, f.diagnosis.pattern) == (
            "unknown-to-store",
            "process",
            "store-credit-loop",
        )
    assert (
        "store credit CS-1 (25.00) issued by customer service"
        in (found["SF-1"].diagnosis.evidence[1])
    )
    # a card refund of another amount, or made before the credit, is no loop
    other = replace(card, total=Decimal("24.00"), tenders=(("card", Decimal("24.00")),))
    earlier = replace(card, created_at=T0 - timedelta(hours=1))
    for payout in (other, earlier):
        patterns = {f.external_ref: f.diagnosis.pattern for f in run([], [credit, payout])}
        assert patterns == {"CS-1": "cross-team-handoff", "SF-1": None}


def test_both_goodwill_without_approval_arriving_without_its_lines() -> None:
    r = unlinked_refund("R-1", "15.00", approved_by=None, customer_ref="C-2")
    e = hq_only(
        "CS-1",
        "15.00",
        return_id="R-1",
        source="customer_service",
        kind="goodwill",
        sale_id="S-1",
    )
    r = replace(r, sale_id="S-1")
    e = replace(e, tenders=r.tenders)
    f = only(run([r], [replace(e, sale_id=None)]))
    assert (f.kind, f.diagnosis.class_, f.diagnosis.pattern) == (
        "missing-reference",
        "both",
        "partial-sync",
    )
    steps = f.diagnosis.fix_sequence
    assert steps[: len(FIXES["partial-sync"])] == [
        s.format(id="R-1") for s in FIXES["partial-sync"]
    ]
    assert steps[len(FIXES["partial-sync"]) :] == [
        s.format(id="R-1") for s in FIXES["verbal-approval"]
    ]
    assert any("also verbal-approval" in x for x in f.diagnosis.evidence)


def test_both_when_hq_edited_a_drifted_amount_by_hand() -> None:
    r = sale_refund("R-1", lines=((3, "3.33", "0", "1.00", 1, "toys"),))
    e = entry_of(r, total=Decimal("3.66"), tax=Decimal("0.33"), edited_by="clerk-5")
    f = only(run([r], [e]))
    assert (f.diagnosis.class_, f.diagnosis.pattern) == ("both", "rounding-drift")
    assert f.diagnosis.answers["manual_touch"] is True
    assert f.diagnosis.fix_sequence[0].startswith("Make the ERP import take")
    assert "Map the refund workflow" in f.diagnosis.fix_sequence[-2]
