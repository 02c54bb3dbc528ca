"""Reconciliation in the ledger, read side: mismatches kept by key, reports as sent, digests
applied and the checkpoint's schedule (schema v5), as plain functions of a connection. The
LAN API, the KPIs and the HQ link read through these; runs are written by
`edge.ledger.recon_apply`. Amounts are decimal text (see the migration for why).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from edge.contract.recon import Diagnosis as WireDiagnosis
from edge.contract.recon import (
    DiagnosisClass,
    MismatchKind,
    Report,
)
from edge.contract.recon import Mismatch as WireMismatch
from edge.contract.timefmt import iso, parse_iso
from edge.domain.errors import InvalidRequest, NotFound
from edge.domain.recon import (
    PriorMismatch,
)
from edge.ledger.audit import append_audit

Connection = sqlite3.Connection
Scope = Literal["digest", "checkpoint"]
MismatchState = Literal["open", "resolved", "accepted"]
REASON_MAX = 1024


@dataclass(frozen=True)
class MismatchRow:
    """A stored mismatch; `wire(now)` gives it as the contract's `Mismatch`."""

    mismatch_id: str
    key: str
    scope: Scope
    kind: MismatchKind
    return_id: str | None
    external_ref: str | None
    sale_id: str | None
    currency: str
    store_amount: Decimal | None
    hq_amount: Decimal | None
    delta: Decimal | None
    at_risk: Decimal
    class_: DiagnosisClass
    diagnosis: WireDiagnosis
    refund_at: datetime
    first_detected_at: datetime
    detected_at: datetime
    last_seen_at: datetime
    state: MismatchState
    resolved_at: datetime | None
    accepted_by: str | None
    accept_reason: str | None
    reopened: int
    alert_raised: bool
    last_report_id: str | None

    def wire(self, now: datetime) -> WireMismatch:
        return WireMismatch(
            mismatch_id=self.mismatch_id,
            kind=self.kind,
            return_id=self.return_id,
            external_ref=self.external_ref,
            sale_id=self.sale_id,
            currency=self.currency,
            store_amount=self.store_amount,
            hq_amount=self.hq_amount,
            delta=self.delta,
            detected_at=self.detected_at,
            age_s=max(0.0, (now - self.refund_at).total_seconds()),
            diagnosis=self.diagnosis,
        )


@dataclass(frozen=True)
class StoredReport:
    """A report as it was sent: `body` is the exact payload."""

    report_id: str
    digest_id: str | None
    period_from: datetime
    period_to: datetime
    generated_at: datetime
    checked: int
    matched: int
    mismatches: int
    body: str
    published_at: datetime | None


@dataclass(frozen=True)
class CheckpointState:
    last_run_at: datetime | None
    last_cutoff: datetime | None
    next_due_at: datetime
    last_report_id: str | None


@dataclass(frozen=True)
class OpenCounts:
    """Open mismatches by kind and class, and reopenings ever, for /metrics and health."""

    by_kind: dict[str, int]
    by_class: dict[str, int]
    reopened_total: int

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


# ---- operators -----------------------------------------------------------------------


def accept(
    conn: sqlite3.Connection, mismatch_id: str, who: str, reason: str, at: datetime
) -> tuple[MismatchRow, bool]:
    """Accept an open mismatch (a known difference nobody will fix), with who and why, in
    the audit log. Returns the row and whether its alert is to be cleared; accepting an
    accepted one again changes nothing, a resolved one is refused."""
    row = get_mismatch(conn, mismatch_id)
    if row is None:
        raise NotFound(f"no mismatch {mismatch_id}", "mismatch_id")
    if not who.strip():
        raise InvalidRequest("say who accepts the mismatch", "who")
    if not reason.strip() or len(reason) > REASON_MAX:
        raise InvalidRequest(f"give a reason of 1 to {REASON_MAX} characters", "reason")
    if row.state == "accepted":
        return row, False
    if row.state == "resolved":
        raise InvalidRequest(f"mismatch {mismatch_id} is resolved; nothing to accept", "state")
    stamp = iso(at)
    conn.execute(
        "UPDATE recon_mismatches SET state = 'accepted', accepted_at = ?, accepted_by = ?,"
        " accept_reason = ?, alert_raised = 0 WHERE mismatch_id = ?",
        (stamp, who, reason, mismatch_id),
    )
    append_audit(
        conn,
        at=at,
        actor=who,
        action="recon.mismatch_accepted",
        subject=mismatch_id,
        detail={
            "reason": reason,
            "kind": row.kind,
            "return_id": row.return_id,
            "external_ref": row.external_ref,
            "currency": row.currency,
            "delta": amount_text(row.delta),
            "at_risk": amount_text(row.at_risk),
        },
    )
    accepted = get_mismatch(conn, mismatch_id)
    assert accepted is not None
    return accepted, row.alert_raised


