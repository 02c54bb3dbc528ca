"""How a gateway refund becomes a document of the ERP or storefront HQ posts it to: field
mappings for the three systems the reconciliation guide names (Shopify, NetSuite, SAP).

Each profile takes a `refund.requested` event as HQ stored it (`RefundRequest`, with the
processor's reference once the refund is settled) and writes that system's document. A
refund that would arrive without its order or payment reference is refused with
`MissingReference`, naming the target field: the guide's "partial sync", where the ERP
shows a credit that finance cannot tie to any order, is stopped at the mapping instead of
being booked as an orphan.

Field names follow the systems' documentation:
- Shopify Admin REST API, Refund resource (`POST .../orders/{order_id}/refunds.json`,
  https://shopify.dev/api/admin-rest/2025-01/resources/refund): `order_id`, `note`,
  `currency`, `refund_line_items[{line_item_id, quantity, subtotal, total_tax}]`,
  `transactions[{kind: "refund", amount, gateway, parent_id}]`; `parent_id` is the
  captured sale transaction being refunded (GraphQL's `parentId`, "must be of kind CAPTURE
  or SALE").
- NetSuite REST record `creditmemo` (`POST /record/v1/creditmemo`, Oracle NetSuite help
  "Use Case for Creating a Credit Memo"): `entity`, `createdFrom` (the invoice or sales
  order it credits), `item.items[{item, quantity, rate, amount, taxCode}]`, `currency`,
  `memo`, `externalId` (the Return ID, as integrations put their own id there), `total`.
- SAP FI document as BAPI_ACC_DOCUMENT_POST takes it: `DOCUMENTHEADER` (BAPIACHE09:
  `COMP_CODE`, `DOC_DATE`, `PSTNG_DATE`, `DOC_TYPE`, `REF_DOC_NO`), `ACCOUNTRECEIVABLE`
  (BAPIACAR09: `ITEMNO_ACC`, `CUSTOMER`, `ALLOC_NMBR` assignment, `PAYMT_REF` payment
  reference), `ACCOUNTGL` (BAPIACGL09: `GL_ACCOUNT`, `ITEM_TEXT`, `TAX_CODE`),
  `ACCOUNTTAX` and `CURRENCYAMOUNT` (BAPIACCR09: `ITEMNO_ACC`, `CURRENCY`, `AMT_DOCCUR`),
  whose amounts balance to zero. `REF_DOC_NO` is 16 characters in SAP; a Return ID is
  longer, so a production mapping would keep it in an extension field as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from edge.errors import EdgeError
from edge.hq.processor import RefundRequest

ProfileName = Literal["shopify", "netsuite", "sap"]
PROFILES: tuple[ProfileName, ...] = ("shopify", "netsuite", "sap")


class MissingReference(EdgeError):
    """The refund lacks a reference the target system needs to tie it to its order or
    payment; `field` is the target system's field."""

    def __init__(self, system: str, field: str, return_id: str, why: str) -> None:
        self.system = system
        self.field = field
        self.return_id = return_id
        super().__init__(f"{system}: refund {return_id} has no {field} ({why}); not posted")


class ErpProfile(Protocol):
    @property
    def name(self) -> ProfileName: ...

    def document(self, refund: RefundRequest, processor_ref: str | None) -> dict[str, Any]:
        """The system's document for a settled refund; raises MissingReference."""
        ...


def _d(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else "0"))


def _text(value: Decimal) -> str:
    return format(value, "f")


def _lines(refund: RefundRequest) -> list[dict[str, Any]]:
    return [x for x in refund.data.get("lines", []) if isinstance(x, dict)]


def _tenders(refund: RefundRequest) -> list[dict[str, Any]]:
    return [t for t in refund.data.get("tenders", []) if isinstance(t, dict)]


def _other(refund: RefundRequest) -> Decimal:
    """Shipping and any amount tied to no line (a no-receipt or goodwill amount)."""
    lines = sum((_d(x.get("amount")) for x in _lines(refund)), Decimal(0))
    return refund.total - _d(refund.data.get("tax")) - lines


def _order_ref(refund: RefundRequest, system: str, field: str) -> str:
    sale_id = refund.data.get("sale_id")
    if not sale_id:
        raise MissingReference(system, field, refund.return_id, "no order or sale reference")
    return str(sale_id)


@dataclass(frozen=True)
class ShopifyProfile:
    """A Shopify Admin API Refund on the order the sale was."""

    name: ProfileName = "shopify"
    card_gateway: str = "shopify_payments"

    def document(self, refund: RefundRequest, processor_ref: str | None) -> dict[str, Any]:
        order_id = _order_ref(refund, "shopify", "order_id")
        transactions = []
        for i, t in enumerate(_tenders(refund)):
            parent = t.get("tender_id") or t.get("payment_token")
            if t.get("type") == "card" and not parent:
                raise MissingReference(
                    "shopify",
                    f"transactions[{i}].parent_id",
                    refund.return_id,
                    "a card refund without the sale transaction it refunds",
                )
            gateway = {"card": self.card_gateway, "cash": "cash"}.get(str(t.get("type")))
            transactions.append(
                {
                    "kind": "refund",
                    "amount": _text(_d(t.get("amount"))),
                    "gateway": gateway or str(t.get("type")),
                    "parent_id": parent,
                    "authorization": processor_ref,
                }
            )
        return {
            "refund": {
                "order_id": order_id,
                "note": f"Return {refund.return_id}: {refund.data.get('reason') or 'store return'}",
                "currency": refund.currency,
                "refund_line_items": [
                    {
                        "line_item_id": str(x["line_id"]),
                        "quantity": int(x["quantity"]),
                        "subtotal": _text(_d(x.get("amount"))),
                        "total_tax": _text(_d(x.get("tax"))),
                        "restock_type": "return" if x.get("restock") else "no_restock",
                    }
                    for x in _lines(refund)
                ],
                "shipping": {"amount": _text(_d(refund.data.get("shipping", {}).get("amount")))},
                "transactions": transactions,
            }
        }


