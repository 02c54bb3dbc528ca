"""Shared steps of the fault tests: drive refunds, wait for the drain, check both stores."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from tests.hqlink.harness import Gateway, Observer, Register, cash_sale

SALE_UNITS = 100


async def record_sales(reg: Register, count: int, prefix: str = "S") -> list[str]:
    """`count` cash sales of SALE_UNITS units each; returns their ids."""
    ids = [f"{prefix}-{uuid.uuid4().hex[:8]}-{n}" for n in range(count)]
    for sale_id in ids:
        status, body = await reg.call("POST", "/v1/sales", cash_sale(sale_id, SALE_UNITS))
        assert status == 201, body
    return ids


async def refund_one(reg: Register, sale_id: str) -> dict[str, Any]:
    body = {"sale_id": sale_id, "lines": [{"line_id": "1", "quantity": 1}]}
    status, refund = await reg.call("POST", "/v1/refunds", body, key=secrets.token_urlsafe(18))
    assert status == 201, refund
    return refund


async def refund_many(
    reg: Register, sale_ids: list[str], count: int, parallel: int = 16
) -> list[dict[str, Any]]:
    """`count` one-unit refunds spread over the sales, `parallel` at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(n: int) -> dict[str, Any]:
        async with gate:
            return await refund_one(reg, sale_ids[n % len(sale_ids)])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def wait_drained(
    obs: Observer, gw: Gateway, refunds: int, within: float = 60.0
) -> dict[str, Any]:
    """Until the gateway's health, taken after its `refunds` refunds, says nothing waits."""

    def drained() -> dict[str, Any] | None:
        health = obs.latest(f"{gw.base}/health")
        if (
            health
            and health["refunds_today"] >= refunds
            and health["outbox"]["pending"] == 0
            and health["refunds_awaiting_hq"] == 0
        ):
            return health
        return None

    return await obs.wait_for(drained, within)


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


def assert_exactly_once(gw: Gateway, hq_db: Path) -> dict[str, int]:
    """Every outbox event is held once at HQ, seq has no gap, every refund decided once."""
    assert "Traceback" not in gw.log.read_text(), "the gateway logged a crash"
    outbox = query(gw.db, "SELECT seq, event_id, state FROM outbox ORDER BY seq")
    (last_seq,) = query(gw.db, "SELECT value FROM counters WHERE name = 'outbox_seq'")[0]
    assert [row[0] for row in outbox] == list(range(1, last_seq + 1)), "gateway seq has gaps"
    assert {row[2] for row in outbox} == {"acked"}
    held = query(hq_db, "SELECT event_id, seq FROM events WHERE gateway_id = ?", gw.gateway_id)
    assert len(held) == len({e for e, _ in held}) == last_seq
    assert {e for e, _ in held} == {row[1] for row in outbox}, "HQ holds other events"
    stream = query(
        hq_db,
        "SELECT contiguous_through, high_seq, duplicates FROM streams WHERE gateway_id = ?",
        gw.gateway_id,
    )[0]
    assert stream[0] == stream[1] == last_seq, "HQ sees a seq gap"
    returns = dict(query(gw.db, "SELECT return_id, status FROM returns"))
    decided = dict(query(hq_db, "SELECT return_id, status FROM refunds"))
    assert decided == returns, "gateway and HQ disagree on refund outcomes"
    audits = Counter(
        subject
        for (subject,) in query(
            gw.db,
            "SELECT subject FROM audit_log WHERE action IN ('refund.settled', 'refund.declined')",
        )
    )
    assert set(audits.values()) <= {1}, "an outcome was applied twice"
    assert set(audits) == set(returns), "a refund was never decided"
    return {"events": last_seq, "duplicates_at_hq": int(stream[2]), "refunds": len(returns)}
