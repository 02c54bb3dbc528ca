"""Reconciliation end to end: a real broker, the reference HQ service and `edge-gateway
run` as child processes, and HQ's own CLI (`recon inject`, `recon digest`) to plant and
send. A store day is made through the gateway's LAN API and settled by HQ's simulated
processor; the test then watches the broker for the gateway's report.

Each store is its own gateway (one store id, one ledger): the diagnosis reads the ledger's
history and the run's other mismatches, so a test decides what shares a store with what.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from edge.contract.timefmt import utcnow
from edge.ledger import people
from edge.ledger.db import apply_migrations, open_sync
from tests.core.daemon import ROOT
from tests.hqlink.harness import PREFIX, Gateway, HqService, Observer, Register

MANAGER = {"manager_id": "m-1", "pin": "482913"}
CLI_TIMEOUT_S = 60.0


def now_text() -> str:
    return utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")


class StoreGateway(Gateway):
    """`edge-gateway run` for one store (its own data directory and store id), with a
    manager who approves by PIN and, unless `settle_within_s` says otherwise, a checkpoint
    that treats any refund older than a few milliseconds as due (so a status difference
    counts at once, with no waiting for a day)."""

    def __init__(
        self, workdir: Path, broker_port: int, store_id: str, settle_within_s: float = 0.001
    ) -> None:
        super().__init__(
            workdir / store_id,
            broker_port,
            EDGE_RECON__SETTLE_WITHIN_S=str(settle_within_s),
            EDGE_RECON__CHECKPOINT_INTERVAL_S="3600",
        )
        self.store_id = store_id
        self.env["EDGE_STORE_ID"] = store_id
        self.base = f"{PREFIX}/{store_id}/{self.gateway_id}"
        self._add_manager()

    def _add_manager(self) -> None:
        conn = open_sync(self.db)
        apply_migrations(conn)
        conn.execute("BEGIN IMMEDIATE")
        pin = people.hash_pin(MANAGER["pin"])
        people.add_manager(conn, MANAGER["manager_id"], "Manager", pin, None, utcnow())
        conn.execute("COMMIT")
        conn.close()

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """A synchronous read of the ledger file (for `Observer.wait_for` predicates)."""
        conn = open_sync(self.db, read_only=True)
        try:
            return [tuple(r) for r in conn.execute(query, args).fetchall()]
        finally:
            conn.close()

    async def register(self, http: aiohttp.ClientSession) -> Register:
        return await Register(http, self.url, self.add_client()).login()

    async def admin(self, http: aiohttp.ClientSession) -> Register:
        conn = open_sync(self.db)
        conn.execute("BEGIN IMMEDIATE")
        creds = people.add_client(conn, f"admin-{uuid.uuid4().hex[:6]}", "admin", utcnow())
        conn.execute("COMMIT")
        conn.close()
        return await Register(http, self.url, creds).login()


@dataclass
class Hq:
    """The reference HQ service (a child process) and its CLI on the same store file."""

    service: HqService
    broker_port: int
    workdir: Path

    async def cli(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge",
            "hq",
            "--db",
            str(self.service.db),
            *args,
            env=self.service.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(CLI_TIMEOUT_S):
            out, err = await proc.communicate()
        return int(proc.returncode or 0), out.decode(), err.decode()

    async def inject(self, what: str, store: str, *args: str) -> dict[str, Any]:
        """`recon inject`: what it planted, as it prints it."""
        rc, out, err = await self.cli("recon", "inject", what, "--store", store, *args)
        assert rc == 0, err
        planted: dict[str, Any] = json.loads(out)
        return planted

    async def digest(self, store: str, *args: str) -> str:
        """`recon digest` for the store's gateway; returns the digest id it sent."""
        rc, out, err = await self.cli(
            "recon", "digest", "--store", store, "--broker-port", str(self.broker_port), *args
        )
        assert rc == 0, err
        return out.split(":", 1)[0]

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = open_sync(self.service.db, read_only=True)
        try:
            return [tuple(r) for r in conn.execute(query, args).fetchall()]
        finally:
            conn.close()


