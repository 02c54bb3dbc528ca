"""The HQ store on a real SQLite file and a real PostgreSQL database: de-duplication, seq
gaps, refund claims and outcomes, orders."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select

from edge.contract.timefmt import utcnow
from edge.domain.ids import new_ulid
from edge.hq import settlement, store
from edge.hq.settlement import Decided
from edge.hq.store import HqStore, Incoming
from edge.hq.tables import events, refunds


def envelope(seq: int, type_: str = "sale.recorded", **data: Any) -> dict[str, Any]:
    return {
        "event_id": new_ulid(utcnow()),
        "type": type_,
        "schema": 1,
        "store_id": "0042",
        "gateway_id": "gw-01",
        "seq": seq,
        "occurred_at": "2026-11-22T10:15:00Z",
        "data": data,
    }


def incoming(env: dict[str, Any]) -> Incoming:
    return Incoming("0042", "gw-01", json.dumps(env).encode())


@pytest.fixture
async def hq(db_url: str) -> AsyncIterator[HqStore]:
    async with HqStore(db_url) as opened:
        yield opened


async def ingest(hq: HqStore, envs: list[dict[str, Any]]) -> store.IngestResult:
    return await hq.write(partial(store.ingest, items=[incoming(e) for e in envs]))


async def count(hq: HqStore, column: Any) -> int:
    async def query(conn: Any) -> int:
        return int((await conn.execute(select(func.count(column)))).scalar_one())

    return await hq.read(query)


async def test_each_event_is_held_once_and_every_copy_acked(hq: HqStore) -> None:
    envs = [envelope(n) for n in range(1, 4)]
    first = await ingest(hq, envs)
    again = await ingest(hq, [envs[1], envs[1]])
    assert (first.new_events, first.duplicates) == (3, 0)
    assert (again.new_events, again.duplicates) == (0, 2)
    assert [a.body["status"] for a in first.acks + again.acks] == ["accepted"] * 5
    assert await count(hq, events.c.event_id) == 3
    (stream,) = await hq.read(store.stream_report)
    assert (stream["received"], stream["duplicates"], stream["gap"]) == (3, 2, None)


async def test_a_copy_within_one_batch_is_a_duplicate(hq: HqStore) -> None:
    env = envelope(1)
    result = await ingest(hq, [env, env])
    assert (result.new_events, result.duplicates) == (1, 1)
    assert len(result.acks) == 2


async def test_seq_gaps_are_detected_and_closed(hq: HqStore) -> None:
    e1, e2, e3, e4 = (envelope(n) for n in range(1, 5))
    opened = await ingest(hq, [e1, e3, e4])
    assert opened.gaps_opened == ["0042/gw-01"]
    (stream,) = await hq.read(store.stream_report)
    assert stream["gap"] == {"after": 1, "up_to": 4}
    assert stream["gap_since"] is not None
    await ingest(hq, [e2])
    (stream,) = await hq.read(store.stream_report)
    assert (stream["contiguous_through"], stream["gap"], stream["gap_since"]) == (4, None, None)


async def test_concurrent_batches_of_one_gateway_leave_no_false_gap(hq: HqStore) -> None:
    """Batches committed in any order (as by several instances) still close every gap."""
    envs = [envelope(n) for n in range(1, 61)]
    batches = [envs[n::6] for n in range(6)]  # every batch has holes the others fill
    await asyncio.gather(*(ingest(hq, batch) for batch in batches))
    (stream,) = await hq.read(store.stream_report)
    assert (stream["contiguous_through"], stream["high_seq"], stream["received"]) == (60, 60, 60)
    assert stream["gap_since"] is None


async def test_a_foreign_or_invalid_envelope_is_rejected(hq: HqStore) -> None:
    wrong_gateway = {**envelope(1), "gateway_id": "gw-99"}
    invalid = {**envelope(2), "seq": 0}
    items = [incoming(wrong_gateway), incoming(invalid), Incoming("0042", "gw-01", b"{")]
    result = await hq.write(partial(store.ingest, items=items))
    assert [a.body["status"] for a in result.acks] == ["rejected", "rejected"]
    assert len(result.malformed) == 3
    assert result.new_events == 0
    assert await count(hq, events.c.event_id) == 0


async def test_a_duplicate_refund_event_is_acked_with_its_outcome(hq: HqStore) -> None:
    refund = envelope(1, "refund.requested", return_id="R-0042-X", currency="USD", total="5.00")
    first = await ingest(hq, [refund])
    assert first.new_refunds == ["R-0042-X"]
    recorded = await hq.write(
        partial(
            settlement.record_decisions,
            decided=[
                Decided("R-0042-X", "settled", "P-1", "E-1", None),
                Decided("R-0042-X", "declined", None, None, "too late"),
            ],
            instance="hq-a",
        )
    )
    (decided,) = recorded.acks  # the first decision wins; only it is acked
    assert recorded.lost == ["R-0042-X"]
    assert decided.body["status"] == "settled"
    again = await ingest(hq, [refund])
    assert again.acks[0].body == decided.body
    assert again.new_refunds == []
    assert await hq.read(store.refund_counts) == {"settled": 1}


async def test_one_refund_is_held_once_whatever_event_brings_it(hq: HqStore) -> None:
    data = {"return_id": "R-0042-Y", "currency": "USD", "total": "1.00"}
    first = await ingest(hq, [envelope(1, "refund.requested", **data)])
    second = await ingest(hq, [envelope(2, "refund.requested", **data)])
    assert (first.new_refunds, second.new_refunds) == (["R-0042-Y"], [])
    assert await count(hq, refunds.c.return_id) == 1


async def test_only_one_instance_holds_a_refund_at_a_time(hq: HqStore) -> None:
    await ingest(hq, [envelope(1, "refund.requested", return_id="R-1", currency="USD", total="1")])

    def claim(instance: str, lease_ms: int = 60_000) -> Any:
        return partial(
            settlement.claim_refund, return_id="R-1", instance=instance, lease_ms=lease_ms
        )

    claims = await asyncio.gather(*(hq.write(claim(f"hq-{n}")) for n in range(5)))
    winners = [c for c in claims if c.request is not None]
    assert len(winners) == 1
    assert all(c.held_until_ms is not None for c in claims if c.request is None)
    holder = winners[0].request["claimed_by"]
    again = await hq.write(claim(holder))  # its own lease, e.g. after a restart
    assert again.request is not None
    assert again.request["claims"] == 2
    await hq.write(partial(settlement.release_claim, return_id="R-1", instance=holder))
    taken = await hq.write(claim("hq-other"))
    assert taken.request is not None
    assert taken.request["attempts"] == 1
    await hq.write(
        partial(
            settlement.record_decisions,
            decided=[Decided("R-1", "settled", "P", "E", None)],
            instance="hq-other",
        )
    )
    decided = await hq.write(claim("hq-late"))
    assert (decided.request, decided.held_until_ms) == (None, None)


async def test_an_expired_lease_makes_the_refund_an_orphan(hq: HqStore) -> None:
    await ingest(hq, [envelope(1, "refund.requested", return_id="R-2", currency="USD", total="1")])
    later = "9999-01-01T00:00:00.000Z"
    assert await hq.read(partial(settlement.orphaned_refunds, now_ms=0, received_before=later)) == [
        "R-2"
    ]
    claim = partial(settlement.claim_refund, return_id="R-2", instance="hq-a", lease_ms=60_000)
    held = await hq.write(claim)
    assert held.request is not None
    now = settlement.now_ms()
    assert (
        await hq.read(partial(settlement.orphaned_refunds, now_ms=now, received_before=later)) == []
    )
    expired = now + 120_000
    orphans = partial(settlement.orphaned_refunds, now_ms=expired, received_before=later)
    assert await hq.read(orphans) == ["R-2"]


async def test_orders_load_and_answer(hq: HqStore) -> None:
    assert await hq.write(partial(store.load_orders, sales=[{"sale_id": "WEB-1", "lines": []}]))
    sale = await hq.read(partial(store.find_order, code="WEB-1"))
    assert sale == {"sale_id": "WEB-1", "lines": [], "channel": "online"}
    assert await hq.read(partial(store.find_order, code="WEB-2")) is None
    await hq.write(partial(store.load_orders, sales=[{"sale_id": "WEB-1", "lines": [1]}]))
    assert (await hq.read(partial(store.find_order, code="WEB-1")))["lines"] == [1]
