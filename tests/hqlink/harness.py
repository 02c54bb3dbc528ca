"""Real processes and a real MQTT observer for the HQ link tests.

The gateway and the HQ service run as `python -m edge run` / `python -m edge hq` child
processes (so they can be SIGKILLed); the test watches the broker with its own client and
waits on what it sees there, never on a fixed delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from edge.contract.timefmt import utcnow
from edge.ledger import people
from edge.ledger.db import apply_migrations, open_sync
from edge.mqtt.client import Message, MqttClient
from edge.mqtt.settings import BrokerSettings
from tests.core.daemon import ROOT, env_for, free_port, launch

T = TypeVar("T")
PREFIX = "retail/v1"
FAST_BROKER = {"backoff_initial_s": 0.05, "backoff_max_s": 0.3, "connect_timeout_s": 2.0}


def fast_broker(port: int, **extra: Any) -> BrokerSettings:
    return BrokerSettings(port=port, **{**FAST_BROKER, **extra})


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(cmd, env=env, stdout=sink, stderr=sink, cwd=ROOT)


class Observer:
    """Watches the broker: every message kept, acks and presence indexed as they come."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.messages: list[Message] = []
        self.acks: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.births: Counter[str] = Counter()
        self.retained: dict[str, Message] = {}
        self._changed = asyncio.Event()
        self.client = MqttClient(
            fast_broker(port),
            client_id=f"observer-{uuid.uuid4().hex[:8]}",
            name="observer",
            on_message=self._on,
            subscriptions=[(t, 1) for t in topics],
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Observer:
        self._task = asyncio.create_task(self.client.run(), name="observer-mqtt")
        async with asyncio.timeout(10):
            await self.client.wait_connected()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    def _on(self, msg: Message) -> None:
        self.messages.append(msg)
        self.retained[msg.topic] = msg
        # the malformed-input tests publish garbage on these topics on purpose
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self._index(msg)
        self._changed.set()

    def _index(self, msg: Message) -> None:
        if msg.topic.endswith("/acks"):
            ack = json.loads(msg.payload)
            self.acks[ack["event_id"]].append(ack)
            if ack["status"] in ("settled", "declined"):
                self.outcomes[ack["return_id"]] = ack
        elif "/_hq/presence/" in msg.topic and msg.payload:
            if json.loads(msg.payload)["state"] == "online":
                self.births[msg.topic.rsplit("/", 1)[1]] += 1
        elif (
            msg.topic.endswith("/state")
            and msg.payload
            and json.loads(msg.payload)["state"] == "online"
        ):
            self.births[msg.topic] += 1

    def latest(self, topic: str) -> dict[str, Any] | None:
        msg = self.retained.get(topic)
        try:
            data = json.loads(msg.payload) if msg is not None and msg.payload else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def wait_for(self, predicate: Callable[[], T], within: float = 30.0) -> T:
        """Re-check `predicate` after every message until it is truthy."""
        async with asyncio.timeout(within):
            while True:
                result = predicate()
                if result:
                    return result
                self._changed.clear()
                await self._changed.wait()


class Gateway:
    """`edge-gateway run` as a child process on a free LAN port, talking to a test broker."""

    def __init__(
        self, workdir: Path, broker_port: int, gateway_id: str = "gw-01", **env: str
    ) -> None:
        self.gateway_id = gateway_id
        self.data = workdir / gateway_id
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.env = env_for(
            self.data,
            self.port,
            EDGE_STORE_ID="0042",
            EDGE_GATEWAY_ID=gateway_id,
            EDGE_HQ__ENABLED="true",
            EDGE_HQ__BROKER__PORT=str(broker_port),
            EDGE_HQ__BROKER__BACKOFF_INITIAL_S="0.05",
            EDGE_HQ__BROKER__BACKOFF_MAX_S="0.3",
            EDGE_HQ__BROKER__KEEPALIVE_S="5",
            EDGE_HQ__ACK_TIMEOUT_S="1",
            EDGE_HQ__HEALTH_INTERVAL_S="0.3",
            EDGE_HQ__SETTLE_FOLLOWUP_S="1",
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.data / "gateway.log"
        self.base = f"{PREFIX}/0042/{gateway_id}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.data / "ledger.sqlite3"

    async def start(self) -> None:
        self.proc = await asyncio.to_thread(launch, self.env, self.data, self.log)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(30)

    def add_client(self) -> tuple[str, str]:
        conn = open_sync(self.db)
        apply_migrations(conn)
        conn.execute("BEGIN IMMEDIATE")
        creds = people.add_client(conn, f"register-{uuid.uuid4().hex[:6]}", "register", utcnow())
        conn.execute("COMMIT")
        conn.close()
        return creds


class HqService:
    """`edge-gateway hq` as a child process."""

    def __init__(self, workdir: Path, broker_port: int, instance: str = "hq-1", *args: str):
        self.instance = instance
        self.db = workdir / "hq.sqlite3"
        self.log = workdir / f"{instance}.log"
        self.cmd = [
            sys.executable, "-m", "edge", "hq", "--db", str(self.db),
            "--broker-port", str(broker_port), "--instance", instance, "--http", "off", *args,
        ]  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        self.env.update(
            EDGE_DATA_DIR=str(workdir),
            EDGE_HQ__BROKER__BACKOFF_INITIAL_S="0.05",
            EDGE_HQ__BROKER__BACKOFF_MAX_S="0.3",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, observer: Observer) -> None:
        """Start and wait until its presence (birth) shows on the broker."""
        births = observer.births[self.instance]
        self.proc = spawn(self.cmd, self.env, self.log)
        await observer.wait_for(lambda: observer.births[self.instance] > births)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(30)


class Register:
    """A register on the LAN API: token, sales, refunds."""

    def __init__(self, http: aiohttp.ClientSession, url: str, creds: tuple[str, str]) -> None:
        self.http = http
        self.url = url
        self.creds = creds
        self.token = ""

    async def login(self) -> Register:
        async with self.http.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": aiohttp.encode_basic_auth(*self.creds)},
        ) as resp:
            assert resp.status == 200, await resp.text()
            self.token = (await resp.json())["access_token"]
        return self

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        async with self.http.request(
            method, f"{self.url}{path}", json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json(content_type=None)


def cash_sale(sale_id: str, quantity: int, unit_price: str = "1.00") -> dict[str, Any]:
    """A sale paid in cash: its refunds need no offline card limit."""
    total = str(quantity * Decimal(unit_price))
    return {
        "sale_id": sale_id,
        "occurred_at": utcnow().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "currency": "USD",
        "lines": [{"line_id": "1", "sku": "SKU-1", "quantity": quantity, "unit_price": unit_price}],
        "tenders": [{"tender_id": "t1", "type": "cash", "amount": total}],
    }


def card_sale(sale_id: str, unit_price: str, token: str = "tok_test") -> dict[str, Any]:
    sale = cash_sale(sale_id, 1, unit_price)
    sale["tenders"] = [
        {"tender_id": "t1", "type": "card", "amount": unit_price, "payment_token": token}
    ]
    return sale