def reports_of(hq: Observer, store: str) -> list[dict[str, Any]]:
    topic = f"{PREFIX}/{store}/gw-01/recon/report"
    return [json.loads(m.payload) for m in hq.messages if m.topic == topic]


async def report_for(hq: Observer, store: str, digest_id: str | None, seen: int = 0) -> Any:
    """The gateway's report for `digest_id` (None: a checkpoint run) as HQ receives it."""

    def found() -> dict[str, Any] | None:
        mine = [r for r in reports_of(hq, store) if r["digest_id"] == digest_id]
        return mine[seen] if len(mine) > seen else None

    return await hq.wait_for(found, within=30)


@dataclass
class Day:
    """The refunds of one store day, by name: "rounding" (a whole line of 3 units, tax
    1.00), "promo" (one of two units, order discount and tax), "partial" (one line of a
    two-line sale), "big" (over the approval threshold, approved), "cash", "no_receipt",
    "goodwill", "credit" (to store credit), "credit_spent" (the sale paid with that credit,
    refunded: card and new credit), "online" (an order HQ holds, looked up)."""

    store: str
    refunds: dict[str, str] = field(default_factory=dict)  # name -> return_id
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> 201 body


def _sale(
    sale_id: str, lines: list[dict[str, Any]], tenders: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "sale_id": sale_id,
        "register_id": "lane-1",
        "occurred_at": now_text(),
        "currency": "USD",
        "lines": lines,
        "tenders": tenders,
        **extra,
    }


def _line(n: str, sku: str, category: str, qty: int, price: str, tax: str) -> dict[str, Any]:
    return {
        "line_id": n,
        "sku": sku,
        "category": category,
        "quantity": qty,
        "unit_price": price,
        "tax": tax,
    }


def _card(amount: str, token: str, n: str = "t1") -> dict[str, Any]:
    return {"tender_id": n, "type": "card", "amount": amount, "payment_token": token}


def online_order(store: str) -> dict[str, Any]:
    """An order HQ holds (loaded with `hq orders load`) that the store never sold."""
    return {
        "sale_id": f"WEB-{store}-1",
        "channel": "online",
        "occurred_at": now_text(),
        "currency": "USD",
        "lines": [_line("1", "HOODIE-L", "apparel", 1, "49.00", "3.92")],
        "tenders": [_card("52.92", f"tok_web_{store}")],
    }


Step = Callable[[], Awaitable[None]]


