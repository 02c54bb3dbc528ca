"""The outbox writes envelopes without pydantic on the hot path: they must still be exactly
what `EventEnvelope` would have produced (as `json` writes it: keys sorted, non-ASCII
escaped), and the ids real ULIDs, ordered and unique."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.contract.envelope import EventEnvelope
from edge.domain.ids import new_ulid
from edge.ledger.db import apply_migrations, open_sync
from edge.ledger.outbox import Origin, append_event, append_events

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid_time(ulid: str) -> datetime:
    ms = 0
    for char in ulid[:10]:
        ms = ms * 32 + CROCKFORD.index(char)
    return datetime.fromtimestamp(ms / 1000, UTC)


@pytest.mark.parametrize(
    ("at", "note"),
    [
        (datetime(2026, 11, 22, 10, 15, 0, tzinfo=UTC), "plain"),
        (datetime(2026, 11, 22, 10, 15, 0, 123456, tzinfo=UTC), "Größe, \u2028 und \x7f"),
        (
            datetime(2026, 11, 22, 11, 15, 0, 5000, tzinfo=UTC).astimezone().replace(microsecond=7),
            'quote " and \\ and \n',
        ),
    ],
)
def test_a_stored_envelope_is_byte_for_byte_what_the_model_writes(
    tmp_path: Path, at: datetime, note: str
) -> None:
    conn = open_sync(tmp_path / "ledger.sqlite3")
    apply_migrations(conn)
    data = {"sale_id": "S-1", "total": "9.99", "lines": [{"b": None, "a": [1, "x"]}], "n": note}
    staged = append_event(conn, Origin("0042", "gw-01"), "sale.recorded", data, at)
    (stored,) = conn.execute("SELECT envelope FROM outbox WHERE seq = ?", (staged.seq,)).fetchone()
    model = EventEnvelope.model_validate_json(stored)
    expected = json.dumps(model.wire(), separators=(",", ":"), sort_keys=True)
    assert stored == expected
    assert (model.seq, model.event_id, model.data) == (staged.seq, staged.event_id, data)
    assert model.occurred_at == at
    conn.close()


def test_an_unknown_event_type_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    conn = open_sync(tmp_path / "ledger.sqlite3")
    apply_migrations(conn)
    with pytest.raises(ValueError, match="unknown event type"):
        append_event(conn, Origin("0042", "gw-01"), "refund.eaten", {}, datetime.now(UTC))  # type: ignore[arg-type]
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    conn.close()


def test_ulids_carry_their_millisecond_and_sort_in_the_order_they_were_made() -> None:
    at = datetime(2026, 11, 22, 10, 15, 0, 123456, tzinfo=UTC)
    same_ms = [new_ulid(at) for _ in range(2000)]
    later = new_ulid(at + timedelta(milliseconds=1))
    for ulid in [*same_ms, later]:
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", ulid), ulid
    assert _ulid_time(same_ms[0]) == at.replace(microsecond=123000)
    assert _ulid_time(later) == at.replace(microsecond=124000)
    assert same_ms == sorted(same_ms)
    assert len(set(same_ms)) == len(same_ms)
    assert later > same_ms[-1]


def test_events_staged_together_take_consecutive_numbers(tmp_path: Path) -> None:
    conn = open_sync(tmp_path / "ledger.sqlite3")
    apply_migrations(conn)
    at = datetime(2026, 11, 22, 10, 15, 0, tzinfo=UTC)
    origin = Origin("0042", "gw-01")
    first = append_event(conn, origin, "sale.recorded", {"n": 0}, at)
    staged = append_events(
        conn, origin, [("refund.requested", {"n": 1}), ("inventory.returned", {"n": 2})], at
    )
    assert [s.seq for s in staged] == [first.seq + 1, first.seq + 2]
    rows = conn.execute("SELECT seq, event_id, envelope FROM outbox ORDER BY seq").fetchall()
    for (seq, event_id, envelope), n in zip(rows, range(3), strict=True):
        model = EventEnvelope.model_validate_json(envelope)
        assert (model.seq, model.event_id, model.data) == (seq, event_id, {"n": n})
    assert [s.event_id for s in staged] == [row[1] for row in rows[1:]]
    conn.close()
