"""Applying a reconciliation run to the ledger, and an operator's acceptance, as plain
functions of a connection (schema v5; the reads are in `edge.ledger.recon`).

The HQ link runs `apply_findings` through `Ledger.write`, so one digest or checkpoint run
lands whole or not at all: the mismatches it opens, reopens and resolves, its report and
its digest or schedule row. A mismatch is recognised again by its key: found again while
open it stays open; found again after it was resolved it is reopened and counted; an
accepted one stays accepted while the same difference is found, and is reopened when the
difference changes (an operator accepted those amounts, not any). Amounts are decimal text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from edge.contract.payloads import encode
from edge.contract.recon import REPORT_MISMATCHES_MAX, MismatchKind, Report
from edge.contract.recon import Mismatch as WireMismatch
from edge.contract.timefmt import iso, parse_iso
from edge.domain.ids import new_ulid
from edge.domain.recon import Finding, diagnosis_to_wire, mismatch_to_wire, summarize
from edge.domain.recon.wire import at_risk
from edge.ledger.recon import Scope, amount_text


def new_report_id(at: datetime) -> str:
    return f"RP-{new_ulid(at)}"


def new_mismatch_id(at: datetime) -> str:
    return f"M-{new_ulid(at)}"


@dataclass(frozen=True)
class DigestApplied:
    """The digest a run answers, kept so the same digest again gets the same report."""

    digest_id: str
    fingerprint: str
    generated_at: datetime
    entries: int


@dataclass(frozen=True)
class Run:
    """One reconciliation run as `apply_findings` records it. `alert_above(currency)` is the
    amount at risk above which a mismatch raises an alert (`unconfirmed` always does)."""

    scope: Scope
    report_id: str
    store_id: str
    gateway_id: str
    period_from: datetime
    period_to: datetime
    at: datetime
    checked: int
    matched: int
    alert_above: Callable[[str], Decimal]
    digest: DigestApplied | None = None
    compared_to: datetime | None = None  # digest runs: end of what the ledger was read for
    alerts_max: int = 200  # open mismatch alerts at most (health lists every open alert)
    next_due_at: datetime | None = None  # checkpoint runs: when the next one is due


@dataclass(frozen=True)
class AlertChange:
    mismatch_id: str
    kind: MismatchKind
    detail: str


@dataclass
class ApplyResult:
    """What a run changed, for the link to publish and to raise or clear alerts."""

    report_id: str
    payload: bytes
    opened: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    raise_alerts: list[AlertChange] = field(default_factory=list)
    clear_alerts: list[str] = field(default_factory=list)
    withheld: int = 0  # mismatches that call for an alert, not raised: `alerts_max` are open
    alert_room: int = 0  # alerts this run may still raise (working value)


# ---- applying a run ------------------------------------------------------------------


def apply_findings(conn: sqlite3.Connection, findings: Sequence[Finding], run: Run) -> ApplyResult:
    """Record one run inside the caller's transaction: upsert each finding by key, resolve
    the open mismatches of the run's scope it no longer shows, store the report (and the
    digest or the checkpoint's schedule). Returns the report's payload and alert changes."""
    stamp = iso(run.at)
    out = ApplyResult(run.report_id, b"")
    _resolve_missing(conn, run, [f.key for f in findings], stamp, out)  # frees alert room
    (alerting,) = conn.execute(
        "SELECT count(*) FROM recon_mismatches WHERE state = 'open' AND alert_raised = 1"
    ).fetchone()
    out.alert_room = max(0, run.alerts_max - int(alerting))
    reported: list[tuple[Finding, str, datetime]] = []
    keys: set[str] = set()
    for f in findings:
        if f.key in keys:  # one mismatch, one row and one line in the report
            continue
        keys.add(f.key)
        shown = _upsert(conn, f, run, stamp, out)
        if shown is not None:
            reported.append((f, *shown))
    report = Report(
        report_id=run.report_id,
        digest_id=run.digest.digest_id if run.digest else None,
        store_id=run.store_id,
        gateway_id=run.gateway_id,
        from_=run.period_from,
        to=run.period_to,
        generated_at=run.at,
        checked=run.checked,
        matched=run.matched,
        mismatches=[_wire(f, mid, detected, run.at) for f, mid, detected in reported][
            :REPORT_MISMATCHES_MAX
        ],
        summary=summarize([f for f, _, _ in reported]),
    )
    out.payload = encode(report)
    conn.execute(
        "INSERT INTO recon_reports (report_id, digest_id, period_from, period_to, generated_at,"
        " checked, matched, mismatches, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.report_id,
            report.digest_id,
            iso(run.period_from),
            iso(run.period_to),
            stamp,
            run.checked,
            run.matched,
            len(reported),
            out.payload.decode(),
        ),
    )
    if run.digest is not None:
        d = run.digest
        conn.execute(
            "INSERT INTO recon_digests (digest_id, fingerprint, period_from, period_to,"
            " generated_at, entries, received_at, report_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.digest_id,
                d.fingerprint,
                iso(run.period_from),
                iso(run.period_to),
                iso(d.generated_at),
                d.entries,
                stamp,
                run.report_id,
            ),
        )
    if run.scope == "checkpoint":
        assert run.next_due_at is not None
        conn.execute(
            "INSERT INTO recon_checkpoint (id, last_run_at, last_cutoff, next_due_at,"
            " last_report_id) VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET"
            " last_run_at = ?1, last_cutoff = ?2, next_due_at = ?3, last_report_id = ?4",
            (stamp, iso(run.period_to), iso(run.next_due_at), run.report_id),
        )
    return out


def _wire(f: Finding, mismatch_id: str, detected_at: datetime, now: datetime) -> WireMismatch:
    return mismatch_to_wire(f, mismatch_id=mismatch_id, detected_at=detected_at, now=now)


def _needs_alert(f: Finding, run: Run) -> bool:
    return f.kind == "unconfirmed" or at_risk(f) > run.alert_above(f.currency)


def _facts(f: Finding) -> tuple[str | None, ...]:
    return (
        f.kind,
        f.currency,
        amount_text(f.store_amount),
        amount_text(f.hq_amount),
        amount_text(f.delta),
    )


def _upsert(
    conn: sqlite3.Connection, f: Finding, run: Run, stamp: str, out: ApplyResult
) -> tuple[str, datetime] | None:
    """Store one finding; returns (mismatch_id, detected_at) when the report lists it."""
    row = conn.execute(
        "SELECT mismatch_id, state, detected_at, alert_raised, kind, currency, store_amount,"
        " hq_amount, delta FROM recon_mismatches WHERE key = ?",
        (f.key,),
    ).fetchone()
    values = _values(f, run, stamp)
    if row is None:
        mismatch_id = new_mismatch_id(run.at)
        conn.execute(
            "INSERT INTO recon_mismatches (mismatch_id, key, scope, kind, return_id,"
            " external_ref, sale_id, currency, store_amount, hq_amount, delta, at_risk, class,"
            " pattern, diagnosis, customer_ref, refund_kind, category, refund_at,"
            " first_detected_at, detected_at, last_seen_at, state, last_report_id) VALUES"
            " (:id, :key, :scope, :kind, :return_id, :external_ref, :sale_id, :currency,"
            " :store_amount, :hq_amount, :delta, :at_risk, :class, :pattern, :diagnosis,"
            " :customer_ref, :refund_kind, :category, :refund_at, :now, :now, :now, 'open',"
            " :report_id)",
            {**values, "id": mismatch_id},
        )
        out.opened.append(mismatch_id)
        detected, alerted = run.at, False
    else:
        mismatch_id, state, detected_text, alerted = row[0], row[1], row[2], bool(row[3])
        same = tuple(row[4:9]) == _facts(f)
        if state == "accepted" and same:
            conn.execute(
                "UPDATE recon_mismatches SET last_seen_at = ? WHERE mismatch_id = ?",
                (stamp, mismatch_id),
            )
            return None
        reopen = state != "open"
        conn.execute(
            "UPDATE recon_mismatches SET kind = :kind, return_id = :return_id,"
            " external_ref = :external_ref, sale_id = :sale_id, currency = :currency,"
            " store_amount = :store_amount, hq_amount = :hq_amount, delta = :delta,"
            " at_risk = :at_risk, class = :class, pattern = :pattern, diagnosis = :diagnosis,"
            " customer_ref = :customer_ref, refund_kind = :refund_kind, category = :category,"
            " refund_at = :refund_at, last_seen_at = :now, last_report_id = :report_id,"
            " state = 'open', resolved_at = NULL,"
            " detected_at = CASE WHEN :reopen THEN :now ELSE detected_at END,"
            " reopened = reopened + :reopen,"
            " alert_raised = CASE WHEN :reopen THEN 0 ELSE alert_raised END"
            " WHERE mismatch_id = :id",
            {**values, "id": mismatch_id, "reopen": int(reopen)},
        )
        if reopen:
            out.reopened.append(mismatch_id)
            detected, alerted = run.at, False
        else:
            detected = parse_iso(detected_text)
    if not alerted and _needs_alert(f, run):
        if out.alert_room <= 0:
            out.withheld += 1
            return mismatch_id, detected
        out.alert_room -= 1
        conn.execute(
            "UPDATE recon_mismatches SET alert_raised = 1 WHERE mismatch_id = ?", (mismatch_id,)
        )
        out.raise_alerts.append(AlertChange(mismatch_id, f.kind, _alert_detail(f)))
    return mismatch_id, detected


def _values(f: Finding, run: Run, stamp: str) -> dict[str, Any]:
    wire = diagnosis_to_wire(f.diagnosis)
    store = f.store
    category = None
    if store is not None:
        category = next((ln.category for ln in store.lines if ln.category), None)
    elif f.entry is not None:
        category = next((ln.category for ln in f.entry.lines if ln.category), None)
    return {
        "key": f.key,
        "scope": run.scope,
        "kind": f.kind,
        "return_id": f.return_id,
        "external_ref": f.external_ref,
        "sale_id": f.sale_id,
        "currency": f.currency,
        "store_amount": amount_text(f.store_amount),
        "hq_amount": amount_text(f.hq_amount),
        "delta": amount_text(f.delta),
        "at_risk": amount_text(at_risk(f)),
        "class": f.diagnosis.class_,
        "pattern": f.diagnosis.pattern,
        "diagnosis": encode(wire).decode(),
        "customer_ref": store.customer_ref if store else None,
        "refund_kind": store.kind if store else f.entry.kind if f.entry else None,
        "category": category,
        "refund_at": iso(f.entry.created_at if f.entry is not None else f.occurred_at),
        "now": stamp,
        "report_id": run.report_id,
    }


def _alert_detail(f: Finding) -> str:
    what = f.return_id or f.external_ref or "?"
    amounts = [
        f"{name} {amount_text(value)}"
        for name, value in (("store", f.store_amount), ("HQ", f.hq_amount), ("delta", f.delta))
        if value is not None
    ]
    told = f"{f.kind} {what} ({f.currency} {', '.join(amounts)})"
    return f"{told}: {f.diagnosis.class_}" + (
        f", {f.diagnosis.pattern}" if f.diagnosis.pattern else ""
    )


def _resolve_missing(
    conn: sqlite3.Connection, run: Run, keys: list[str], stamp: str, out: ApplyResult
) -> None:
    """Resolve the open mismatches this run covers and no longer finds: a digest covers
    those placed in its period, a checkpoint every `unconfirmed` one."""
    where = "state = 'open' AND scope = ?1 AND key NOT IN (SELECT value FROM json_each(?2))"
    params: tuple[str, ...] = (run.scope, json.dumps(keys))
    if run.scope == "digest":
        where += " AND refund_at >= ?3 AND refund_at < ?4"
        params += (iso(run.period_from), iso(run.compared_to or run.period_to))
    gone = conn.execute(
        f"SELECT mismatch_id, alert_raised FROM recon_mismatches WHERE {where}",  # noqa: S608
        params,
    ).fetchall()
    for mismatch_id, alerted in gone:
        conn.execute(
            "UPDATE recon_mismatches SET state = 'resolved', resolved_at = ?, alert_raised = 0"
            " WHERE mismatch_id = ?",
            (stamp, mismatch_id),
        )
        out.resolved.append(mismatch_id)
        if alerted:
            out.clear_alerts.append(mismatch_id)


def mark_published(conn: sqlite3.Connection, report_ids: Sequence[str], at: datetime) -> None:
    conn.executemany(
        "UPDATE recon_reports SET published_at = ? WHERE report_id = ? AND published_at IS NULL",
        [(iso(at), rid) for rid in report_ids],
    )