async def store_day(reg: Register, store: str) -> Day:
    """Sales and refunds of a realistic day, all through the LAN API."""
    day = Day(store)
    n = 0

    async def sell(sale: dict[str, Any]) -> None:
        status, body = await reg.call("POST", "/v1/sales", sale)
        assert status == 201, body

    async def refund(name: str, body: dict[str, Any]) -> dict[str, Any]:
        nonlocal n
        n += 1
        status, data = await reg.call("POST", "/v1/refunds", body, key=f"{store}-{n}")
        assert status == 201, data
        day.refunds[name] = data["return_id"]
        day.bodies[name] = data
        return data

    def sid(x: str) -> str:
        return f"{store}-01-{x}"

    # a whole line of 3 at 3.33 with 1.00 tax: split over units as 0.34, 0.33, 0.33
    await sell(
        _sale(
            sid("A"),
            [
                _line("1", "TOY-3", "toys", 3, "3.33", "1.00"),
                _line("2", "TEE-M", "apparel", 1, "20.00", "1.60"),
            ],
            [_card("32.59", "tok_a")],
            customer_ref="cust-1",
        )
    )
    await refund("rounding", {"sale_id": sid("A"), "lines": [{"line_id": "1", "quantity": 3}]})
    # one of two pairs of shoes, with a 20.00 order discount and tax
    await sell(
        _sale(
            sid("B"),
            [_line("1", "SHOE-9", "shoes", 2, "50.00", "6.40")],
            [_card("86.40", "tok_b")],
            order_discount="20.00",
        )
    )
    await refund("promo", {"sale_id": sid("B"), "lines": [{"line_id": "1", "quantity": 1}]})
    # one line of a two-line sale
    await sell(
        _sale(
            sid("C"),
            [
                _line("1", "MUG-1", "home", 1, "12.00", "0.96"),
                _line("2", "CAP-1", "apparel", 1, "18.00", "1.44"),
            ],
            [_card("32.40", "tok_c")],
            customer_ref="cust-3",
        )
    )
    await refund("partial", {"sale_id": sid("C"), "lines": [{"line_id": "2", "quantity": 1}]})
    # over the approval threshold: approved by PIN
    await sell(
        _sale(
            sid("D"),
            [_line("1", "COAT-1", "apparel", 1, "150.00", "12.00")],
            [_card("162.00", "tok_d")],
        )
    )
    await refund(
        "big",
        {"sale_id": sid("D"), "lines": [{"line_id": "1", "quantity": 1}], "approval": MANAGER},
    )
    # paid and refunded in cash
    await sell(
        _sale(
            sid("E"),
            [_line("1", "SOCK-1", "apparel", 2, "7.50", "1.20")],
            [{"tender_id": "t1", "type": "cash", "amount": "16.20"}],
        )
    )
    await refund("cash", {"sale_id": sid("E"), "lines": [{"line_id": "1", "quantity": 2}]})
    # no receipt, to store credit; goodwill in cash, approved (without approval: refused)
    free = {"sale_id": None, "currency": "USD", "reason": "customer"}
    await refund(
        "no_receipt",
        {**free, "kind": "no_receipt", "amount": "12.00", "approval": MANAGER},
    )
    status, body = await reg.call(
        "POST", "/v1/refunds", {**free, "kind": "goodwill", "amount": "5.00"}, key=f"{store}-gw0"
    )
    assert (status, body["type"].rsplit("/", 1)[-1]) == (403, "approval-required"), body
    await refund(
        "goodwill",
        {**free, "kind": "goodwill", "amount": "5.00", "refund_to": "cash", "approval": MANAGER},
    )
    # store credit issued, spent on a later sale (with a card), that sale refunded
    await sell(
        _sale(
            sid("F"),
            [_line("1", "BAG-1", "bags", 1, "25.00", "0")],
            [_card("25.00", "tok_f")],
            customer_ref="cust-2",
        )
    )
    credit = await refund(
        "credit",
        {
            "sale_id": sid("F"),
            "lines": [{"line_id": "1", "quantity": 1}],
            "refund_to": "store_credit",
        },
    )
    (code,) = [t["store_credit_code"] for t in credit["tenders"]]
    await sell(
        _sale(
            sid("G"),
            [_line("1", "BAG-2", "bags", 1, "40.00", "0")],
            [
                {
                    "tender_id": "t1",
                    "type": "store_credit",
                    "amount": "25.00",
                    "payment_token": code,
                },
                _card("15.00", "tok_g", "t2"),
            ],
            customer_ref="cust-2",
        )
    )
    spent = await refund(
        "credit_spent", {"sale_id": sid("G"), "lines": [{"line_id": "1", "quantity": 1}]}
    )
    assert {t["type"] for t in spent["tenders"]} >= {"card"}, spent
    # an online order the store never sold, brought back: looked up at HQ
    order = f"WEB-{store}-1"
    status, body = await reg.call("POST", "/v1/returns/lookup", {"code": order})
    assert (status, body["source"]) == (200, "hq"), body
    await refund("online", {"sale_id": order, "lines": [{"line_id": "1", "quantity": 1}]})
    return day


def settled(gw: StoreGateway, day: Day) -> bool:
    """HQ settled every refund of the day, and the gateway's ledger knows it."""
    rows = gw.sql("SELECT count(*) FROM returns WHERE status = 'settled'")
    return bool(rows[0][0] == len(day.refunds))


def mismatches(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list(report["mismatches"])


def answers(m: dict[str, Any]) -> tuple[bool | None, ...]:
    a = m["diagnosis"]["answers"]
    return (a["repeats"], a["manual_touch"], a["concentrated"], a["delayed"], a["reproducible"])
