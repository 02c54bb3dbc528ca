"""Reconciliation end to end: the gateway (`edge-gateway run`), the reference HQ service and
a real mosquitto. A store day is made through the LAN API and settled by HQ; HQ's digest
of it matches the ledger exactly; then every mismatch kind and every pattern of the
contract is planted at HQ with `recon inject`, HQ sends a digest with `recon digest`, and
the gateway's report, as HQ receives it, names the kind, class, pattern and the five
answers. `unconfirmed` (HQ never answers) and the checkpoint across a restart of the
gateway process come last.

The plants are made in five stores at once, each its own gateway. The answers read the
run's other mismatches and the ledger's history (`repeats` compares within a kind), so a
store holds one plant per mismatch kind, except where a repeat is the point (0104), and
every figure below is fixed by the store day. A seeded property (three random days) checks
that a digest equal to the ledger yields nothing and N plants exactly N mismatches.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from edge.contract.recon import DiagnosisClass, Pattern
from edge.domain.recon.diagnose import GENERIC_FIXES
from edge.domain.recon.patterns import FIXES
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import PREFIX, HqService, Observer, card_sale
from tests.recon.e2e_rig import (
    Day,
    Hq,
    StoreGateway,
    answers,
    now_text,
    online_order,
    report_for,
    reports_of,
    settled,
    store_day,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOPICS = [
    f"{PREFIX}/+/+/recon/report",
    f"{PREFIX}/_hq/presence/+",
    f"{PREFIX}/+/+/health",
    f"{PREFIX}/+/+/acks",
]
Answers = tuple[bool | None, bool | None, bool | None, bool | None, bool | None]
T, F, N = True, False, None


@dataclass(frozen=True)
class Plant:
    """One `recon inject` (`what`, with `args`) on a refund of the store day (`target`, a
    `Day.refunds` name; None: HQ adds refunds the store never saw), and what the gateway
    must report for it: kind, class, pattern, and per mismatch (one, or one per refund
    added) the answers (repeats, manual_touch, concentrated, delayed, reproducible)."""

    name: str
    what: str
    target: str | None
    kind: str
    class_: DiagnosisClass
    pattern: Pattern | None
    answers: tuple[Answers, ...]
    args: tuple[str, ...] = ()
    hq_knows: bool = True  # HQ's `expected_pattern` is the pattern (see the loop in store)


def plant(
    what: str,
    target: str | None,
    kind: str,
    class_: DiagnosisClass,
    pattern: Pattern | None,
    *answers: Answers,
    args: tuple[str, ...] = (),
    name: str | None = None,
    hq_knows: bool = True,
) -> Plant:
    return Plant(name or what, what, target, kind, class_, pattern, answers, args, hq_knows)


# Per store, its plants. The day's refunds are all receipts but "no_receipt" and
# "goodwill"; "big", "no_receipt" and "goodwill" carry a manager's approval, so
# `manual_touch` is true for them; `delayed` is false wherever HQ answered at once, and
# `concentrated` is null below three mismatches in a run.
STORES: dict[str, list[Plant]] = {
    # the kinds, each alone in its kind: nothing repeats; 7 mismatches spread over the
    # day's sizes, sources and categories (no cluster)
    "0101": [
        plant("missing-at-hq", "no_receipt", "missing-at-hq", "integration",
              "api-sync-failure", (F, T, F, F, N)),
        plant("unknown-to-store", None, "unknown-to-store", "undetermined", None,
              (F, N, F, F, N)),
        plant("amount-mismatch", "partial", "amount-mismatch", "undetermined", None,
              (F, F, F, F, F)),
        plant("currency-mismatch", "cash", "currency-mismatch", "integration",
              "field-mapping", (F, F, F, F, T)),
        plant("missing-reference", "promo", "missing-reference", "integration",
              "partial-sync", (F, F, F, F, N)),
        plant("status-mismatch", "rounding", "status-mismatch", "undetermined", None,
              (F, F, F, F, N)),
        plant("duplicate", "big", "duplicate", "integration", "api-sync-failure",
              (F, T, F, F, N)),
    ],
    "0102": [
        plant("api-sync-failure", "partial", "missing-at-hq", "integration",
              "api-sync-failure", (F, N, F, F, N)),
        plant("register-bypass", None, "unknown-to-store", "process", "register-bypass",
              (F, N, F, F, N)),
        plant("field-mapping", "promo", "amount-mismatch", "integration", "field-mapping",
              (F, F, F, F, T)),
        plant("partial-sync", "online", "missing-reference", "integration", "partial-sync",
              (F, F, F, F, N)),
        plant("async-gap", "big", "status-mismatch", "integration", "async-gap",
              (F, T, F, T, N)),
    ],
    "0103": [
        plant("verbal-approval", None, "unknown-to-store", "process", "verbal-approval",
              (F, N, N, F, N)),
        plant("rounding-drift", "rounding", "amount-mismatch", "integration",
              "rounding-drift", (F, F, N, F, T)),
    ],
    # two arbitrary amount differences on receipts: each repeats the other, and the promo
    # mismatch repeats them (same kind and refund kind; they have no pattern)
    "0104": [
        plant("cross-team-handoff", None, "unknown-to-store", "process",
              "cross-team-handoff", (F, N, F, F, N)),
        plant("promo-mismatch", "promo", "amount-mismatch", "integration", "promo-mismatch",
              (T, F, F, F, T)),
        plant("amount-mismatch", "partial", "amount-mismatch", "undetermined", None,
              (T, F, F, F, F), args=("--units", "5"), name="amount-repeats-1"),
        plant("amount-mismatch", "cash", "amount-mismatch", "undetermined", None,
              (T, F, F, F, F), args=("--units", "-3"), name="amount-repeats-2"),
    ],
    # the loop outside the store (two entries), and the store's own loop under an amount
    # difference: the credit's code ties the card refund to the refund that issued it
    "0105": [
        plant("store-credit-loop", None, "unknown-to-store", "process", "store-credit-loop",
              (F, T, T, F, N), (F, N, T, F, N)),
        plant("amount-mismatch", "credit_spent", "amount-mismatch", "process",
              "store-credit-loop", (F, F, T, F, F), args=("--units", "7"),
              name="store-credit-loop-in-store", hq_knows=False),
    ],
}  # fmt: skip
PLANTS = {p.name: (store, p) for store, plants in STORES.items() for p in plants}


@dataclass
class Outcome:
    day: Day
    planted: dict[str, dict[str, Any]]  # injection -> what `recon inject` printed
    report: dict[str, Any]  # the gateway's report of the digest, as HQ received it
    lan: dict[str, Any]  # GET /v1/reconciliation at the gateway, after it


@dataclass
class World:
    broker: Mosquitto
    hq: Hq
    obs: Observer
    http: aiohttp.ClientSession
    workdir: Path
    gateways: list[StoreGateway]

    async def open_store(self, store: str) -> tuple[StoreGateway, Day]:
        """A gateway for `store`, online, with its store day made and settled."""
        gw = StoreGateway(self.workdir, self.broker.port, store)
        self.gateways.append(gw)
        await gw.start()
        await self.obs.wait_for(
            lambda: (
                (self.obs.latest(f"{gw.base}/health") or {}).get("link", {}).get("state")
                == "online"
            )
        )
        day = await store_day(await gw.register(self.http), store)
        await self.obs.wait_for(lambda: settled(gw, day))
        return gw, day

    async def digest(self, store: str) -> dict[str, Any]:
        """HQ's digest of the store, sent with `recon digest`; the gateway's report of it."""
        digest_id = await self.hq.digest(store)
        return dict(await report_for(self.obs, store, digest_id))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    workdir = tmp_path_factory.mktemp("recon-e2e")
    broker = Mosquitto(workdir / "broker")
    broker.start()
    service = HqService(workdir, broker.port)
    hq = Hq(service, broker.port, workdir)
    orders = workdir / "orders.json"
    orders.write_text(json.dumps([online_order(s) for s in [*STORES, *PROPERTY_STORES]]))
    rc, _, err = await hq.cli("orders", "load", str(orders))
    assert rc == 0, err
    world = World(broker, hq, Observer(broker.port, TOPICS), aiohttp.ClientSession(), workdir, [])
    try:
        async with world.obs, world.http:
            await service.start(world.obs)
            yield world
    finally:
        for gw in world.gateways:
            gw.stop()
        service.stop()
        broker.stop()


async def plant_store(world: World, store: str) -> Outcome:
    gw, day = await world.open_store(store)
    clean = await world.digest(store)
    # HQ's digest of a settled day is the ledger: every refund checked, every one matched
    assert (clean["checked"], clean["matched"], clean["mismatches"]) == (len(day.refunds),) * 2 + (
        [],
    )
    planted = {}
    for p in STORES[store]:
        target = ("--return-id", day.refunds[p.target]) if p.target else ()
        planted[p.name] = await world.hq.inject(p.what, store, *target, *p.args)
    report = await world.digest(store)
    admin = await gw.admin(world.http)
    status, lan = await admin.call("GET", "/v1/reconciliation")
    assert status == 200, lan
    return Outcome(day, planted, report, lan)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def outcomes(world: World) -> dict[str, Outcome]:
    done = await asyncio.gather(*(plant_store(world, s) for s in STORES))
    return dict(zip(STORES, done, strict=True))


def mine(outcome: Outcome, name: str) -> list[dict[str, Any]]:
    """The report's mismatches that the plant `name` made, in the order of what it
    changed (its refund, or the refunds it added)."""
    planted = outcome.planted[name]
    keys = dict.fromkeys([planted["return_id"], *planted["removed"], *planted["added"]])
    by_key = {m["return_id"] or m["external_ref"]: m for m in outcome.report["mismatches"]}
    return [by_key[k] for k in keys if k in by_key]


@pytest.mark.parametrize("name", list(PLANTS))
async def test_each_plant_is_found_and_diagnosed(outcomes: dict[str, Outcome], name: str) -> None:
    store, p = PLANTS[name]
    outcome = outcomes[store]
    planted = outcome.planted[name]
    # HQ says what it planted, and what the gateway should make of it
    assert planted["expected_kind"] == p.kind
    if p.hq_knows:
        assert planted["expected_pattern"] == p.pattern
    found = mine(outcome, name)
    assert len(found) == len(p.answers), outcome.report["mismatches"]
    open_at_gateway = {m["mismatch_id"]: m for m in outcome.lan["open_mismatches"]}
    for m, expected in zip(found, p.answers, strict=True):
        d = m["diagnosis"]
        assert (m["kind"], d["class"], d["pattern"]) == (p.kind, p.class_, p.pattern), d
        assert answers(m) == expected, d["evidence"]
        assert d["evidence"][0].startswith(p.kind)
        assert d["fix_sequence"]
        assert m["currency"] == "USD"
        # the gateway holds it open, diagnosed as it told HQ
        held = open_at_gateway[m["mismatch_id"]]
        assert (held["kind"], held["diagnosis"]["class"], held["diagnosis"]["pattern"]) == (
            m["kind"],
            d["class"],
            d["pattern"],
        )
        # the fix steps are the pattern's own (integration first when both)
        steps = FIXES[p.pattern] if p.pattern else GENERIC_FIXES[p.class_]
        ident = m["return_id"] or m["external_ref"]
        assert d["fix_sequence"][: len(steps)] == [s.format(id=ident) for s in steps]


@pytest.mark.parametrize("store", list(STORES))
async def test_a_report_lists_exactly_the_planted_differences(
    outcomes: dict[str, Outcome], store: str
) -> None:
    outcome = outcomes[store]
    report = outcome.report
    expected = sum(len(p.answers) for p in STORES[store])
    assert len(report["mismatches"]) == expected
    assert {m["mismatch_id"] for p in STORES[store] for m in mine(outcome, p.name)} == {
        m["mismatch_id"] for m in report["mismatches"]
    }
    by_kind: dict[str, int] = {}
    for p in STORES[store]:
        by_kind[p.kind] = by_kind.get(p.kind, 0) + len(p.answers)
    assert report["summary"]["by_kind"] == by_kind
    # the HQ-only refunds are checked too; every other refund of the day matched
    hq_only = [m for m in report["mismatches"] if m["return_id"] is None]
    assert report["checked"] == len(outcome.day.refunds) + len(hq_only)
    assert report["matched"] == report["checked"] - expected
    assert outcome.lan["latest_report"]["report_id"] == report["report_id"]
    assert outcome.lan["open_count"] == expected


async def test_hq_stores_each_report_and_shows_the_fleet(
    world: World, outcomes: dict[str, Outcome]
) -> None:
    rc, out, err = await world.hq.cli("recon", "report", "--format", "json")
    assert rc == 0, err
    view = json.loads(out)
    for store, outcome in outcomes.items():
        expected: dict[tuple[str, str, str | None], int] = {}
        for m in outcome.report["mismatches"]:
            key = (m["kind"], m["diagnosis"]["class"], m["diagnosis"]["pattern"])
            expected[key] = expected.get(key, 0) + 1
        rows = {
            (r["kind"], r["class"], r["pattern"]): r["count"]
            for r in view["rows"]
            if r["store_id"] == store
        }
        assert rows == expected, store
    stored = world.hq.sql("SELECT report_id FROM recon_reports")
    assert {o.report["report_id"] for o in outcomes.values()} <= {r[0] for r in stored}


# ---- a property: equal sides match, N differences are N mismatches -----------------------

PROPERTY_SEEDS = (11, 12, 13)
PROPERTY_STORES = [f"02{seed}" for seed in PROPERTY_SEEDS]
# injections that each make exactly one mismatch, of this kind
ONE_EACH = {
    "amount-mismatch": "amount-mismatch",
    "currency-mismatch": "currency-mismatch",
    "missing-reference": "missing-reference",
    "status-mismatch": "status-mismatch",
    "duplicate": "duplicate",
    "missing-at-hq": "missing-at-hq",
    "unknown-to-store": "unknown-to-store",
    "register-bypass": "unknown-to-store",
    "verbal-approval": "unknown-to-store",
    "cross-team-handoff": "unknown-to-store",
}
HQ_ONLY = {"unknown-to-store", "register-bypass", "verbal-approval", "cross-team-handoff"}


def cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)) / 100


async def random_sales(world: World, gw: StoreGateway, day: Day, rng: random.Random) -> None:
    """A few more card sales (1-2 lines, order discount or not) and a refund of some units
    of one line of each, all under the approval threshold."""
    reg = await gw.register(world.http)
    for n in range(rng.randint(2, 5)):
        lines: list[dict[str, Any]] = []
        for i in range(rng.randint(1, 2)):
            qty, price = rng.randint(1, 2), cents(rng, 100, 2000)
            tax = (qty * price * Decimal("0.0825")).quantize(Decimal("0.01"))
            lines.append(
                {
                    "line_id": str(i + 1),
                    "sku": f"SKU-{n}-{i}",
                    "category": "misc",
                    "quantity": qty,
                    "unit_price": str(price),
                    "tax": str(tax),
                }
            )
        gross = sum((ln["quantity"] * Decimal(ln["unit_price"]) for ln in lines), Decimal(0))
        discount = rng.choice([Decimal(0), (gross * Decimal("0.15")).quantize(Decimal("0.01"))])
        total = gross - discount + sum((Decimal(ln["tax"]) for ln in lines), Decimal(0))
        sale_id = f"{gw.store_id}-02-{n}"
        sale = {
            "sale_id": sale_id,
            "occurred_at": now_text(),
            "currency": "USD",
            "lines": lines,
            "order_discount": str(discount),
            "tenders": [
                {
                    "tender_id": "t1",
                    "type": "card",
                    "amount": str(total),
                    "payment_token": f"tok_{sale_id}",
                }
            ],
        }
        status, body = await reg.call("POST", "/v1/sales", sale)
        assert status == 201, body
        line = rng.choice(lines)
        back = {"line_id": line["line_id"], "quantity": rng.randint(1, line["quantity"])}
        status, body = await reg.call(
            "POST", "/v1/refunds", {"sale_id": sale_id, "lines": [back]}, key=f"r-{sale_id}"
        )
        assert status == 201, body
        day.refunds[f"random-{n}"] = body["return_id"]
        day.bodies[f"random-{n}"] = body
    await world.obs.wait_for(lambda: settled(gw, day))


async def property_example(world: World, seed: int) -> None:
    rng = random.Random(seed)
    store = f"02{seed}"
    gw, day = await world.open_store(store)
    await random_sales(world, gw, day, rng)
    # equal sides: every refund checked and matched, nothing found
    clean = await world.digest(store)
    assert clean["mismatches"] == [], (seed, clean["mismatches"])
    assert clean["checked"] == clean["matched"] == len(day.refunds), seed
    # N differences, each on its own refund: exactly N mismatches, of the planted kinds
    totals = {Decimal(b["total"]) for b in day.bodies.values()}
    targets = [k for k in day.refunds if day.bodies[k]["sale_id"] is not None]
    rng.shuffle(targets)
    planted: list[str] = []
    for what in rng.sample(list(ONE_EACH), rng.randint(1, 6)):
        if what in HQ_ONLY:
            # an amount no refund of the store has: an HQ-only refund must match none
            amount = next(a for a in iter(lambda: cents(rng, 500, 9000), None) if a not in totals)
            await world.hq.inject(what, store, "--amount", str(amount))
        else:
            extra = ("--units", str(rng.choice([-1, 1]) * rng.randint(1, 500)))
            args = extra if what == "amount-mismatch" else ()
            await world.hq.inject(what, store, "--return-id", day.refunds[targets.pop()], *args)
        planted.append(ONE_EACH[what])
    report = await world.digest(store)
    found = sorted(m["kind"] for m in report["mismatches"])
    assert found == sorted(planted), (seed, found, planted)


async def test_equal_sides_match_and_n_differences_are_n_mismatches(world: World) -> None:
    await asyncio.gather(*(property_example(world, seed) for seed in PROPERTY_SEEDS))


# ---- the checkpoint, across a restart of the gateway process -----------------------------


async def report_by_id(obs: Observer, store: str, report_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any]:  # empty (falsy) until it arrives
        return next((r for r in reports_of(obs, store) if r["report_id"] == report_id), {})

    return await obs.wait_for(found, within=30)


async def test_unconfirmed_survives_a_gateway_restart_and_resolves_once_hq_settles(
    tmp_path: Path,
) -> None:
    # HQ is down: the refund reaches the broker, nobody settles it
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    service = HqService(tmp_path, broker.port)
    gw = StoreGateway(tmp_path, broker.port, "0301")
    try:
        async with Observer(broker.port, TOPICS) as obs, aiohttp.ClientSession() as http:
            await gw.start()
            await obs.wait_for(
                lambda: (
                    (obs.latest(f"{gw.base}/health") or {}).get("link", {}).get("state") == "online"
                )
            )
            reg = await gw.register(http)
            status, body = await reg.call("POST", "/v1/sales", card_sale("0301-01-A", "25.00"))
            assert status == 201, body
            status, refund = await reg.call(
                "POST",
                "/v1/refunds",
                {"sale_id": "0301-01-A", "lines": [{"line_id": "1", "quantity": 1}]},
                key="k-1",
            )
            assert (status, refund["offline"]) == (201, False), refund
            rid = refund["return_id"]
            # the checkpoint, run by the operator: HQ has not decided it in time
            status, run = await (await gw.admin(http)).call("POST", "/v1/reconciliation/runs")
            assert status == 202, run
            report = await report_by_id(obs, "0301", run["report_id"])
            (m,) = report["mismatches"]
            d = m["diagnosis"]
            assert (m["kind"], m["return_id"], m["store_amount"], m["hq_amount"]) == (
                "unconfirmed",
                rid,
                "25.00",
                None,
            )
            assert (d["class"], d["pattern"]) == ("integration", "api-sync-failure")
            # one finding, no history, HQ's side unknown, never delivered: no answer is known
            assert answers(m) == (N, N, N, N, N), d["evidence"]
            assert "no delivery to HQ on record" in d["evidence"][1]
            assert report["digest_id"] is None

            # the gateway process restarts: the mismatch is still open, and still this one
            gw.stop()
            await gw.start()
            admin = await gw.admin(http)
            status, lan = await admin.call("GET", "/v1/reconciliation")
            assert status == 200, lan
            assert [x["mismatch_id"] for x in lan["open_mismatches"]] == [m["mismatch_id"]]
            assert lan["latest_report"]["report_id"] == report["report_id"]

            # HQ comes back: the outbox sends the refund again, HQ settles it
            await service.start(obs)
            await obs.wait_for(lambda: obs.outcomes.get(rid))
            await obs.wait_for(
                lambda: (
                    gw.sql("SELECT status FROM returns WHERE return_id = ?", rid) == [("settled",)]
                )
            )
            status, run = await admin.call("POST", "/v1/reconciliation/runs")
            assert status == 202, run
            resolved = await report_by_id(obs, "0301", run["report_id"])
            assert resolved["mismatches"] == []
            status, lan = await admin.call("GET", "/v1/reconciliation")
            assert (lan["open_count"], lan["open_mismatches"]) == (0, [])
            assert gw.sql(
                "SELECT state FROM recon_mismatches WHERE mismatch_id = ?", m["mismatch_id"]
            ) == [("resolved",)]
            # and HQ stored the report that resolved it
            hq = Hq(service, broker.port, tmp_path)
            await obs.wait_for(
                lambda: hq.sql(
                    "SELECT 1 FROM recon_reports WHERE report_id = ?", resolved["report_id"]
                )
            )
    finally:
        gw.stop()
        service.stop()
        broker.stop()
