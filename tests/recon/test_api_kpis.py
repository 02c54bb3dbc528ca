"""`GET /v1/kpis` on a ledger seeded through the API, with every time then set to a known
value, so each figure is known exactly; its roles and its refusals of a bad period."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from edge.contract.timefmt import utcnow
from edge.ledger import kpis
from tests.core.conftest import Gateway, make_settings, sale
from tests.recon.lan import lan_gateway

PERIOD = "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with lan_gateway(make_settings(tmp_path)) as gateway:
        yield gateway


def sale_id(n: int) -> str:
    return f"0042-03-20261122-{n:04d}"


async def sell(gw: Gateway, n: int, customer: str | None) -> None:
    extra: dict[str, Any] = {"sale_id": sale_id(n)}
    if customer is not None:
        extra["customer_ref"] = customer
    status, body, _ = await gw.call("POST", "/v1/sales", sale(**extra))
    assert status == 201, body


async def look_up(gw: Gateway, n: int) -> None:
    status, body, _ = await gw.call("POST", "/v1/returns/lookup", {"code": sale_id(n)})
    assert (status, body["sale"]["sale_id"]) == (200, sale_id(n)), body


async def refund(gw: Gateway, n: int, key: str) -> str:
    body = {"sale_id": sale_id(n), "lines": [{"line_id": "1", "quantity": 1}]}
    status, data, _ = await gw.call("POST", "/v1/refunds", body, key=key)
    assert status == 201, data
    return str(data["return_id"])


async def run_sql(gw: Gateway, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    def job(conn: sqlite3.Connection) -> None:
        for sql, args in statements:
            conn.execute(sql, args)

    await gw.ledger.write(job)


def mismatch_row(n: int, detected: str) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO recon_mismatches (mismatch_id, key, scope, kind, currency, at_risk, class,"
        " diagnosis, refund_at, first_detected_at, detected_at, last_seen_at, state)"
        " VALUES (?, ?, 'digest', 'missing-at-hq', 'USD', '17.09', 'integration', '{}', ?, ?,"
        " ?, ?, 'open')",
        (f"M-{n}", f"key-{n}", detected, detected, detected, detected),
    )


async def seed(gw: Gateway) -> None:
    """Refunds in October 2026 (times in seconds after their look-up / before HQ's answer):

    R1 sale 1 (cust-a)  look-up 30 s before, settled 120 s after; cust-a buys again 10 days on
    R2 sale 2 (cust-b)  look-up 90 s before (and an older one), offline, settled 3600 s after;
                        cust-b buys again only 40 days on
    R3 sale 3           look-up 10 s before, still pending
    R4 sale 3 again     no look-up since R3, declined 60 s after
    R5 sale 4 (cust-g)  no look-up, settled 30 s after; cust-g buys again 29 days on
    R6 sale 4 again     in September: outside the period
    Mismatches: two first detected in October, one in September.
    """
    for n, customer in [(1, "cust-a"), (2, "cust-b"), (3, None), (4, "cust-g")]:
        await sell(gw, n, customer)
    for n, customer in [(5, "cust-a"), (6, "cust-b"), (7, "cust-g"), (8, "cust-x")]:
        await sell(gw, n, customer)
    for n in (1, 2, 2, 3):
        await look_up(gw, n)
    r1 = await refund(gw, 1, "k1")
    gw.ctx.link.online = False  # type: ignore[misc]
    r2 = await refund(gw, 2, "k2")
    gw.ctx.link.online = True  # type: ignore[misc]
    r3 = await refund(gw, 3, "k3")
    r4 = await refund(gw, 3, "k4")
    r5 = await refund(gw, 4, "k5")
    r6 = await refund(gw, 4, "k6")

    def returned(rid: str, created: str, status: str, decided: str) -> tuple[str, tuple[Any, ...]]:
        return (
            "UPDATE returns SET created_at = ?, status = ?, updated_at = ? WHERE return_id = ?",
            (created, status, decided, rid),
        )

    def occurred(n: int, at: str) -> tuple[str, tuple[Any, ...]]:
        return ("UPDATE sales SET occurred_at = ? WHERE sale_id = ?", (at, sale_id(n)))

    lookups = [  # in the order they were made: sale 1, sale 2 (twice), sale 3
        "2026-10-05T09:59:30.000Z",
        "2026-10-06T08:00:00.000Z",
        "2026-10-06T09:58:30.000Z",
        "2026-10-07T09:59:50.000Z",
    ]
    await run_sql(
        gw,
        [
            *(occurred(n, "2026-09-01T10:00:00.000Z") for n in (1, 2, 3, 4)),
            occurred(5, "2026-10-15T10:00:00.000Z"),  # cust-a: 10 days after R1
            occurred(6, "2026-11-15T10:00:00.000Z"),  # cust-b: 40 days after R2
            occurred(7, "2026-11-07T09:00:00.000Z"),  # cust-g: 29 days after R5
            occurred(8, "2026-10-20T10:00:00.000Z"),  # cust-x: never refunded
            returned(r1, "2026-10-05T10:00:00.000Z", "settled", "2026-10-05T10:02:00.000Z"),
            returned(r2, "2026-10-06T10:00:00.000Z", "settled", "2026-10-06T11:00:00.000Z"),
            returned(r3, "2026-10-07T10:00:00.000Z", "pending", "2026-10-07T10:00:00.000Z"),
            returned(r4, "2026-10-08T10:00:00.000Z", "declined", "2026-10-08T10:01:00.000Z"),
            returned(r5, "2026-10-09T10:00:00.000Z", "settled", "2026-10-09T10:00:30.000Z"),
            returned(r6, "2026-09-20T10:00:00.000Z", "settled", "2026-09-20T10:00:05.000Z"),
            *(
                ("UPDATE sale_lookups SET looked_up_at = ? WHERE rowid = ?", (at, i + 1))
                for i, at in enumerate(lookups)
            ),
            mismatch_row(1, "2026-10-10T00:00:00.000Z"),
            mismatch_row(2, "2026-10-31T23:59:59.999Z"),
            mismatch_row(3, "2026-09-30T23:59:59.999Z"),
        ],
    )


async def test_kpis_on_a_seeded_ledger(gw: Gateway) -> None:
    await seed(gw)
    status, kpis, _ = await gw.call("GET", f"/v1/kpis?{PERIOD}", role="monitor")
    assert status == 200, kpis
    assert kpis == {
        "from": "2026-10-01T00:00:00.000Z",
        "to": "2026-11-01T00:00:00.000Z",
        # R1 30 s, R2 90 s, R3 10 s (R4 had no look-up since R3, R5 none at all)
        "refund_processing": {"samples": 3, "p50_s": 30.0, "p95_s": 90.0},
        # R5 30 s, R4 60 s, R1 120 s, R2 3600 s (R3 is still pending)
        "hq_settlement": {"samples": 4, "p50_s": 60.0, "p95_s": 3600.0},
        "mismatch_rate": {"mismatches": 2, "refunds": 5, "rate": 0.4},
        "offline_share": {"offline": 1, "refunds": 5, "rate": 0.2},
        # cust-a and cust-g bought again within 30 days, cust-b did not
        "repeat_purchase": {"customers": 3, "repeat": 2, "rate": 0.6667, "window_days": 30},
    }


async def test_kpis_of_a_period_without_refunds_have_no_rates(gw: Gateway) -> None:
    await seed(gw)
    status, kpis, _ = await gw.call(
        "GET", "/v1/kpis?from=2026-08-01T00:00:00%2B02:00&to=2026-09-01T00:00:00Z", role="admin"
    )
    assert status == 200, kpis
    assert kpis["from"] == "2026-07-31T22:00:00.000Z"
    assert kpis["refund_processing"] == {"samples": 0, "p50_s": None, "p95_s": None}
    assert kpis["offline_share"] == {"offline": 0, "refunds": 0, "rate": None}
    assert kpis["mismatch_rate"]["rate"] is None
    assert kpis["repeat_purchase"]["rate"] is None


async def test_kpis_default_to_the_last_30_days(gw: Gateway) -> None:
    await sell(gw, 1, "cust-a")
    await look_up(gw, 1)
    await refund(gw, 1, "k1")
    status, kpis, _ = await gw.call("GET", "/v1/kpis", role="monitor")
    assert status == 200, kpis
    assert kpis["offline_share"] == {"offline": 0, "refunds": 1, "rate": 0.0}
    assert kpis["refund_processing"]["samples"] == 1
    assert kpis["repeat_purchase"] == {"customers": 1, "repeat": 0, "rate": 0.0, "window_days": 30}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=yesterday", "from"),
        ("to=2026-10-01", "to"),
        ("to=2026-10-01T00:00:00", "to"),
        ("from=2026-13-01T00:00:00Z", "from"),
        ("from=2026-10-01T00:00:00 01:00", "from"),  # an unencoded + arrives as a space
        ("from=2026-10-02T00:00:00Z&to=2026-10-01T00:00:00Z", "from"),
        ("from=2026-10-01T00:00:00Z&to=2026-10-01T00:00:00Z", "from"),
        ("from=2024-01-01T00:00:00Z&to=2026-10-01T00:00:00Z", "from"),
        ("to=0001-01-02T00:00:00Z", "to"),
    ],
)
async def test_a_bad_period_is_refused_naming_the_field(
    gw: Gateway, query: str, field: str
) -> None:
    status, problem, _ = await gw.call("GET", f"/v1/kpis?{query}", role="monitor")
    assert status == 422, problem
    assert problem["type"].endswith("/validation-failed")
    assert [e["field"] for e in problem["errors"]] == [field]


async def test_kpis_are_for_admins_and_monitors_only(gw: Gateway) -> None:
    status, problem, _ = await gw.call("GET", f"/v1/kpis?{PERIOD}", role="register")
    assert (status, problem["type"].rsplit("/", 1)[1]) == (403, "forbidden")
    status, problem, _ = await gw.call("GET", f"/v1/kpis?{PERIOD}", role="handheld")
    assert status == 403
    async with gw.http.get(f"{gw.base}/v1/kpis") as r:
        assert r.status == 401


async def test_old_look_ups_are_pruned(gw: Gateway) -> None:
    await sell(gw, 1, None)
    await look_up(gw, 1)
    await look_up(gw, 1)
    await run_sql(
        gw,
        [("UPDATE sale_lookups SET looked_up_at = '2020-01-01T00:00:00.000Z' WHERE rowid = 1", ())],
    )
    before = utcnow() - kpis.LOOKUPS_KEPT
    assert await gw.ledger.write(partial(kpis.prune_lookups, before=before)) == 1
    rows = await gw.ledger.read(
        lambda conn: conn.execute("SELECT rowid FROM sale_lookups").fetchall()
    )
    assert [tuple(r) for r in rows] == [(2,)]