# ---- queries ---------------------------------------------------------------------------

_MISMATCH_COLUMNS = (
    "mismatch_id, key, scope, kind, return_id, external_ref, sale_id, currency, store_amount,"
    " hq_amount, delta, at_risk, class, diagnosis, refund_at, first_detected_at, detected_at,"
    " last_seen_at, state, resolved_at, accepted_by, accept_reason, reopened, alert_raised,"
    " last_report_id"
)
_REPORT_COLUMNS = (
    "report_id, digest_id, period_from, period_to, generated_at, checked, matched, mismatches,"
    " body, published_at"
)


def get_mismatch(conn: sqlite3.Connection, mismatch_id: str) -> MismatchRow | None:
    row = conn.execute(
        f"SELECT {_MISMATCH_COLUMNS} FROM recon_mismatches WHERE mismatch_id = ?",  # noqa: S608
        (mismatch_id,),
    ).fetchone()
    return None if row is None else _mismatch(row)


def open_mismatch_rows(conn: sqlite3.Connection, limit: int = 1000) -> list[MismatchRow]:
    """Open mismatches as stored, oldest refund first."""
    return [
        _mismatch(row)
        for row in conn.execute(
            f"SELECT {_MISMATCH_COLUMNS} FROM recon_mismatches WHERE state = 'open'"  # noqa: S608
            " ORDER BY refund_at, mismatch_id LIMIT ?",
            (limit,),
        )
    ]


def alerting(conn: sqlite3.Connection) -> list[MismatchRow]:
    """Open mismatches whose alert was raised (to show them again after a restart)."""
    return [
        _mismatch(row)
        for row in conn.execute(
            f"SELECT {_MISMATCH_COLUMNS} FROM recon_mismatches"  # noqa: S608
            " WHERE state = 'open' AND alert_raised = 1 ORDER BY mismatch_id"
        )
    ]


def alerting_ids(conn: sqlite3.Connection) -> set[str]:
    """Ids of the open mismatches whose alert is raised."""
    return {
        str(r[0])
        for r in conn.execute(
            "SELECT mismatch_id FROM recon_mismatches WHERE state = 'open' AND alert_raised = 1"
        )
    }


def latest_report_at(conn: sqlite3.Connection) -> datetime | None:
    (at,) = conn.execute("SELECT max(generated_at) FROM recon_reports").fetchone()
    return _time(at)


def open_counts(conn: sqlite3.Connection) -> OpenCounts:
    by_kind: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    for kind, class_, n in conn.execute(
        "SELECT kind, class, count(*) FROM recon_mismatches WHERE state = 'open'"
        " GROUP BY kind, class"
    ):
        by_kind[kind] += n
        by_class[class_] += n
    (reopened,) = conn.execute("SELECT coalesce(sum(reopened), 0) FROM recon_mismatches").fetchone()
    return OpenCounts(dict(by_kind), dict(by_class), int(reopened))


def open_mismatches(
    conn: sqlite3.Connection, now: datetime, limit: int = 1000
) -> list[WireMismatch]:
    """Open mismatches as the contract's `Mismatch` (ages as of `now`), oldest refund first."""
    return [row.wire(now) for row in open_mismatch_rows(conn, limit)]


def open_mismatch_count(conn: sqlite3.Connection) -> int:
    (n,) = conn.execute("SELECT count(*) FROM recon_mismatches WHERE state = 'open'").fetchone()
    return int(n)


