"""The ledger side of reconciliation on a real SQLite file, with findings made by hand:
what a run keeps, resolves and refuses, each run whole or not at all."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from edge.contract.recon import Report
from edge.contract.timefmt import utcnow
from edge.domain.errors import InvalidRequest, NotFound
from edge.domain.recon import Finding
from edge.ledger import recon, recon_apply
from edge.ledger.db import apply_migrations, open_sync
from edge.ledger.recon_apply import DigestApplied, Run

NOW = utcnow()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_sync(tmp_path / "ledger.sqlite3")
    apply_migrations(c)
    yield c
    c.close()


def finding(n: int, delta: str = "0.01", at: datetime = NOW) -> Finding:
    store = Decimal("10.00")
    return Finding(
        kind="amount-mismatch",
        key=f"amount-mismatch:R-0042-{n}",
        return_id=f"R-0042-{n}",
        external_ref=f"ERP-{n}",
        sale_id=f"S-{n}",
        currency="USD",
        store_amount=store,
        hq_amount=store + Decimal(delta),
        delta=Decimal(delta),
        occurred_at=at - timedelta(minutes=30),
    )


def run(digest_id: str, at: datetime = NOW, alerts_max: int = 200) -> Run:
    return Run(
        scope="digest",
        report_id=recon_apply.new_report_id(at),
        store_id="0042",
        gateway_id="gw-01",
        period_from=at - timedelta(hours=1),
        period_to=at,
        at=at,
        checked=10,
        matched=5,
        alert_above=lambda currency: Decimal("0.00"),
        digest=DigestApplied(digest_id, f"fp-{digest_id}", at, 3),
        alerts_max=alerts_max,
    )


def apply(conn: sqlite3.Connection, findings: list[Finding], r: Run) -> recon_apply.ApplyResult:
    """As the writer runs a job: in a transaction, undone whole if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = recon_apply.apply_findings(conn, findings, r)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


def test_alerts_are_capped_and_the_rest_withheld(conn: sqlite3.Connection) -> None:
    out = apply(conn, [finding(n) for n in range(5)], run("D-1", alerts_max=3))
    assert len(out.opened) == 5
    assert len(out.raise_alerts) == 3
    assert out.withheld == 2
    report = Report.model_validate_json(out.payload)
    assert len(report.mismatches) == 5  # every mismatch is reported, alerted or not
    # one resolves (no longer in the next digest of the period): room for one more alert
    later = NOW + timedelta(seconds=1)
    out = apply(conn, [finding(n, at=NOW) for n in range(1, 5)], run("D-2", at=later, alerts_max=3))
    assert len(out.resolved) == 1
    assert len(out.clear_alerts) == 1
    assert len(out.raise_alerts) == 1
    assert out.withheld == 1


def test_a_digest_applied_twice_in_a_race_leaves_the_first_alone(
    conn: sqlite3.Connection,
) -> None:
    apply(conn, [finding(1)], run("D-1"))
    before = conn.execute("SELECT * FROM recon_mismatches").fetchall()
    with pytest.raises(sqlite3.IntegrityError):
        apply(conn, [finding(1, delta="0.50"), finding(2)], run("D-1"))
    assert conn.execute("SELECT * FROM recon_mismatches").fetchall() == before
    assert conn.execute("SELECT count(*) FROM recon_reports").fetchone()[0] == 1
    assert recon.digest_applied(conn, "D-1") == ("fp-D-1", recon.latest_report(conn).report_id)


def test_a_digest_resolves_only_what_lies_in_its_period(conn: sqlite3.Connection) -> None:
    old = NOW - timedelta(days=2)
    apply(conn, [finding(1, at=old)], run("D-old", at=old))
    apply(conn, [finding(2)], run("D-now"))
    # a digest of the last hour that finds nothing: the two-day-old one stays open
    out = apply(conn, [], run("D-empty", at=NOW + timedelta(seconds=1)))
    assert len(out.resolved) == 1
    assert [m.return_id for m in recon.open_mismatch_rows(conn)] == ["R-0042-1"]
    assert recon.open_mismatch_count(conn) == 1
    counts = recon.open_counts(conn)
    assert counts.by_kind == {"amount-mismatch": 1}
    assert counts.reopened_total == 0


def test_accept_needs_who_and_why_and_an_open_mismatch(conn: sqlite3.Connection) -> None:
    out = apply(conn, [finding(1)], run("D-1"))
    (mid,) = out.opened
    with pytest.raises(NotFound):
        recon.accept(conn, "M-nope", "ops", "why", NOW)
    with pytest.raises(InvalidRequest):
        recon.accept(conn, mid, "ops", "  ", NOW)
    with pytest.raises(InvalidRequest):
        recon.accept(conn, mid, "", "known", NOW)
    row, clear = recon.accept(conn, mid, "ops", "known drift", NOW)
    assert (row.state, row.accepted_by, row.accept_reason, clear) == (
        "accepted",
        "ops",
        "known drift",
        True,
    )
    again, clear = recon.accept(conn, mid, "ops", "known drift", NOW)
    assert again.state == "accepted"
    assert not clear
    assert (
        conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'recon.mismatch_accepted'"
        ).fetchone()[0]
        == 1
    )
    assert recon.open_mismatches(conn, NOW) == []
