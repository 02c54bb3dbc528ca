"""Third-party peers that know nothing but the public contract (`shared/spec/contract.md`).

Nothing here imports the product: the gateway is the `edge-gateway` program in a
subprocess, configured the way store IT does it (a TOML file, environment variables and the
operator CLI), and reached only over HTTP, WebSocket and MQTT as the contract writes them.
`ContractHq` is an HQ built from the MQTT section alone: it subscribes to `events`, acks
every `event_id` and answers `lookup`; it announces no presence. `Register` is a register
that sends no field the contract does not name.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 15.0
PREFIX = "retail/v1"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slug(problem: dict[str, Any]) -> str:
    """The stable slug a problem's `type` ends in."""
    return str(problem["type"]).rsplit("/", 1)[-1]


def contract_sale(
    sale_id: str, *, unit_price: str = "19.99", channel: str = "store"
) -> dict[str, Any]:
    """The contract's own example sale: 2 x unit_price - 4.00 - 5.00 + 3.20 tax, one card."""
    total = str(2 * Decimal(unit_price) - Decimal("4.00") - Decimal("5.00") + Decimal("3.20"))
    return {
        "sale_id": sale_id,
        "channel": channel,
        "register_id": "lane-3",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "currency": "USD",
        "lines": [
            {
                "line_id": "1",
                "sku": "TSHIRT-M-BLK",
                "gtin": "09506000134352",
                "description": "T-shirt",
                "category": "apparel",
                "quantity": 2,
                "unit_price": unit_price,
                "discount": "4.00",
                "tax": "3.20",
                "final_sale": False,
            }
        ],
        "order_discount": "5.00",
        "shipping": {"amount": "0.00", "tax": "0.00"},
        "tenders": [
            {
                "tender_id": "t1",
                "type": "card",
                "amount": total,
                "payment_token": "tok_9f8e7d6c",
                "auth_code": "A1B2C3",
                "card_brand": "visa",
                "last4": "4242",
            }
        ],
    }


class NotifySocket:
    """The systemd notify socket the gateway reports READY=1 on: startup is complete."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait_ready(self, timeout: float = WAIT_S * 2) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                if b"READY=1" in self.sock.recv(4096):
                    return
            except TimeoutError:
                break
        raise TimeoutError("the gateway did not report READY=1")

    def close(self) -> None:
        self.sock.close()


@dataclass
class Gateway:
    """`edge-gateway` as store IT runs it: a config file, the operator CLI, `run`."""

    workdir: Path
    broker_port: int
    config: str = ""
    store_id: str = "0042"
    gateway_id: str = "gw-01"
    lan_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.lan_port}"

    @property
    def topic_base(self) -> str:
        return f"{PREFIX}/{self.store_id}/{self.gateway_id}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        config = self.workdir / "gateway.toml"
        config.write_text(
            f'store_id = "{self.store_id}"\ngateway_id = "{self.gateway_id}"\n'
            f'data_dir = "{self.workdir / "data"}"\n'
            f'[lan]\nbind = "127.0.0.1"\nport = {self.lan_port}\n'
            # a short ack timeout and reconnect backoff keep the test short; everything
            # else, require_hq_presence included, stays at the shipped default
            f"[hq]\nack_timeout_s = 1.0\nack_silence_s = 3.0\nhealth_interval_s = 1.0\n"
            f'[hq.broker]\nhost = "127.0.0.1"\nport = {self.broker_port}\n'
            "backoff_initial_s = 0.2\nbackoff_max_s = 1.0\n" + self.config
        )
        env["EDGE_CONFIG"] = str(config)
        return env

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "edge", *args],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 0, f"edge-gateway {' '.join(args)}: {done.stderr}"
        return done

    def add_client(self, name: str, role: str = "register", lane: str | None = None) -> Register:
        args = ["clients", "add", name, "--role", role, "--json"]
        if lane is not None:
            args += ["--lane", lane]
        creds = json.loads(self.cli(*args).stdout)
        return Register(self.base, creds["client_id"], creds["client_secret"])

    def start(self) -> None:
        env = self.env()
        ready = NotifySocket(self.workdir)
        env["NOTIFY_SOCKET"] = ready.path
        try:
            with (self.workdir / "gateway.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "edge", "run"], env=env, stdout=log, stderr=log, cwd=ROOT
                )
            ready.wait_ready()
        finally:
            ready.close()

    def stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.terminate()
        try:
            return proc.wait(WAIT_S * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def log(self) -> str:
        return (self.workdir / "gateway.log").read_text(errors="replace")


@dataclass
class Register:
    """A register or handheld app: OAuth client credentials, then the LAN API."""

    base: str
    client_id: str
    client_secret: str
    http: aiohttp.ClientSession | None = None
    token: str = ""

    async def __aenter__(self) -> Register:
        self.http = aiohttp.ClientSession()
        basic = {"Authorization": aiohttp.encode_basic_auth(self.client_id, self.client_secret)}
        async with self.http.post(
            f"{self.base}/oauth/token", data={"grant_type": "client_credentials"}, headers=basic
        ) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        assert body["token_type"] == "Bearer"
        self.token = body["access_token"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.close()

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.request(
            method, f"{self.base}{path}", json=body, headers={**self.bearer, **(headers or {})}
        ) as r:
            return r.status, await r.json(content_type=None)

    async def refund(self, body: dict[str, Any], key: str) -> tuple[int, Any]:
        return await self.call("POST", "/v1/refunds", body, {"Idempotency-Key": key})

    def events(self, lane: str, after: int | None = None) -> Any:
        assert self.http is not None
        query = f"?lane={lane}" + ("" if after is None else f"&after={after}")
        return self.http.ws_connect(f"{self.base}/v1/events{query}", headers=self.bearer)

    async def wait_until(self, path: str, check: Callable[[Any], bool]) -> Any:
        """GET `path` until `check` holds for its body: the LAN API has no push for the link
        state, and each round trip is the wait (a broker loss shows within milliseconds)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                status, body = await self.call("GET", path)
                if status in (200, 503) and check(body):
                    return body