@dataclass(frozen=True)
class NetSuiteProfile:
    """A NetSuite credit memo created from the sale's invoice or sales order."""

    name: ProfileName = "netsuite"
    taxable_code: str = "TAX"
    exempt_code: str = "NON-TAXABLE"

    def document(self, refund: RefundRequest, processor_ref: str | None) -> dict[str, Any]:
        created_from = _order_ref(refund, "netsuite", "createdFrom")
        items = []
        for x in _lines(refund):
            amount, quantity = _d(x.get("amount")), int(x["quantity"])
            items.append(
                {
                    "item": {"id": str(x.get("sku") or x["line_id"])},
                    "quantity": quantity,
                    "rate": _text((amount / quantity).quantize(Decimal("0.0001"))),
                    "amount": _text(amount),
                    "taxCode": {"id": self.taxable_code if _d(x.get("tax")) else self.exempt_code},
                }
            )
        other = _other(refund)
        return {
            "recordType": "creditMemo",
            "externalId": refund.return_id,
            "entity": {"id": f"STORE-{refund.store_id}"},  # the store's walk-in customer
            "createdFrom": {"id": created_from},
            "tranDate": str(refund.data.get("created_at", ""))[:10],
            "currency": {"refName": refund.currency},
            "memo": f"Return {refund.return_id}; processor {processor_ref or 'none'}",
            "item": {"items": items},
            "shippingCost": _text(other),
            "taxTotal": _text(_d(refund.data.get("tax"))),
            "total": _text(refund.total),
        }


@dataclass(frozen=True)
class SapProfile:
    """An SAP FI customer credit memo (document type DG) as BAPI_ACC_DOCUMENT_POST takes it:
    the customer item credited with the total, revenue and tax debited, balanced to zero."""

    name: ProfileName = "sap"
    comp_code: str = "1000"
    doc_type: str = "DG"
    returns_account: str = "0000410000"
    tax_account: str = "0000175000"
    other_account: str = "0000410900"

    def document(self, refund: RefundRequest, processor_ref: str | None) -> dict[str, Any]:
        invoice = _order_ref(refund, "sap", "ACCOUNTRECEIVABLE.ALLOC_NMBR")
        if not processor_ref:
            raise MissingReference(
                "sap",
                "ACCOUNTRECEIVABLE.PAYMT_REF",
                refund.return_id,
                "no payment reference from the processor",
            )
        date = str(refund.data.get("created_at", ""))[:10].replace("-", "")
        cur = refund.currency
        gl: list[dict[str, Any]] = []
        amounts: list[dict[str, Any]] = []

        def item(n: int) -> str:
            return f"{n:010d}"

        amounts.append({"ITEMNO_ACC": item(1), "CURRENCY": cur, "AMT_DOCCUR": _text(-refund.total)})
        n = 1
        for x in _lines(refund):
            n += 1
            gl.append(
                {
                    "ITEMNO_ACC": item(n),
                    "GL_ACCOUNT": self.returns_account,
                    "ITEM_TEXT": f"line {x['line_id']} x{x['quantity']}",
                    "TAX_CODE": "O1" if _d(x.get("tax")) else "O0",
                }
            )
            amounts.append(
                {"ITEMNO_ACC": item(n), "CURRENCY": cur, "AMT_DOCCUR": _text(_d(x.get("amount")))}
            )
        other = _other(refund)
        if other:
            n += 1
            gl.append(
                {"ITEMNO_ACC": item(n), "GL_ACCOUNT": self.other_account, "ITEM_TEXT": "shipping"}
            )
            amounts.append({"ITEMNO_ACC": item(n), "CURRENCY": cur, "AMT_DOCCUR": _text(other)})
        tax = _d(refund.data.get("tax"))
        taxes = []
        if tax:
            n += 1
            taxes.append({"ITEMNO_ACC": item(n), "GL_ACCOUNT": self.tax_account, "TAX_CODE": "O1"})
            amounts.append({"ITEMNO_ACC": item(n), "CURRENCY": cur, "AMT_DOCCUR": _text(tax)})
        return {
            "DOCUMENTHEADER": {
                "BUS_ACT": "RFBU",
                "COMP_CODE": self.comp_code,
                "DOC_DATE": date,
                "PSTNG_DATE": date,
                "DOC_TYPE": self.doc_type,
                "REF_DOC_NO": refund.return_id,
                "HEADER_TXT": f"Store {refund.store_id} return",
            },
            "ACCOUNTRECEIVABLE": [
                {
                    "ITEMNO_ACC": item(1),
                    "CUSTOMER": f"STORE-{refund.store_id}",
                    "ALLOC_NMBR": invoice,
                    "PAYMT_REF": processor_ref,
                    "ITEM_TEXT": f"Refund {refund.return_id}",
                }
            ],
            "ACCOUNTGL": gl,
            "ACCOUNTTAX": taxes,
            "CURRENCYAMOUNT": amounts,
        }


def profile(name: ProfileName) -> ErpProfile:
    """The profile of that name, with its default settings."""
    found: dict[str, ErpProfile] = {
        "shopify": ShopifyProfile(),
        "netsuite": NetSuiteProfile(),
        "sap": SapProfile(),
    }
    return found[name]
