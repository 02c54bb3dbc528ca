"""Money, tenders, policy, card guard and code parsing: the pure rules, case by case."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from edge.domain.cardguard import contains_pan
from edge.domain.codes import classify_code
from edge.domain.errors import (
    FinalSale,
    InvalidRequest,
    QuantityExceedsReturnable,
    ReturnWindowExpired,
    TenderMismatch,
)
from edge.domain.ids import is_return_id, new_return_id, new_store_credit_code
from edge.domain.money import (
    MoneyError,
    currency_exponent,
    even_share_slice,
    fmt,
    parse_amount,
    split_by_weights,
    split_evenly,
)
from edge.domain.policy import needs_approval, offline_card_refusal
from edge.domain.refund import RequestedLine, SaleState, quote_refund
from edge.domain.sale import LineInput, TenderInput, price_sale
from edge.domain.tenders import OriginalTender, allocate_refund

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ORDER = ["card", "gift_card", "store_credit", "cash"]


def test_exponents_follow_iso_4217() -> None:
    assert [currency_exponent(c) for c in ("USD", "EUR", "JPY", "KWD")] == [2, 2, 0, 3]
    with pytest.raises(MoneyError):
        currency_exponent("XAU")
    with pytest.raises(MoneyError):
        currency_exponent("ZZZ")


def test_amounts_must_fit_the_currency() -> None:
    assert fmt(parse_amount("1200", "JPY"), "JPY") == "1200"
    assert fmt(parse_amount("1.25", "KWD"), "KWD") == "1.250"
    with pytest.raises(MoneyError):
        parse_amount("1.5", "JPY")
    with pytest.raises(MoneyError):
        parse_amount("19.999", "USD")


def test_largest_remainder_split_adds_up() -> None:
    parts = split_by_weights(D("0.10"), [D(1), D(1), D(1)], "USD")
    assert parts == [D("0.04"), D("0.03"), D("0.03")]
    assert sum(split_by_weights(D("5.00"), [D("35.98"), D("10.00")], "USD")) == D("5.00")


def contract_sale() -> SaleState:
    priced = price_sale(
        "USD",
        lines=[LineInput("1", 2, D("19.99"), D("4.00"), D("3.20"))],
        order_discount=D("5.00"),
        shipping_amount=D(0),
        shipping_tax=D(0),
        tenders=[TenderInput("t1", "card", D("34.18"))],
    )
    return SaleState(
        sale_id="s",
        currency="USD",
        occurred_at=NOW - timedelta(days=1),
        lines=priced.lines,
        tenders=(OriginalTender("t1", "card", D("34.18"), "tok_9f8e", "A1B2C3"),),
        shipping_amount=D(0),
        shipping_tax=D(0),
        returned={},
        refunded_by_tender={},
        shipping_refunded=False,
    )


def test_contract_example_is_reproduced_to_the_cent() -> None:
    quote = quote_refund(
        contract_sale(),
        [RequestedLine("1", 1)],
        now=NOW,
        window_days=30,
        refund_to="original",
        tender_order=ORDER,
        refund_shipping=False,
    )
    assert (quote.subtotal, quote.discount, quote.tax, quote.total) == (
        D("19.99"),
        D("4.50"),
        D("1.60"),
        D("17.09"),
    )
    assert quote.lines[0].amount == D("15.49")
    assert quote.tenders[0].payment_token == "tok_9f8e"


def test_refusals_name_the_rule() -> None:
    sale = contract_sale()
    kw = {
        "now": NOW,
        "window_days": 30,
        "refund_to": "original",
        "tender_order": ORDER,
        "refund_shipping": False,
    }
    with pytest.raises(QuantityExceedsReturnable):
        quote_refund(sale, [RequestedLine("1", 3)], **kw)
    with pytest.raises(InvalidRequest):
        quote_refund(sale, [RequestedLine("9", 1)], **kw)
    with pytest.raises(ReturnWindowExpired):
        quote_refund(sale, [RequestedLine("1", 1)], **{**kw, "now": NOW + timedelta(days=31)})
    final = SaleState(
        **{
            **sale.__dict__,
            "lines": tuple(type(ln)(**{**ln.__dict__, "final_sale": True}) for ln in sale.lines),
        }
    )
    with pytest.raises(FinalSale):
        quote_refund(final, [RequestedLine("1", 1)], **kw)


def test_tender_mismatch_is_refused() -> None:
    with pytest.raises(TenderMismatch):
        price_sale(
            "USD",
            lines=[LineInput("1", 1, D("10.00"), D(0), D("1.00"))],
            order_discount=D(0),
            shipping_amount=D(0),
            shipping_tax=D(0),
            tenders=[TenderInput("t1", "cash", D("10.00"))],
        )


def test_gift_card_comes_back_as_store_credit_and_cash_as_cash() -> None:
    tenders = [
        OriginalTender("g", "gift_card", D("10.00")),
        OriginalTender("c", "cash", D("5.00")),
        OriginalTender("k", "card", D("20.00"), "tok"),
    ]
    out = allocate_refund(D("32.00"), tenders, {}, ORDER, "original")
    assert [(t.type, t.amount) for t in out] == [
        ("card", D("20.00")),
        ("store_credit", D("10.00")),
        ("cash", D("2.00")),
    ]
    again = allocate_refund(
        D("3.00"), tenders, {"k": D("20.00"), "g": D("10.00"), "c": D("2.00")}, ORDER, "original"
    )
    assert [(t.type, t.amount) for t in again] == [("cash", D("3.00"))]
    with pytest.raises(InvalidRequest):
        allocate_refund(
            D("0.01"), tenders, {"k": D("20"), "g": D("10"), "c": D("5")}, ORDER, "original"
        )


def test_approval_and_offline_rules() -> None:
    limits = {"USD": D("100.00")}
    assert not needs_approval("receipt", "USD", D("100.00"), limits)
    assert needs_approval("receipt", "USD", D("100.01"), limits)
    assert needs_approval("receipt", "JPY", D("1"), limits), "no threshold: always approve"
    assert needs_approval("goodwill", "USD", D("1.00"), limits)
    assert (
        offline_card_refusal(D("50"), D("0"), "USD", {"USD": D("200")}, {"USD": D("2000")}) is None
    )
    assert offline_card_refusal(D("250"), D("0"), "USD", {"USD": D("200")}, {"USD": D("2000")})
    assert offline_card_refusal(D("50"), D("1990"), "USD", {"USD": D("200")}, {"USD": D("2000")})
    assert offline_card_refusal(D("0"), D("99999"), "USD", {}, {}) is None


def test_card_guard_catches_pans_not_product_codes() -> None:
    assert contains_pan("card 4111 1111 1111 1111 please")
    assert contains_pan("4111-1111-1111-1111")
    assert contains_pan("5500005555555559")
    assert not contains_pan("4111 1111 1111 1112")
    assert not contains_pan("order 12345 for 3 items")
    assert not contains_pan("09506000134352")  # a GTIN-14: too short to be a PAN


def test_codes_and_ids() -> None:
    rid = new_return_id("0042", NOW)
    assert is_return_id(rid)
    assert classify_code(f"]C1{rid}").kind == "return_id"
    assert classify_code("RCPT:0042-03-20261122-0007").value == "0042-03-20261122-0007"
    assert classify_code("https://r.example/r/0042-1?x=1").value == "0042-1"
    assert classify_code("https://r.example/r?sale=S-9").value == "S-9"
    assert classify_code("  ") is None
    code = new_store_credit_code("SC")
    assert re.fullmatch(r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{5}", code), code


def test_closed_form_unit_shares_match_the_split() -> None:
    for total, parts in ((D("0.10"), 3), (D("30.98"), 7), (D("1.00"), 1), (D("0.00"), 4)):
        shares = split_evenly(total, parts, "USD")
        for start in range(parts):
            for count in range(parts - start + 1):
                assert even_share_slice(total, parts, start, count, "USD") == sum(
                    shares[start : start + count], D(0)
                )