def report(conn: sqlite3.Connection, report_id: str) -> Report | None:
    """A report as it was sent."""
    stored = stored_report(conn, report_id)
    return None if stored is None else Report.model_validate_json(stored.body)


def latest_report(conn: sqlite3.Connection) -> Report | None:
    """The newest report, a digest's or a checkpoint run's."""
    row = conn.execute(
        "SELECT body FROM recon_reports ORDER BY generated_at DESC, report_id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else Report.model_validate_json(row[0])


def stored_report(conn: sqlite3.Connection, report_id: str) -> StoredReport | None:
    row = conn.execute(
        f"SELECT {_REPORT_COLUMNS} FROM recon_reports WHERE report_id = ?",  # noqa: S608
        (report_id,),
    ).fetchone()
    return None if row is None else _report(row)


def unpublished_reports(conn: sqlite3.Connection, limit: int = 50) -> list[StoredReport]:
    """Reports not yet handed to the broker, oldest first."""
    return [
        _report(row)
        for row in conn.execute(
            f"SELECT {_REPORT_COLUMNS} FROM recon_reports WHERE published_at IS NULL"  # noqa: S608
            " ORDER BY generated_at, report_id LIMIT ?",
            (limit,),
        )
    ]


def digest_applied(conn: sqlite3.Connection, digest_id: str) -> tuple[str, str] | None:
    """(fingerprint, report_id) of a digest applied before, else None."""
    row = conn.execute(
        "SELECT fingerprint, report_id FROM recon_digests WHERE digest_id = ?", (digest_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def checkpoint_state(conn: sqlite3.Connection) -> CheckpointState | None:
    row = conn.execute(
        "SELECT last_run_at, last_cutoff, next_due_at, last_report_id FROM recon_checkpoint"
    ).fetchone()
    if row is None:
        return None
    return CheckpointState(_time(row[0]), _time(row[1]), parse_iso(row[2]), row[3])


def history(conn: sqlite3.Connection, since: datetime, limit: int = 10_000) -> list[PriorMismatch]:
    """Mismatches seen since `since` (newest first), for the domain to tell a repeat."""
    return [
        PriorMismatch(
            key=r[0],
            kind=r[1],
            pattern=r[2],
            detected_at=parse_iso(r[3]),
            customer_ref=r[4],
            sale_id=r[5],
            refund_kind=r[6],
            category=r[7],
            resolved_at=_time(r[8]),
        )
        for r in conn.execute(
            "SELECT key, kind, pattern, first_detected_at, customer_ref, sale_id, refund_kind,"
            " category, resolved_at FROM recon_mismatches WHERE last_seen_at >= ?"
            " ORDER BY last_seen_at DESC LIMIT ?",
            (iso(since), limit),
        )
    ]


def _mismatch(r: sqlite3.Row) -> MismatchRow:
    return MismatchRow(
        mismatch_id=r[0],
        key=r[1],
        scope=r[2],
        kind=r[3],
        return_id=r[4],
        external_ref=r[5],
        sale_id=r[6],
        currency=r[7],
        store_amount=_amount(r[8]),
        hq_amount=_amount(r[9]),
        delta=_amount(r[10]),
        at_risk=Decimal(r[11]),
        class_=r[12],
        diagnosis=WireDiagnosis.model_validate_json(r[13]),
        refund_at=parse_iso(r[14]),
        first_detected_at=parse_iso(r[15]),
        detected_at=parse_iso(r[16]),
        last_seen_at=parse_iso(r[17]),
        state=r[18],
        resolved_at=_time(r[19]),
        accepted_by=r[20],
        accept_reason=r[21],
        reopened=int(r[22]),
        alert_raised=bool(r[23]),
        last_report_id=r[24],
    )


def _report(r: sqlite3.Row) -> StoredReport:
    return StoredReport(
        report_id=r[0],
        digest_id=r[1],
        period_from=parse_iso(r[2]),
        period_to=parse_iso(r[3]),
        generated_at=parse_iso(r[4]),
        checked=int(r[5]),
        matched=int(r[6]),
        mismatches=int(r[7]),
        body=r[8],
        published_at=_time(r[9]),
    )


def amount_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _amount(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text)
