"""The HQ link as the ledger records it: how long the oldest event has waited for HQ's ack,
and when HQ last acked one.

The gateway itself calls the link offline once an event has waited `hq.ack_silence_s`
without an ack (refunds then go on under the offline limits); `doctor` warns from that
point and fails once an event has waited an hour, which a fleet should alert on.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from edge.contract.timefmt import duration, parse_iso
from edge.doctor.findings import Finding, failed, passed, skipped, warned
from edge.hqlink.settings import HqSettings
from edge.ledger.outbox import stats

FAIL_AFTER_S = 3600.0


def check(hq: HqSettings, conn: sqlite3.Connection | None, now: datetime) -> Finding:
    if not hq.enabled:
        return passed("hq-link", "disabled: refunds are recorded here and not sent to HQ")
    if conn is None:
        return skipped("hq-link", "not checked: no ledger to read")
    try:
        box = stats(conn)
    except sqlite3.Error as exc:
        return skipped("hq-link", f"not checked: cannot read the outbox ({exc})")
    last_ack = (
        f"HQ last acked {_age(now, box.last_acked_at)} ago"
        if box.last_acked_at
        else "no HQ ack on record"
    )
    data = {
        "pending": box.pending,
        "oldest_pending_at": box.oldest_pending_at,
        "last_acked_at": box.last_acked_at,
    }
    if box.pending == 0 or box.oldest_pending_at is None:
        return passed("hq-link", f"no event waits for HQ; {last_ack}", **data)
    waited = (now - parse_iso(box.oldest_pending_at)).total_seconds()
    detail = (
        f"{box.pending} events wait for HQ, the oldest for {_age(now, box.oldest_pending_at)};"
        f" {last_ack}"
    )
    action = (
        "check the broker lines above and that HQ is up; nothing is lost, the outbox sends"
        " everything once HQ acks again"
    )
    if waited > max(FAIL_AFTER_S, hq.ack_silence_s):
        return failed("hq-link", detail, action, **data)
    if waited > hq.ack_silence_s:
        return warned("hq-link", detail, action, **data)
    return passed("hq-link", detail, **data)


def _age(now: datetime, stamp: str) -> str:
    return duration(int((now - parse_iso(stamp)).total_seconds()))
