"""Failures injected where the gateway must survive them: a bus subscriber that raises, a
supervised loop that raises, an API handler that raises. Each is logged, counted in
/metrics, and the rest of the gateway goes on."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

import pytest
from prometheus_client import generate_latest

from edge.api.metrics import ApiMetrics
from edge.bus import EventBus
from edge.domain.views import SaleView
from edge.events import OutboxAppended, ScanEvent
from edge.supervise import loop_restarts, supervised
from tests.core.conftest import Gateway

WAIT_S = 5.0


def scan(data: str) -> ScanEvent:
    return ScanEvent(
        lane="lane-1", device="d", symbology="code-128", data=data, parsed={}, at=datetime.now(UTC)
    )


def test_a_subscriber_that_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    before: list[str] = []
    after: list[str] = []
    broken: list[str] = []

    def breaks(event: ScanEvent) -> None:
        broken.append(event.data)
        msg = "a bug in a subscriber"
        raise RuntimeError(msg)

    bus.subscribe(ScanEvent, lambda e: before.append(e.data))
    bus.subscribe(ScanEvent, breaks)
    bus.subscribe(ScanEvent, lambda e: after.append(e.data))
    bus.subscribe(OutboxAppended, lambda e: None)
    metrics = ApiMetrics(subscriber_failures=bus.subscriber_failures)

    bus.publish(scan("1"))
    bus.publish(scan("2"))
    bus.publish(OutboxAppended(last_seq=1))

    assert before == after == ["1", "2"], "every other subscriber got every event"
    assert broken == ["1", "2"], "the failing subscriber stays subscribed"
    assert bus.subscriber_failures == {"ScanEvent": 2}
    assert sum("a bug in a subscriber" in r.exc_text for r in caplog.records if r.exc_text) == 2
    text = generate_latest(metrics.registry).decode()
    assert 'edge_bus_subscriber_failures_total{event="ScanEvent"} 2.0' in text


async def test_a_supervised_loop_that_raises_is_restarted_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    restarts: Counter[str] = Counter()
    started = 0
    third_start = asyncio.Event()
    finish = asyncio.Event()

    async def loop() -> None:
        nonlocal started
        started += 1
        if started < 3:
            msg = f"bug number {started}"
            raise RuntimeError(msg)
        third_start.set()
        await finish.wait()

    task = asyncio.create_task(supervised("flaky", loop, restarts, first_s=0.01, max_s=0.05))
    await asyncio.wait_for(third_start.wait(), WAIT_S)
    assert restarts == {"flaky": 2}
    assert loop_restarts(restarts) == {"loop_restarts": 2}
    logged = [r for r in caplog.records if r.name == "edge.supervise"]
    assert [r.exc_info[1].args for r in logged if r.exc_info and r.exc_info[1]] == [
        ("bug number 1",),
        ("bug number 2",),
    ]
    finish.set()
    await asyncio.wait_for(task, WAIT_S)  # a loop that returns is done, not restarted
    assert started == 3


async def test_cancelling_a_supervised_loop_ends_it_and_is_no_failure() -> None:
    restarts: Counter[str] = Counter()
    running = asyncio.Event()

    async def loop() -> None:
        running.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervised("idle", loop, restarts))
    await asyncio.wait_for(running.wait(), WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert restarts == {}
    assert loop_restarts(restarts) == {}


async def test_a_handler_that_raises_answers_internal_error_and_is_counted(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(sale_id: str) -> SaleView | None:
        msg = f"a bug while reading {sale_id}"
        raise RuntimeError(msg)

    monkeypatch.setattr(gw.ledger, "sale", broken)
    caplog.set_level(logging.ERROR)
    for _ in range(3):
        status, problem, headers = await gw.call("GET", "/v1/sales/S-1")
        assert (status, problem["type"].rsplit("/", 1)[1]) == (500, "internal-error")
        assert headers["X-Request-Id"] == problem["request_id"]
    async with gw.http.get(f"{gw.base}/metrics") as r:
        text = await r.text()
    assert 'edge_http_internal_errors_total{route="/v1/sales/{sale_id}"} 3.0' in text
    assert len([r for r in caplog.records if r.name == "edge.api.problems"]) == 3
    status, _, _ = await gw.call("GET", "/healthz")
    assert status == 200, "the gateway serves on"
