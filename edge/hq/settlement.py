"""Settling a refund once, whichever of several HQ instances gets to it.

An instance takes a lease on an undecided refund (`claimed_by`, `claimed_until`) with an
UPDATE conditional on nobody holding a live one, and calls the processor only when that
UPDATE changed the row; so two instances never call the processor for one refund at the
same time. An instance that dies mid-call leaves its lease to run out and another takes the
refund over (the processor's idempotency key, the Return ID, makes that second call
harmless). The outcome is recorded by an UPDATE conditional on the refund still being
`received`: whoever changes the row acks the outcome, nobody else.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.timefmt import iso, utcnow
from edge.hq.store import AckOut, decision_ack
from edge.hq.tables import refunds


async def open_refunds(conn: AsyncConnection) -> list[str]:
    """Refunds received but not decided (e.g. the service stopped mid-way)."""
    query = select(refunds.c.return_id).where(refunds.c.status == "received")
    return [str(r) for r in (await conn.execute(query)).scalars()]


async def orphaned_refunds(
    conn: AsyncConnection, now_ms: int, received_before: str, limit: int = 1_000
) -> list[str]:
    """Undecided refunds no instance holds a lease on, received before `received_before`:
    the instance that took them in stopped before it could settle them."""
    query = (
        select(refunds.c.return_id)
        .where(
            refunds.c.status == "received",
            refunds.c.received_at < received_before,
            or_(refunds.c.claimed_until.is_(None), refunds.c.claimed_until <= now_ms),
        )
        .limit(limit)
    )
    return [str(r) for r in (await conn.execute(query)).scalars()]


def now_ms() -> int:
    """Lease clock: wall-clock milliseconds, comparable between hosts kept in time (NTP)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Claim:
    """The outcome of asking to settle a refund now."""

    request: RowMapping | None  # the refund, when this instance holds the lease on it
    held_until_ms: int | None = None  # another instance's lease ends then


async def claim_refund(
    conn: AsyncConnection, return_id: str, instance: str, lease_ms: int
) -> Claim:
    """Take the lease on an undecided refund, unless another instance holds it.

    The conditional UPDATE is the lock: of instances asking at once, one row is updated.
    An instance may take back its own lease (its earlier run stopped); names are unique,
    as the broker requires of client ids.
    """
    at = now_ms()
    result = await conn.execute(
        update(refunds)
        .where(
            refunds.c.return_id == return_id,
            refunds.c.status == "received",
            or_(
                refunds.c.claimed_until.is_(None),
                refunds.c.claimed_until <= at,
                refunds.c.claimed_by == instance,
            ),
        )
        .values(claimed_by=instance, claimed_until=at + lease_ms, claims=refunds.c.claims + 1)
        .returning(*refunds.c)
    )
    row = result.mappings().first()
    if row is not None:
        return Claim(row)
    query = select(refunds.c.status, refunds.c.claimed_until).where(
        refunds.c.return_id == return_id
    )
    other = (await conn.execute(query)).first()
    if other is None or other.status != "received" or other.claimed_until is None:
        return Claim(None)
    return Claim(None, int(other.claimed_until))


async def release_claim(conn: AsyncConnection, return_id: str, instance: str) -> None:
    """Give the lease back after a failed attempt, so any instance may retry it."""
    await conn.execute(
        update(refunds)
        .where(refunds.c.return_id == return_id, refunds.c.claimed_by == instance)
        .values(claimed_until=None, attempts=refunds.c.attempts + 1)
    )


@dataclass(frozen=True)
class Decided:
    """The processor's and ERP's outcome for one refund, to be recorded."""

    return_id: str
    status: str
    processor_ref: str | None
    erp_ref: str | None
    reason: str | None


@dataclass
class Recorded:
    """Outcomes recorded by this call (to be acked) and those another call recorded first."""

    acks: list[AckOut] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


async def record_decisions(
    conn: AsyncConnection, decided: Iterable[Decided], instance: str
) -> Recorded:
    """Store each outcome once: the UPDATE that finds the refund still `received` wins, and
    only the winner acks it."""
    now = iso(utcnow())
    out = Recorded()
    for d in decided:
        result = await conn.execute(
            update(refunds)
            .where(refunds.c.return_id == d.return_id, refunds.c.status == "received")
            .values(
                status=d.status,
                processor_ref=d.processor_ref,
                erp_ref=d.erp_ref,
                reason=d.reason,
                decided_at=now,
                decided_by=instance,
                claimed_until=None,
                attempts=refunds.c.attempts + 1,
            )
            .returning(*refunds.c)
        )
        row = result.mappings().first()
        if row is None:
            out.lost.append(d.return_id)
        else:
            out.acks.append(decision_ack(row))
    return out


async def refund_request(conn: AsyncConnection, return_id: str) -> RowMapping | None:
    query = select(refunds).where(refunds.c.return_id == return_id)
    return (await conn.execute(query)).mappings().first()
