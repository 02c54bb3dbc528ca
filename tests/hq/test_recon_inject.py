"""The simulated ERP and storefront plant each mismatch kind and each pattern: the next
digest differs from the one before by exactly what the injection says, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from edge.contract.recon import Digest
from edge.hq.recon.inject import EXPECTED, INJECTIONS, InjectError, InjectOptions, Planted, inject
from edge.hq.store import HqStore
from tests.hq.test_recon_digest import STORE, T0, add_refunds, digest_of, refund_data


@pytest.fixture
async def hq(db_url: str) -> AsyncIterator[HqStore]:
    async with HqStore(db_url) as opened:
        await add_refunds(
            opened,
            [
                refund_data("R-1", created_at=T0 - timedelta(hours=1)),
                refund_data("R-2", discount="8.00", lines=[("1", 2, "32.00", "2.56")]),
            ],
        )
        yield opened


def diff(before: Digest, after: Digest) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    """Per external ref: the fields that changed (before, after); refs added; refs gone."""
    old = {e.external_ref: e.model_dump(mode="json") for e in before.refunds}
    new = {e.external_ref: e.model_dump(mode="json") for e in after.refunds}
    changed = {
        ref: {k: (old[ref][k], new[ref][k]) for k in new[ref] if old[ref][k] != new[ref][k]}
        for ref in old.keys() & new.keys()
    }
    changed = {ref: fields for ref, fields in changed.items() if fields}
    return changed, sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())


async def plant(hq: HqStore, what: str, **kwargs: Any) -> tuple[Planted, Digest, Digest]:
    before = await digest_of(hq)
    planted = await hq.write(partial(inject, what=what, store_id=STORE, now=T0, **kwargs))
    return planted, before, await digest_of(hq)


@pytest.mark.parametrize("what", INJECTIONS)
async def test_each_injection_is_exactly_its_planted_difference(hq: HqStore, what: str) -> None:
    planted, before, after = await plant(hq, what)
    changed, added, gone = diff(before, after)
    assert (planted.kind, planted.pattern) == EXPECTED[what]
    assert added == sorted(planted.added)
    removed_ids = {e.return_id for e in before.refunds if e.external_ref in gone}
    assert removed_ids == set(planted.removed)
    if planted.changes:
        assert changed == {next(iter(changed)): planted.changes}
        (entry,) = [e for e in after.refunds if e.external_ref in changed]
        assert entry.return_id == planted.return_id
    else:
        assert changed == {}
    assert planted.changes or planted.added or planted.removed
    again = await digest_of(hq)  # what is planted stays planted
    assert diff(after, again) == ({}, [], [])


async def test_amount_mismatch_moves_the_total_by_k_minor_units(hq: HqStore) -> None:
    planted, _, _ = await plant(hq, "amount-mismatch", options=InjectOptions(units=-7))
    before, after = planted.changes["total"]
    assert Decimal(after) - Decimal(before) == Decimal("-0.07")
    assert set(planted.changes) == {"total"}


async def test_rounding_drift_is_the_per_unit_rounding_difference(hq: HqStore) -> None:
    planted, _, _ = await plant(hq, "rounding-drift", return_id="R-1")
    # line 1: 3 units, tax 1.00 -> 0.33 a unit -> 0.99; line 2: 1 unit, unchanged
    assert Decimal(planted.changes["total"][1]) - Decimal(planted.changes["total"][0]) == Decimal(
        "-0.01"
    )
    assert planted.changes["tax"] == ("1.80", "1.79")
    assert set(planted.changes) == {"total", "tax", "lines"}


async def test_promo_mismatch_credits_the_discount_back(hq: HqStore) -> None:
    planted, _, _ = await plant(hq, "promo-mismatch")
    assert planted.return_id == "R-2"  # the one with a discount
    assert planted.changes["total"] == ("34.56", "42.56")
    assert planted.changes["lines"][1][0]["amount"] == "40.00"


async def test_field_mapping_in_units_or_tenders(hq: HqStore) -> None:
    units, _, _ = await plant(hq, "field-mapping", return_id="R-1")
    assert units.changes["total"] == ("41.80", "4180.00")
    tender, _, _ = await plant(
        hq, "field-mapping", return_id="R-2", options=InjectOptions(mapping="tender")
    )
    assert set(tender.changes) == {"tenders"}
    assert tender.changes["tenders"][1][0]["type"] == "cash"


async def test_store_credit_loop_is_two_refunds_for_one_problem(hq: HqStore) -> None:
    planted, _, after = await plant(hq, "store-credit-loop")
    added = [e for e in after.refunds if e.external_ref in planted.added]
    assert sorted((e.source, e.kind) for e in added) == [
        ("customer_service", "store_credit"),
        ("storefront", "receipt"),
    ]
    credit, refund = sorted(added, key=lambda e: e.source)
    assert [t.type for t in credit.tenders] == ["store_credit"]
    assert [t.type for t in refund.tenders] == ["card"]
    assert credit.total == refund.total


async def test_what_cannot_be_planted_is_refused_with_the_reason(hq: HqStore) -> None:
    with pytest.raises(InjectError, match="failure-rate 1"):
        await plant(hq, "unconfirmed")
    await add_refunds(hq, [refund_data("R-P")], {"R-P": "received"})
    with pytest.raises(InjectError, match="settled refunds"):
        await plant(hq, "amount-mismatch", return_id="R-P")
    with pytest.raises(InjectError, match="no discounted lines"):
        await plant(hq, "promo-mismatch", return_id="R-1")
    await plant(hq, "duplicate", return_id="R-1")
    with pytest.raises(InjectError, match="already carries"):
        await plant(hq, "status-mismatch", return_id="R-1")
