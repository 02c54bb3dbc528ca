"""A store as store IT runs it, for the status page and /metrics tests: a real mosquitto the
test can stop, an HQ built from the contract alone that acks every event, the
`edge-gateway` program with a serial scanner on a pseudo-terminal the test types into, and
a register on the LAN API.

Everything is synchronous (the browser is), so the register's async calls run in
`asyncio.run`; waits poll the gateway's own /readyz, never a fixed delay.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.contract.peers import ContractHq, Gateway, Register, contract_sale
from tests.hqlink.broker import Mosquitto

T = TypeVar("T")
WAIT_S = 20.0
ZONE = "Asia/Kathmandu"  # UTC+05:45: neither UTC nor a whole-hour offset
SCANNER = "lane3-scan"
LANE = "3"


class PtyScanner:
    """A serial scanner: the gateway opens the pseudo-terminal's `port`; the test types
    scans on the other side and unplugs it by closing that side."""

    def __init__(self) -> None:
        self._controller, device = os.openpty()
        self.port = os.ttyname(device)
        os.close(device)  # the gateway opens its own

    def scan(self, code: str) -> None:
        os.write(self._controller, code.encode() + b"\r")

    def unplug(self) -> None:
        if self._controller >= 0:
            os.close(self._controller)
            self._controller = -1


@dataclass
class ZonedGateway(Gateway):
    """The contract suite's gateway, in the store's own time zone."""

    zone: str = ZONE

    def env(self) -> dict[str, str]:
        env = super().env()
        env["EDGE_TIMEZONE"] = self.zone
        return env


@dataclass
class Store:
    broker: Mosquitto
    hq: ContractHq
    gateway: ZonedGateway
    scanner: PtyScanner
    register: Register
    refunds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.gateway.base

    def call(self, fn: Callable[[Register], Coroutine[Any, Any, T]]) -> T:
        """Run `fn(register)` with a fresh token (one event loop per call)."""

        async def go() -> T:
            register = Register(self.base, self.register.client_id, self.register.client_secret)
            async with register:
                return await fn(register)

        return asyncio.run(go())

    def sell_and_refund(self, sale_id: str, key: str) -> dict[str, Any]:
        """A sale and a refund of one unit of it; the refund as the register got it."""

        async def go(register: Register) -> dict[str, Any]:
            status, sale = await register.call("POST", "/v1/sales", contract_sale(sale_id))
            assert status == 201, sale
            body = {"sale_id": sale_id, "lines": [{"line_id": "1", "quantity": 1}]}
            status, refund = await register.refund(body, key)
            assert status == 201, refund
            return dict(refund)

        refund = self.call(go)
        self.refunds.append(refund)
        return refund

    def ready(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{self.base}/readyz", timeout=WAIT_S) as r:
                return r.status, dict(json.loads(r.read()))
        except urllib.error.HTTPError as exc:
            return exc.code, dict(json.loads(exc.read()))

    def wait_ready(self, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll /readyz until `check` holds: each round trip is the wait."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            _, body = self.ready()
            if check(body):
                return body
        raise TimeoutError(f"/readyz never showed {what}: {body}")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=WAIT_S) as r:
            return str(r.read().decode())

    def wait_scanned(self, scans: int) -> None:
        """Until /metrics counts `scans` scans on the lane (typed scans take a moment)."""
        deadline = time.monotonic() + WAIT_S
        line = f'edge_lane_scans_total{{lane="{LANE}"}} {float(scans)}'
        while line not in self.get("/metrics"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"/metrics never showed {line}")


def open_store(workdir: Path) -> Store:
    """Broker, HQ and gateway started; the scanner connected; the link online."""
    broker = Mosquitto(workdir / "broker")
    broker.start()
    hq = ContractHq(broker.port).__enter__()
    scanner = PtyScanner()
    gateway = ZonedGateway(
        workdir / "gateway",
        broker.port,
        config=(
            f'[[devices.serial]]\nid = "{SCANNER}"\nlane = "{LANE}"\nport = "{scanner.port}"\n'
            "reconnect_s = 0.5\n"
        ),
    )
    gateway.workdir.mkdir(parents=True)
    register = gateway.add_client("lane-3-app", lane=LANE)
    gateway.start()
    store = Store(broker, hq, gateway, scanner, register)
    store.wait_ready(
        lambda r: r["hq_link"]["online"] and r["devices"][SCANNER]["state"] == "connected",
        "the link online and the scanner connected",
    )
    return store


def close_store(store: Store) -> None:
    code = store.gateway.stop()
    store.hq.__exit__(None, None, None)
    store.broker.stop()
    store.scanner.unplug()
    assert code == 0, store.gateway.log()[-4000:]
