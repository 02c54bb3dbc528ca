"""The lane router under the gateway's supervisor: a bug in a badge look-up costs that one
tap, is counted in /metrics, and the router serves the next tap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import generate_latest

from edge.api.metrics import ApiMetrics
from edge.bus import EventBus
from edge.devices.sink import DeviceRef, TagRead
from edge.events import ApprovalGrantEvent, ScanEvent
from edge.lanes.approvals import ApprovalGrants, BadgeApprovals
from edge.lanes.router import LaneRouter
from edge.lanes.settings import LanesSettings
from edge.supervise import Supervisor

from .conftest import Collector

READER = DeviceRef("lane2-nfc", "nfc", "lane-2")
BADGE = "04A1B2C3"


class FlakyLedger:
    """Manager look-ups whose first call hits a bug (not a storage fault the lanes expect)."""

    def __init__(self) -> None:
        self.calls = 0
        self.audit: list[str] = []

    async def manager_for_badge(self, uid: str) -> str | None:
        self.calls += 1
        if self.calls == 1:
            msg = "a bug in the badge look-up"
            raise RuntimeError(msg)
        return "m-17" if uid == BADGE else None

    async def record(self, action: str, subject: str, detail: dict[str, object]) -> None:
        self.audit.append(action)


async def test_a_badge_look_up_bug_costs_one_tap_and_the_router_serves_the_next(
    bus: EventBus, collect: Callable[..., Collector]
) -> None:
    grants_seen = collect(ApprovalGrantEvent)
    scans = collect(ScanEvent)
    ledger = FlakyLedger()
    badges = BadgeApprovals(ApprovalGrants(bus, ttl_s=60), ledger.manager_for_badge, ledger.record)
    router = LaneRouter(bus, LanesSettings(), badges)
    supervisor = Supervisor(first_s=0.01, max_s=0.05)
    metrics = ApiMetrics(task_restarts=supervisor.restarts)
    async with asyncio.TaskGroup() as group:
        task = supervisor.start(group, "lane-router", router.run)
        router.tap(READER, TagRead(BADGE), "auto")  # the look-up raises: this tap is lost
        router.tap(READER, TagRead(BADGE), "auto")  # served by the restarted router
        grant = await grants_seen.next()
        assert (grant.lane, grant.manager_id) == ("lane-2", "m-17")
        router.tap(READER, TagRead("0A0B0C0D"), "auto")  # any other tag is still a scan
        assert (await scans.next()).data == "0A0B0C0D"
        assert not task.done()
        task.cancel()
    assert supervisor.restarts == {"lane-router": 1}
    assert ledger.audit == ["approval.grant_issued"]
    assert [s.data for s in scans.seen] == ["0A0B0C0D"], "the failed tap never reached the lane"
    text = generate_latest(metrics.registry).decode()
    assert 'edge_task_restarts_total{task="lane-router"} 1.0' in text
