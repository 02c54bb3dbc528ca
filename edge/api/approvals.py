"""Manager approval: a PIN (slow hash, audited, locked after repeated failures) or a
single-use grant from a badge tap on the lane's NFC reader.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from edge.api.context import ApiContext
from edge.api.problems import ProblemError
from edge.api.schemas import ApprovalIn
from edge.domain.errors import ApprovalRequired
from edge.ledger import people
from edge.ledger.timefmt import iso, utcnow


async def approve(ctx: ApiContext, approval: ApprovalIn, actor: str, lane: str | None) -> str:
    """The approving manager's id; raises approval-required when the approval is not good."""
    if approval.grant is not None:
        if lane is None:
            raise ApprovalRequired(
                "a badge grant approves refunds on its own lane: send register_id set to it",
                "register_id",
            )
        manager = ctx.grants.redeem(approval.grant, lane) if ctx.grants else None
        if manager is None:
            raise ApprovalRequired(
                f"the badge approval is unknown, already used, expired or not for {lane};"
                " tap the badge again",
                "approval.grant",
            )
        return manager
    assert approval.manager_id is not None
    assert approval.pin is not None
    manager_id, pin = approval.manager_id, approval.pin
    now = utcnow()
    stored, locked_until = await ctx.ledger.read(
        lambda conn: people.manager_pin_hash(conn, manager_id, now)
    )
    if locked_until is not None:
        wait = max(1, int((locked_until - now).total_seconds()))
        raise ProblemError(
            "approval-locked",
            f"manager {manager_id} is locked after wrong PINs until {iso(locked_until)}",
            errors=[{"field": "approval.pin", "message": "locked after wrong PINs"}],
            headers={"Retry-After": str(wait)},
        )
    ok = stored is not None and await asyncio.to_thread(people.pin_matches, pin, stored)
    settings = ctx.settings.managers
    await ctx.ledger.write(
        lambda conn: people.record_pin_attempt(
            conn,
            manager_id,
            ok=ok,
            actor=actor,
            at=now,
            max_failures=settings.max_pin_failures,
            lockout=timedelta(seconds=settings.lockout_s),
        )
    )
    if not ok:
        ctx.metrics.pin_failures.inc()
        raise ApprovalRequired("the manager id or PIN is wrong", "approval.pin")
    return manager_id
