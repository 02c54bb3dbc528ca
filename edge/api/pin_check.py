"""Manager PIN checks: one at a time per manager, and as slow for a manager who is not there.

Each check reads the failure count, verifies the PIN (Argon2id, off the event loop) and
records the attempt; run side by side, parallel guesses would all read the count before
any of them wrote it and so get more tries than `managers.max_pin_failures`. A lock per
manager id makes them take turns, so a manager is locked after exactly that many wrong
PINs whatever the concurrency. A manager id that does not exist (or has no PIN) is still
verified against a hash of the same cost, so timing does not tell which ids exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from edge.api.problems import ProblemError
from edge.contract.timefmt import iso, utcnow
from edge.domain.errors import ApprovalRequired
from edge.ledger import people

if TYPE_CHECKING:
    from edge.api.context import ApiContext

# Argon2id of a random PIN nobody knows, with the ledger's PIN hashing parameters
# (tests/core/test_hostile_input.py checks that they stay the same).
UNKNOWN_MANAGER_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$8fV80JEk1A56ojgIE0a+IA"
    "$U0Y3Rkw802JXorUhYbFWzmVaqVj8f4AuwVVJ/96ZWhA"
)


class ManagerLocks:
    """One asyncio.Lock per manager id, kept only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, manager_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(manager_id, (asyncio.Lock(), 0))
        self._locks[manager_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[manager_id]
            if users == 1:
                del self._locks[manager_id]
            else:
                self._locks[manager_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


async def check_pin(ctx: ApiContext, manager_id: str, pin: str, actor: str) -> str:
    """The manager's id if the PIN is right; else approval-required, or approval-locked."""
    async with ctx.pin_locks.hold(manager_id):
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
        matched = await asyncio.to_thread(
            people.pin_matches, pin, stored if stored is not None else UNKNOWN_MANAGER_HASH
        )
        ok = stored is not None and matched
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
