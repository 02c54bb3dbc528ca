"""The outbox relay against a real broker, with the test acking (or not) as HQ."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from edge.contract.timefmt import iso, utcnow
from edge.ledger import hq_sync
from edge.ledger.outbox import append_event
from tests.hqlink.broker import Mosquitto
from tests.hqlink.inproc import link_rig


async def test_events_go_in_seq_order_and_again_until_acked(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port, window=10) as rig:
        seqs = await rig.add_events(30)
        # HQ "loses" every first delivery: only the second one is acked
        acked: set[str] = set()

        def ack_seconds() -> bool:
            counts = Counter(e["event_id"] for e in rig.events())
            for event_id, n in counts.items():
                if n >= 2 and event_id not in acked:
                    acked.add(event_id)
                    rig.ack(event_id)
            return len(acked) == 30

        await rig.hq.wait_for(ack_seconds)
        firsts = list(dict.fromkeys(e["seq"] for e in rig.events()))
        assert firsts == seqs  # first deliveries in seq order
        by_id: dict[str, set[str]] = {}
        for msg in rig.hq.messages:
            if msg.topic.endswith("/events"):
                by_id.setdefault(json.loads(msg.payload)["event_id"], set()).add(msg.payload)
        assert all(len(payloads) == 1 for payloads in by_id.values())  # resent byte for byte

        def all_acked() -> bool:
            return rig.link.relay.acked == 30

        await rig.hq.wait_for(all_acked)
        rows = await rig.ledger.read(
            lambda c: c.execute("SELECT state, attempts FROM outbox").fetchall()
        )
        assert {tuple(r) for r in rows} == {("acked", 2)}


async def test_window_bounds_what_is_in_flight(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port, window=5) as rig:
        await rig.add_events(20)
        sent = await rig.hq.wait_for(lambda: len(rig.events()) >= 15 and rig.events())
        assert {e["seq"] for e in sent} == {1, 2, 3, 4, 5}  # resent, never beyond the window
        assert rig.link.relay.in_flight == 5


async def test_an_event_appended_while_the_outbox_is_read_is_still_sent(
    tmp_path, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with link_rig(tmp_path, broker.port, window=10) as rig:
        await rig.hq.wait_for(lambda: rig.link.client.connected)
        read = rig.ledger.read
        late: list[int] = []

        async def read_then_append(fn: Callable[[sqlite3.Connection], Any]) -> Any:
            rows = await read(fn)
            if not late:  # committed and announced after this read saw the outbox
                late.extend(await rig.add_events(1))
            return rows

        monkeypatch.setattr(rig.ledger, "read", read_then_append)
        await rig.add_events(1)
        sent = await rig.hq.wait_for(lambda: len(rig.events()) >= 2 and rig.events())
        assert sorted(e["seq"] for e in sent) == [1, 2]
        assert late


async def test_an_invalid_row_is_alerted_skipped_and_kept(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port, window=10) as rig:
        origin = rig.ledger.origin

        def broken(conn: sqlite3.Connection) -> int:
            seq = append_event(conn, origin, "sale.recorded", {}, utcnow()).seq
            conn.execute("UPDATE outbox SET envelope = '{\"seq\": 1}' WHERE seq = ?", (seq,))
            return seq

        seqs = [await rig.ledger.write(broken)]
        seqs += await rig.add_events(2)
        alert = await rig.hq.wait_for(lambda: rig.hq.latest("retail/v1/0042/gw-01/alerts"))
        assert alert["alert"] == "event-invalid"
        assert alert["subject"] == "1"
        sent = await rig.hq.wait_for(lambda: len(rig.events()) >= 2 and rig.events())
        assert [e["seq"] for e in sent[:2]] == seqs[1:]
        for event in sent[:2]:
            rig.ack(event["event_id"])
        await rig.hq.wait_for(lambda: rig.link.relay.acked == 2)
        pending = await rig.ledger.read(lambda c: hq_sync.fetch_pending(c, 0, 10))
        assert [p.seq for p in pending] == [1]  # kept, never dropped
        assert rig.link.errors["invalid_events"] == 1


async def test_an_outcome_is_applied_once_and_pushed(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port) as rig:
        refund = await rig.add_refund()
        event = await rig.hq.wait_for(
            lambda: next((e for e in rig.events() if e["type"] == "refund.requested"), None)
        )
        outcome = {
            "return_id": refund["return_id"],
            "processor_ref": "P-1",
            "erp_ref": "E-1",
        }
        rig.ack(event["event_id"], "accepted")
        rig.ack(event["event_id"], "settled", **outcome)
        rig.ack(event["event_id"], "settled", **outcome)
        rig.ack(event["event_id"], "declined", return_id=refund["return_id"], reason="late")
        settled = await rig.hq.wait_for(
            lambda: [u for u in rig.updates if u.status != "pending"] or None
        )
        await rig.hq.wait_for(lambda: rig.link.errors["ack_conflicts"] >= 1)
        assert len(settled) == 1
        assert settled[0].refund.processor_ref == "P-1"
        view = await rig.ledger.refund(refund["return_id"])
        assert view is not None
        assert (view.status, view.erp_ref) == ("settled", "E-1")
        audits = await rig.ledger.read(
            lambda c: c.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'refund.settled'"
            ).fetchone()[0]
        )
        assert audits == 1


async def test_a_lost_outcome_is_asked_for_again(tmp_path, broker: Mosquitto) -> None:
    async with link_rig(tmp_path, broker.port, settle_followup_s=0.3) as rig:
        refund = await rig.add_refund()

        def refund_events() -> list[dict[str, object]]:
            return [e for e in rig.events() if e["type"] == "refund.requested"]

        first = await rig.hq.wait_for(lambda: refund_events()[:1])
        rig.ack(str(first[0]["event_id"]), "accepted")  # ... and the settled ack gets lost
        again = await rig.hq.wait_for(lambda: len(refund_events()) >= 2 and refund_events())
        assert again[1]["event_id"] == first[0]["event_id"]
        rig.ack(
            str(first[0]["event_id"]), "settled", return_id=refund["return_id"], processor_ref="P"
        )
        await rig.hq.wait_for(lambda: [u for u in rig.updates if u.status == "settled"])
        assert rig.link.relay.followups >= 1


async def test_pruning_keeps_pending_events_and_high_water_alerts(
    tmp_path, broker: Mosquitto
) -> None:
    async with link_rig(
        tmp_path, broker.port, outbox_high_water=3, acked_retention_days=0, window=2
    ) as rig:
        await rig.add_events(6)
        alert = await rig.hq.wait_for(
            lambda: (
                (a := rig.hq.latest("retail/v1/0042/gw-01/alerts"))
                and a["alert"] == "outbox-high-water"
                and a
            )
        )
        assert alert["state"] == "raised"
        sent = await rig.hq.wait_for(lambda: len(rig.events()) >= 2 and rig.events())
        for event in sent[:2]:
            rig.ack(event["event_id"])
        await rig.hq.wait_for(lambda: rig.link.relay.acked == 2)
        # a cut-off past both acks: acked_at is kept to the millisecond and the cut-off is
        # exclusive, so "now" could fall on the very millisecond of the second ack
        later = iso(utcnow() + timedelta(seconds=1))
        assert await rig.ledger.write(lambda c: hq_sync.prune_acked(c, later, 100)) == 2
        left = await rig.ledger.read(
            lambda c: c.execute("SELECT seq, state FROM outbox ORDER BY seq").fetchall()
        )
        assert [tuple(r) for r in left] == [(n, "pending") for n in range(3, 7)]
