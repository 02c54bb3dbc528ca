"""The clock: synchronised by NTP, and not behind what the ledger already holds.

Return windows, token lifetimes, the outbox's ages and HQ's view of when a refund happened
all read this clock; one that jumped back (a Raspberry Pi has no battery-backed clock and
boots at its last shutdown time until NTP answers) would date new refunds before old ones.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from datetime import datetime, timedelta

from edge.contract.timefmt import iso, parse_iso
from edge.doctor.findings import Finding, failed, passed, skipped, warned

BEHIND_TOLERANCE = timedelta(seconds=5)
_NEWEST = (
    # (what, query): each reads an index or the newest row, never a whole table
    ("refund", "SELECT max(created_at) FROM returns"),
    ("outbox event", "SELECT occurred_at FROM outbox ORDER BY seq DESC LIMIT 1"),
    ("sale", "SELECT recorded_at FROM sales ORDER BY rowid DESC LIMIT 1"),
)


def ntp(timeout_s: float) -> Finding:
    keep = "keep the clock synchronised (systemd-timesyncd or chrony)"
    exe = shutil.which("timedatectl")
    if exe is None:
        return skipped("clock-ntp", "not checked: timedatectl is not installed", keep)
    try:
        out = subprocess.run(  # noqa: S603 - a fixed command found on PATH, no input
            [exe, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return skipped("clock-ntp", f"not checked: timedatectl failed ({exc})", keep)
    answer = out.stdout.strip()
    if out.returncode != 0 or answer not in ("yes", "no"):
        why = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return skipped("clock-ntp", f"not checked: timedatectl did not answer ({why})", keep)
    if answer == "no":
        return warned(
            "clock-ntp",
            "the clock is not synchronised by NTP",
            "timedatectl set-ntp true, and let the box reach an NTP server (UDP 123)",
        )
    return passed("clock-ntp", "synchronised by NTP")


def newest_record(conn: sqlite3.Connection) -> tuple[str, datetime] | None:
    """The newest time the ledger holds (refund, outbox event or sale) and what it is."""
    found: list[tuple[datetime, str]] = []
    for what, query in _NEWEST:
        row = conn.execute(query).fetchone()
        if row is not None and row[0]:
            found.append((parse_iso(row[0]), what))
    if not found:
        return None
    at, what = max(found)
    return what, at


def behind_ledger(conn: sqlite3.Connection | None, now: datetime) -> Finding:
    if conn is None:
        return skipped("clock-ledger", "not checked: no ledger to compare with")
    try:
        newest = newest_record(conn)
    except (sqlite3.Error, ValueError) as exc:
        return skipped("clock-ledger", f"not checked: cannot read the ledger ({exc})")
    if newest is None:
        return passed("clock-ledger", f"{iso(now)}; the ledger holds no record yet")
    what, at = newest
    if now + BEHIND_TOLERANCE < at:
        return failed(
            "clock-ledger",
            f"the clock ({iso(now)}) is {_span(at - now)} behind the newest {what} in the"
            f" ledger ({iso(at)})",
            "set the clock right (NTP) before taking refunds: new ones would be dated"
            " before earlier ones",
        )
    return passed("clock-ledger", f"{iso(now)}, after the newest {what} in the ledger")


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"
