"""Manager badge approvals: a badge tap on a lane's reader becomes a single-use grant.

The refund service redeems the grant (`approval: {"grant": ...}`) once, within its TTL, for
a refund on the lane it was issued for. Badge UIDs are never logged or audited in full: a short
one-way fingerprint identifies a badge in the logs and the audit trail.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from edge.bus import EventBus
from edge.errors import EdgeError
from edge.events import ApprovalGrantEvent

log = logging.getLogger(__name__)

ManagerForBadge = Callable[[str], Awaitable[str | None]]
Audit = Callable[[str, str, dict[str, object]], Awaitable[None]]


def badge_fingerprint(uid_hex: str) -> str:
    """12 hex characters that tell badges apart in logs without revealing the UID."""
    return hashlib.sha256(f"edge-badge-log:{uid_hex.upper()}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Grant:
    lane: str
    manager_id: str
    expires: float


class ApprovalGrants:
    """Issues and redeems short-lived, single-use approval grants."""

    def __init__(
        self,
        bus: EventBus,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._bus = bus
        self._ttl = ttl_s
        self._clock = clock
        self._now = now
        self._grants: dict[str, _Grant] = {}
        self._spent: dict[str, _Grant] = {}

    def issue(self, lane: str, manager_id: str) -> ApprovalGrantEvent:
        """A new grant for `lane`, published on the bus so the lane's register receives it."""
        self._expire()
        grant = f"g_{secrets.token_urlsafe(24)}"
        self._grants[grant] = _Grant(lane, manager_id, self._clock() + self._ttl)
        event = ApprovalGrantEvent(
            lane=lane,
            grant=grant,
            manager_id=manager_id,
            expires_at=self._now() + timedelta(seconds=self._ttl),
        )
        self._bus.publish(event)
        return event

    def lane_of(self, grant: str) -> str | None:
        """The lane of a grant that can still be redeemed; None if unknown, used or expired.

        The refund service checks it against the refund's `register_id` and the client's
        lane before redeeming, so a refusal can name the field at fault.
        """
        self._expire()
        entry = self._grants.get(grant)
        return None if entry is None else entry.lane

    def redeem(self, grant: str, lane: str) -> str | None:
        """The approving manager's id, once; None if unknown, used, expired or not `lane`'s.

        A grant reached one lane's registers and approves only that lane's refunds; trying it
        for another lane does not use it up.
        """
        self._expire()
        entry = self._grants.get(grant)
        if entry is None or lane != entry.lane:
            return None
        del self._grants[grant]
        self._spent[grant] = entry
        return entry.manager_id

    def restore(self, grant: str) -> None:
        """Give a redeemed grant back, within its TTL: the refund it approved was refused
        (quantity, window...) and wrote nothing, so the manager need not tap again."""
        self._expire()
        entry = self._spent.pop(grant, None)
        if entry is not None:
            self._grants[grant] = entry

    @property
    def outstanding(self) -> int:
        self._expire()
        return len(self._grants)

    def _expire(self) -> None:
        now = self._clock()
        for pool in (self._grants, self._spent):
            for grant in [g for g, entry in pool.items() if entry.expires <= now]:
                del pool[grant]


class BadgeApprovals:
    """Turns badge taps into grants for registered managers, auditing every tap."""

    def __init__(
        self, grants: ApprovalGrants, manager_for_badge: ManagerForBadge, audit: Audit
    ) -> None:
        self._grants = grants
        self._manager_for_badge = manager_for_badge
        self._audit = audit
        self.unknown = 0
        self.failures = 0

    async def tap(self, lane: str, device: str, uid_hex: str) -> ApprovalGrantEvent | None:
        """Look the badge up; a manager's badge yields a grant on `lane`, audited first."""
        badge = badge_fingerprint(uid_hex)
        try:
            manager_id = await self._manager_for_badge(uid_hex.upper())
            if manager_id is None:
                self.unknown += 1
                log.info("lane %s: unknown badge %s on %s", lane, badge, device)
                await self._audit("badge.unknown", lane, {"device": device, "badge": badge})
                return None
        except EdgeError as exc:
            self._failed(lane, badge, exc)
            return None
        return await self._grant(lane, device, badge, manager_id)

    async def claim(self, lane: str, device: str, uid_hex: str) -> bool:
        """True when a tag from a reader serving both jobs is the gateway's, not the lane's.

        A manager's badge is handled as `tap` handles it and its UID goes no further. Any
        other tag is False, for the lane to read as a scan; it is not audited, since nobody
        offered it as a badge. A failed look-up is True: a tag that may be a badge is never
        shown to registers.
        """
        badge = badge_fingerprint(uid_hex)
        try:
            manager_id = await self._manager_for_badge(uid_hex.upper())
        except EdgeError as exc:
            self._failed(lane, badge, exc)
            return True
        if manager_id is None:
            return False
        await self._grant(lane, device, badge, manager_id)
        return True

    async def _grant(
        self, lane: str, device: str, badge: str, manager_id: str
    ) -> ApprovalGrantEvent | None:
        try:
            await self._audit(
                "approval.grant_issued",
                manager_id,
                {"lane": lane, "device": device, "badge": badge},
            )
        except EdgeError as exc:  # audit log unavailable: no unaudited grant
            self._failed(lane, badge, exc)
            return None
        event = self._grants.issue(lane, manager_id)
        log.info("lane %s: approval grant for manager %s (badge %s)", lane, manager_id, badge)
        return event

    def _failed(self, lane: str, badge: str, exc: EdgeError) -> None:
        self.failures += 1
        log.error("lane %s: badge %s not handled: %s", lane, badge, exc)
