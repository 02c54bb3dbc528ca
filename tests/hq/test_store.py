"""The HQ store on a real SQLite file: de-duplication, seq gaps, refund outcomes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge.contract.timefmt import utcnow
from edge.domain.ids import new_ulid
from edge.hq import store
from edge.hq.schema import open_store
from edge.hq.store import Incoming


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
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_store(tmp_path / "hq.sqlite3")


def ingest(conn: sqlite3.Connection, envs: list[dict[str, Any]]) -> store.IngestResult:
    conn.execute("BEGIN IMMEDIATE")
    result = store.ingest(conn, [incoming(e) for e in envs])
    conn.execute("COMMIT")
    return result


def test_each_event_is_held_once_and_every_copy_acked(conn: sqlite3.Connection) -> None:
    envs = [envelope(n) for n in range(1, 4)]
    first = ingest(conn, envs)
    again = ingest(conn, [envs[1], envs[1]])
    assert (first.new_events, first.duplicates) == (3, 0)
    assert (again.new_events, again.duplicates) == (0, 2)
    assert [a.body["status"] for a in first.acks + again.acks] == ["accepted"] * 5
    (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    assert count == 3
    (stream,) = store.streams(conn)
    assert (stream["received"], stream["duplicates"], stream["gap"]) == (3, 2, None)


def test_seq_gaps_are_detected_and_closed(conn: sqlite3.Connection) -> None:
    e1, e2, e3, e4 = (envelope(n) for n in range(1, 5))
    opened = ingest(conn, [e1, e3, e4])
    assert opened.gaps_opened == ["0042/gw-01"]
    (stream,) = store.streams(conn)
    assert stream["gap"] == {"after": 1, "up_to": 4}
    ingest(conn, [e2])
    (stream,) = store.streams(conn)
    assert (stream["contiguous_through"], stream["gap"], stream["gap_since"]) == (4, None, None)


def test_a_foreign_or_invalid_envelope_is_rejected(conn: sqlite3.Connection) -> None:
    wrong_gateway = {**envelope(1), "gateway_id": "gw-99"}
    invalid = {**envelope(2), "seq": 0}
    result = store.ingest(
        conn, [incoming(wrong_gateway), incoming(invalid), Incoming("0042", "gw-01", b"{")]
    )
    assert [a.body["status"] for a in result.acks] == ["rejected", "rejected"]
    assert len(result.malformed) == 3
    assert result.new_events == 0


def test_a_duplicate_refund_event_is_acked_with_its_outcome(conn: sqlite3.Connection) -> None:
    refund = envelope(1, "refund.requested", return_id="R-0042-X", currency="USD", total="5.00")
    first = ingest(conn, [refund])
    assert first.new_refunds == ["R-0042-X"]
    conn.execute("BEGIN IMMEDIATE")
    decided, late = store.record_decisions(
        conn,
        [
            store.Decided("R-0042-X", "settled", "P-1", "E-1", None),
            store.Decided("R-0042-X", "declined", None, None, "too late"),
        ],
    )
    conn.execute("COMMIT")
    assert decided.body == late.body  # the first decision wins
    assert decided.body["status"] == "settled"
    again = ingest(conn, [refund])
    assert again.acks[0].body == decided.body
    assert again.new_refunds == []
    assert store.refund_counts(conn) == {"settled": 1}


def test_orders_load_and_answer(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    assert store.load_orders(conn, [{"sale_id": "WEB-1", "lines": []}]) == 1
    conn.execute("COMMIT")
    assert store.find_order(conn, "WEB-1") == {"sale_id": "WEB-1", "lines": [], "channel": "online"}
    assert store.find_order(conn, "WEB-2") is None
