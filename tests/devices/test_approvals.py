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
    assert grants.lane_of(event.grant) == "lane-3"
    assert grants.redeem(event.grant, lane="lane-4") is None
    assert grants.lane_of(event.grant) == "lane-3", "still good for its own lane"
    assert grants.redeem(event.grant, lane="lane-3") == "m-17"
    assert grants.lane_of(event.grant) is None, "used up"
    assert grants.lane_of("g_made-up") is None


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


class _Ledger:
    """Manager look-ups and audit records as a test double for the ledger."""

    def __init__(self, managers: dict[str, str], *, broken: bool = False) -> None:
        self.managers = managers
        self.broken = broken
        self.audit: list[tuple[str, str, dict[str, object]]] = []

    async def manager_for_badge(self, uid: str) -> str | None:
        if self.broken:
            raise StorageError("database is locked")
        return self.managers.get(uid)

    async def record(self, action: str, subject: str, detail: dict[str, object]) -> None:
        self.audit.append((action, subject, detail))


async def test_claim_takes_a_manager_badge_and_leaves_any_other_tag_to_the_lane(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    seen = collect(ApprovalGrantEvent)
    ledger = _Ledger({"04A1B2C3D4E5F6": "m-17"})
    badges = BadgeApprovals(ApprovalGrants(bus, ttl_s=120), ledger.manager_for_badge, ledger.record)
    assert await badges.claim("lane-2", "lane2-nfc", "04a1b2c3d4e5f6") is True
    assert await badges.claim("lane-2", "lane2-nfc", "0A0B0C0D") is False
    assert [(e.lane, e.manager_id) for e in seen.seen] == [("lane-2", "m-17")]
    assert ledger.audit == [
        (
            "approval.grant_issued",
            "m-17",
            {"lane": "lane-2", "device": "lane2-nfc", "badge": badge_fingerprint("04A1B2C3D4E5F6")},
        )
    ], "a tag nobody offered as a badge is not audited"
    assert (badges.unknown, badges.failures) == (0, 0)


async def test_claim_keeps_a_tag_whose_look_up_failed(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    seen = collect(ApprovalGrantEvent)
    ledger = _Ledger({"04A1B2C3D4E5F6": "m-17"}, broken=True)
    badges = BadgeApprovals(ApprovalGrants(bus, ttl_s=120), ledger.manager_for_badge, ledger.record)
    assert await badges.claim("lane-2", "lane2-nfc", "0A0B0C0D") is True, "it may be a badge"
    assert seen.seen == []
    assert badges.failures == 1


async def test_claim_of_a_badge_without_an_audit_record_grants_nothing(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    seen = collect(ApprovalGrantEvent)

    async def broken_audit(action: str, subject: str, detail: dict[str, object]) -> None:
        raise StorageError("disk full")

    ledger = _Ledger({"0A0B0C0D": "m-17"})
    grants = ApprovalGrants(bus, ttl_s=120)
    badges = BadgeApprovals(grants, ledger.manager_for_badge, broken_audit)
    assert await badges.claim("lane-2", "lane2-nfc", "0A0B0C0D") is True
    assert seen.seen == []
    assert grants.outstanding == 0
    assert badges.failures == 1
