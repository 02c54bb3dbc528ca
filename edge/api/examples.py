"""Request examples and links for `/openapi.json`: one sale whose tenders add up, a refund
of it, and how each success leads to the next call.

The sale is dated at the start of the hour the document was built, so it is inside the
return window and never ahead of the gateway's clock; the refund of one unit of it needs
no approval under the default thresholds. Tested by posting them (`tests/core`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edge.api.routes import Example, Link
from edge.contract.timefmt import iso

SALE_ID = "0042-03-20261122-0007"
RETURN_ID = "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0"
# Letters between the digits: no run of digits the card-number guard could mistake.
IDEMPOTENCY_KEY = "refund-example-one"


def sale_example(now: datetime) -> Example:
    return Example(
        body={
            "sale_id": SALE_ID,
            "channel": "store",
            "register_id": "lane-3",
            "occurred_at": iso(now.replace(minute=0, second=0, microsecond=0)),
            "currency": "USD",
            "lines": [
                {
                    "line_id": "1",
                    "sku": "TSHIRT-M-BLK",
                    "gtin": "09506000134352",
                    "description": "T-shirt",
                    "category": "apparel",
                    "quantity": 2,
                    "unit_price": "19.99",
                    "discount": "4.00",
                    "tax": "3.20",
                    "final_sale": False,
                }
            ],
            "order_discount": "5.00",
            "shipping": {"amount": "0.00", "tax": "0.00"},
            # 2 * 19.99 - 4.00 - 5.00 + 3.20 = 34.18
            "tenders": [
                {
                    "tender_id": "t1",
                    "type": "card",
                    "amount": "34.18",
                    "payment_token": "tok_9f8e",
                    "auth_code": "A1B2C3",
                    "card_brand": "visa",
                    "last4": "4242",
                }
            ],
        }
    )


def _refund_of(sale_id: Any, line_id: Any) -> dict[str, Any]:
    return {
        "sale_id": sale_id,
        "kind": "receipt",
        "lines": [{"line_id": line_id, "quantity": 1, "reason": "damaged", "restock": False}],
        "refund_to": "original",
    }


REFUND = Example(
    body={**_refund_of(SALE_ID, "1"), "note": "customer changed mind"},
    params={"Idempotency-Key": IDEMPOTENCY_KEY},
)
GET_SALE = Example(params={"sale_id": SALE_ID})
GET_REFUND = Example(params={"return_id": RETURN_ID})
LOOKUP = Example(body={"code": "RCPT:" + SALE_ID})
EVENTS = Example(params={"lane": "lane-3"})

# A linked refund leaves out what a receipt refund must not carry, whatever else a client
# (or a fuzzer) would put in the body.
_RECEIPT_ONLY = {"amount": None, "currency": None, "approval": None, "register_id": None}

SALE_LINKS = (
    Link(
        "GetSale",
        "get_sale",
        "The sale, with what was returned so far",
        parameters={"sale_id": "$response.body#/sale_id"},
    ),
    Link(
        "RefundSale",
        "post_refund",
        "Refund one unit of the sale's first line to the original tender",
        request_body={
            **_refund_of("$response.body#/sale_id", "$response.body#/lines/0/line_id"),
            **_RECEIPT_ONLY,
        },
    ),
    Link(
        "LookUpSale",
        "lookup",
        "Look the sale up as a register scanning its receipt would",
        request_body={"code": "$response.body#/sale_id"},
    ),
)
REFUND_LINKS = (
    Link(
        "GetRefund",
        "get_refund",
        "The refund now; its status changes as HQ answers",
        parameters={"return_id": "$response.body#/return_id"},
    ),
    Link(
        "LookUpRefund",
        "lookup",
        "Look the refund up by its Return ID",
        request_body={"code": "$response.body#/return_id"},
    ),
)
