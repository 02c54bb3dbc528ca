"""Approval grants: single use, short-lived, lane-bound; badge taps audited without UIDs."""

from __future__ import annotations

from collections.abc import Callable

from edge.bus import EventBus
from edge.errors import StorageError
from edge.events import ApprovalGrantEvent
from edge.lanes.approvals import ApprovalGrants, BadgeApprovals, badge_fingerprint

from .conftest import Clock, Collector


def test_grant_is_single_use_and_published(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    seen = collect(ApprovalGrantEvent)
    grants = ApprovalGrants(bus, ttl_s=120)
    event = grants.issue("lane-3", "m-17")
    assert seen.seen == [event]
    assert event.grant.startswith("g_")
    assert len(event.grant) > 30
    assert grants.redeem(event.grant, "lane-3") == "m-17"
    assert grants.redeem(event.grant, "lane-3") is None
    assert grants.redeem("g_made-up", "lane-3") is None


def test_grant_expires_after_its_ttl(bus: EventBus) -> None:
    clock = Clock(50.0)
    grants = ApprovalGrants(bus, ttl_s=120, clock=clock)
    early, late = grants.issue("lane-1", "m-1"), grants.issue("lane-1", "m-2")
    clock.now += 119
    assert grants.redeem(early.grant, "lane-1") == "m-1"
    clock.now += 2
    assert grants.redeem(late.grant, "lane-1") is None
    assert grants.outstanding == 0


def test_another_lane_cannot_use_the_grant_and_does_not_burn_it(bus: EventBus) -> None:
    grants = ApprovalGrants(bus, ttl_s=120)
    event = grants.issue("lane-3", "m-17")
    assert grants.redeem(event.grant, lane="lane-4") is None
    assert grants.redeem(event.grant, lane=None) is None, "a refund naming no lane cannot use it"
    assert grants.redeem(event.grant, lane="lane-3") == "m-17"


def test_a_grant_given_back_is_good_again_until_its_ttl(bus: EventBus) -> None:
    clock = Clock(0.0)
    grants = ApprovalGrants(bus, ttl_s=120, clock=clock)
    event = grants.issue("lane-3", "m-17")
    assert grants.redeem(event.grant, "lane-3") == "m-17"
    grants.restore(event.grant)
    assert grants.redeem(event.grant, "lane-3") == "m-17"
    grants.restore("g_never-issued")
    assert grants.outstanding == 0
    clock.now += 121
    grants.restore(event.grant)
    assert grants.redeem(event.grant, "lane-3") is None, "an expired grant is not given back"


def test_fingerprint_is_short_stable_and_not_the_uid() -> None:
    uid = "04A1B2C3D4E5F6"
    assert badge_fingerprint(uid) == badge_fingerprint(uid.lower())
    assert len(badge_fingerprint(uid)) == 12
    assert uid.lower() not in badge_fingerprint(uid)
    assert badge_fingerprint(uid) != badge_fingerprint("04A1B2C3D4E5F7")


async def test_unknown_badge_is_audited_and_yields_nothing(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    seen = collect(ApprovalGrantEvent)
    audit: list[tuple[str, str, dict[str, object]]] = []

    async def record(action: str, subject: str, detail: dict[str, object]) -> None:
        audit.append((action, subject, detail))

    async def nobody(uid: str) -> str | None:
        return None

    badges = BadgeApprovals(ApprovalGrants(bus, ttl_s=120), nobody, record)
    assert await badges.tap("lane-2", "lane2-nfc", "0a0b0c0d") is None
    assert audit == [
        ("badge.unknown", "lane-2", {"device": "lane2-nfc", "badge": badge_fingerprint("0A0B0C0D")})
    ]
    assert seen.seen == []
    assert badges.unknown == 1


async def test_no_grant_without_an_audit_record(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    seen = collect(ApprovalGrantEvent)

    async def broken_audit(action: str, subject: str, detail: dict[str, object]) -> None:
        raise StorageError("disk full")

    async def manager(uid: str) -> str | None:
        return "m-17"

    grants = ApprovalGrants(bus, ttl_s=120)
    badges = BadgeApprovals(grants, manager, broken_audit)
    assert await badges.tap("lane-2", "lane2-nfc", "0A0B0C0D") is None
    assert seen.seen == []
    assert grants.outstanding == 0
    assert badges.failures == 1


async def test_badge_lookup_gets_uppercase_hex(bus: EventBus) -> None:
    asked: list[str] = []

    async def manager(uid: str) -> str | None:
        asked.append(uid)
        return "m-1"

    async def record(action: str, subject: str, detail: dict[str, object]) -> None:
        return None

    event = await BadgeApprovals(ApprovalGrants(bus, ttl_s=5), manager, record).tap(
        "l", "d", "04a1b2"
    )
    assert asked == ["04A1B2"]
    assert event is not None
    assert event.lane == "l"