async def next_message(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next WebSocket message of `kind`, skipping others."""
    async with asyncio.timeout(WAIT_S):
        while True:
            message: dict[str, Any] = await ws.receive_json()
            if message["type"] == kind:
                return message


class ContractHq:
    """An HQ from the contract alone: subscribes to `events`, acks each `event_id` (or not,
    when told), answers `lookup` on `reply_to`; no presence, no other topic."""

    def __init__(self, port: int, orders: dict[str, dict[str, Any]] | None = None) -> None:
        self.port = port
        self.orders = orders or {}
        self.acking = True
        self.events: list[dict[str, Any]] = []
        self.lookups: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="contract-hq", protocol=mqtt.MQTTv311
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)

    def __enter__(self) -> ContractHq:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(f"{PREFIX}/+/+/events", 1), (f"{PREFIX}/+/+/lookup", 1)])

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        base = msg.topic.rsplit("/", 1)[0]
        if msg.topic.endswith("/events"):
            if self.acking:
                ack = {"event_id": body["event_id"], "status": "accepted"}
                client.publish(f"{base}/acks", json.dumps(ack), qos=1)
            with self._changed:
                self.events.append(body)
                self._changed.notify_all()
        else:
            sale = self.orders.get(body["code"])
            reply = {"request_id": body["request_id"], "found": sale is not None, "sale": sale}
            client.publish(body["reply_to"], json.dumps(reply), qos=1)
            with self._changed:
                self.lookups.append(body)
                self._changed.notify_all()

    def ack(self, event_id: str, store_id: str = "0042", gateway_id: str = "gw-01") -> None:
        body = json.dumps({"event_id": event_id, "status": "accepted"})
        self.client.publish(f"{PREFIX}/{store_id}/{gateway_id}/acks", body, qos=1)

    def wait_for(self, check: Callable[[], T | None], timeout: float = WAIT_S) -> T:
        """Block until `check()` is truthy (re-checked on every message); returns it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (found := check()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("HQ did not see what it waited for")
                self._changed.wait(left)
        return found

    async def until(self, check: Callable[[], T | None]) -> T:
        return await asyncio.to_thread(self.wait_for, check)
