"""Payloads written from the contract's text (shared/spec/contract.md, MQTT and v1.1
Reconciliation), one per model, with every key it lists; times as the gateway writes them,
so that each example survives a round trip through its model byte for byte."""

from __future__ import annotations

from typing import Any

BIRTH = {
    "state": "online",
    "version": "0.1.0",
    "started_at": "2026-11-22T10:00:00.000Z",
    "bd_seq": 7,
    "protocol": "5",
}
WILL = {"state": "offline", "bd_seq": 7}

ALERT = {
    "alert": "event-rejected",
    "severity": "warning",
    "detail": "HQ rejected 01JD3X5Q7W8ZK3M9T2B4C6D8F0: unknown store",
    "subject": "01JD3X5Q7W8ZK3M9T2B4C6D8F0",
    "at": "2026-11-22T10:15:00.000Z",
    "state": "raised",
}

HEALTH = {
    "at": "2026-11-22T10:15:00.000Z",
    "version": "0.1.0",
    "link": {"state": "online", "protocol": "5", "connected_since": "2026-11-22T09:15:00.000Z"},
    "outbox": {
        "pending": 2,
        "oldest_pending_age_s": 1.5,
        "last_seq": 1234,
        "in_flight": 2,
        "high_water": 10000,
    },
    "last_hq_ack_at": "2026-11-22T10:14:59.500Z",
    "relay": {"published": 1234, "resent": 3, "acked": 1232, "followups": 0},
    "refunds_today": 17,
    "refunds_awaiting_hq": 1,
    "devices": {
        "scanner-lane-3": {
            "kind": "keyboard",
            "lane": "lane-3",
            "state": "connected",
            "detail": "",
            "at": "2026-11-22T09:15:00.000Z",
        }
    },
    "disk_free_bytes": 12345678901,
    "db_bytes": 4567890,
    "errors": {"malformed_messages": 0, "storage_errors": 0},
    "alerts_open": [ALERT],
    "uptime_s": 3600.0,
    "recon": {
        "open_mismatches": 2,
        "by_kind": {"amount-mismatch": 1, "unconfirmed": 1},
        "by_class": {"integration": 2},
        "reopened_total": 0,
        "last_report_at": "2026-11-22T10:00:00.000Z",
        "next_checkpoint_at": "2026-11-22T11:00:00.000Z",
    },
}

CMD_RESULT_OK = {
    "request_id": "p1",
    "command": "ping",
    "ok": True,
    "result": {"pong": True, "version": "0.1.0"},
    "at": "2026-11-22T10:15:00.000Z",
}
CMD_RESULT_ERROR = {
    "request_id": "r1",
    "command": "replay",
    "ok": False,
    "error": "replay needs an integer from_seq >= 1",
    "at": "2026-11-22T10:15:00.000Z",
}

LOOKUP = {
    "request_id": "01JD3X5Q7W8ZK3M9T2B4C6D8F0",
    "code": "WEB-1001",
    "reply_to": "retail/v1/0042/gw-01/lookup-reply",
}
LOOKUP_REPLY_NOT_FOUND = {"request_id": "01JD3X5Q7W8ZK3M9T2B4C6D8F0", "found": False, "sale": None}


def digest_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "return_id": "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0",
        "external_ref": "ERP-RMA-55120",
        "source": "gateway",
        "sale_id": "0042-03-20261122-0007",
        "order_id": None,
        "currency": "USD",
        "total": "17.09",
        "tax": "1.60",
        "tenders": [{"type": "card", "amount": "17.09"}],
        "lines": [
            {
                "line_id": "1",
                "sku": "TSHIRT-M-BLK",
                "category": "apparel",
                "quantity": 1,
                "amount": "15.49",
                "tax": "1.60",
            }
        ],
        "status": "settled",
        "processor_ref": "re_3PqX",
        "erp_ref": "ERP-CM-9001",
        "created_at": "2026-11-22T10:40:00.000Z",
        "settled_at": "2026-11-22T10:40:05.000Z",
        "erp_posted_at": "2026-11-22T11:00:00.000Z",
        "edited_by": None,
        "approved_by": "m-17",
        "kind": "receipt",
    }
    entry.update(changes)
    return entry


DIGEST = {
    "digest_id": "D-0042-20261122",
    "from": "2026-11-22T00:00:00.000Z",
    "to": "2026-11-23T00:00:00.000Z",
    "generated_at": "2026-11-23T01:00:00.000Z",
    "refunds": [
        digest_entry(),
        digest_entry(
            return_id=None,
            external_ref="CS-7781",
            source="customer_service",
            sale_id=None,
            order_id="WEB-1001",
            total="25.00",
            tax="0.00",
            tenders=[{"type": "store_credit", "amount": "25.00"}],
            lines=[],
            status="pending",
            processor_ref=None,
            erp_ref=None,
            settled_at=None,
            erp_posted_at=None,
            edited_by="cs-agent-4",
            approved_by=None,
            kind="goodwill",
        ),
    ],
}


def mismatch(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "mismatch_id": "M-01JD3X5Q7W8ZK3M9T2B4C6D8F1",
        "kind": "amount-mismatch",
        "return_id": "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0",
        "external_ref": "ERP-RMA-55120",
        "sale_id": "0042-03-20261122-0007",
        "currency": "USD",
        "store_amount": "17.09",
        "hq_amount": "17.10",
        "delta": "0.01",
        "detected_at": "2026-11-23T01:00:05.000Z",
        "age_s": 51905.0,
        "diagnosis": {
            "class": "integration",
            "pattern": "rounding-drift",
            "answers": {
                "repeats": True,
                "manual_touch": False,
                "concentrated": None,
                "delayed": False,
                "reproducible": True,
            },
            "evidence": ["the ERP rounds tax per unit; the gateway per line"],
            "fix_sequence": ["round tax per line in the ERP connector"],
        },
    }
    entry.update(changes)
    return entry


REPORT = {
    "report_id": "RP-01JD3X5Q7W8ZK3M9T2B4C6D8F2",
    "digest_id": "D-0042-20261122",
    "store_id": "0042",
    "gateway_id": "gw-01",
    "from": "2026-11-22T00:00:00.000Z",
    "to": "2026-11-23T00:00:00.000Z",
    "generated_at": "2026-11-23T01:00:05.000Z",
    "checked": 2,
    "matched": 1,
    "mismatches": [
        mismatch(),
        mismatch(
            mismatch_id="M-01JD3X5Q7W8ZK3M9T2B4C6D8F3",
            kind="unknown-to-store",
            return_id=None,
            external_ref="CS-7781",
            sale_id=None,
            store_amount=None,
            hq_amount="25.00",
            delta=None,
            age_s=0.0,
            diagnosis={
                "class": "process",
                "pattern": "register-bypass",
                "answers": {
                    "repeats": None,
                    "manual_touch": True,
                    "concentrated": None,
                    "delayed": None,
                    "reproducible": None,
                },
                "evidence": ["made by customer service, not at a register"],
                "fix_sequence": ["route goodwill credits through the gateway"],
            },
        ),
    ],
    "summary": {
        "by_kind": {"amount-mismatch": 1, "unknown-to-store": 1},
        "by_class": {"integration": 1, "process": 1},
        "amount_at_risk": {"USD": "25.01"},
    },
}

CHECKPOINT_REPORT = {
    **REPORT,
    "report_id": "RP-01JD3X5Q7W8ZK3M9T2B4C6D8F4",
    "digest_id": None,
    "checked": 0,
    "matched": 0,
    "mismatches": [],
    "summary": {"by_kind": {}, "by_class": {}, "amount_at_risk": {}},
}
