"""The append-only, hash-chained audit log of every transaction and security event.

Each record's hash covers its content and the previous record's hash, and a counter row
kept in the same transaction records how many there are; `verify` finds any record that
was edited, inserted or deleted, including at the end.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime
from typing import Any

from edge.canonical import canonical_json
from edge.contract.timefmt import iso

GENESIS = "0" * 64


def _digest(fields: tuple[Any, ...]) -> str:
    """Hash of (seq, at, actor, action, subject, detail, prev_hash)."""
    return hashlib.sha256(canonical_json(list(fields)).encode()).hexdigest()


def append_audit(
    conn: sqlite3.Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    detail: dict[str, Any],
) -> int:
    """Add one record inside the caller's transaction; returns its sequence number."""
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    stamp = iso(at)
    detail_text = canonical_json(detail)
    digest = _digest((seq, stamp, actor, action, subject, detail_text, prev))
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, stamp, actor, action, subject, detail_text, prev, digest),
    )
    conn.execute("UPDATE counters SET value = ? WHERE name = 'audit_seq'", (seq,))
    return int(seq)


def verify_audit(conn: sqlite3.Connection) -> tuple[int, list[str]]:
    """Walk the chain; returns (records checked, problems found)."""
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    count = 0
    for row in conn.execute(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log "
        "ORDER BY seq"
    ):
        seq, at, actor, action, subject, detail, prev_hash, digest = tuple(row)
        count += 1
        if seq != expected_seq:
            problems.append(f"record {seq}: expected sequence {expected_seq} (records missing)")
        if prev_hash != prev:
            problems.append(f"record {seq}: does not follow the record before it")
        if _digest((seq, at, actor, action, subject, detail, prev_hash)) != digest:
            problems.append(f"record {seq}: content does not match its hash (edited)")
        expected_seq, prev = seq + 1, digest
    (recorded,) = conn.execute("SELECT value FROM counters WHERE name = 'audit_seq'").fetchone()
    if recorded != expected_seq - 1:
        problems.append(
            f"the log ends at record {expected_seq - 1} but {recorded} were written "
            "(records removed from the end)"
        )
    return count, problems
