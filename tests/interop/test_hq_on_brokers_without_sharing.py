"""The gateway and the reference HQ service on the 3.1.1-only brokers that cluster (RabbitMQ,
NATS): no shared subscriptions, so HQ subscribes to the plain filters, and everything the
contract promises still holds: a refund is settled, the birth is retained and the Will is
sent on a crash, a look-up is answered, a command gets its result.

Both programs run as their own processes (`edge-gateway run`, `edge-gateway hq run`); the
test watches the broker with its own client and waits on what it sees there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import Broker
from tests.contract.peers import ROOT, Gateway, contract_sale
from tests.hqlink.harness import PREFIX, Observer

WAIT_S = 30.0


class HqProcess:
    """`edge-gateway hq run` on its own SQLite store, without its HTTP page."""

    def __init__(self, workdir: Path, broker_port: int, instance: str) -> None:
        self.workdir = workdir
        self.instance = instance
        self.db = workdir / "hq.sqlite3"
        self.log = workdir / f"{instance}.log"
        self.options = [
            "--db", str(self.db), "--broker-port", str(broker_port), "--instance", instance,
            "--http", "off", "--stats-interval", "1",
        ]  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        self.env.update(
            EDGE_DATA_DIR=str(workdir),
            EDGE_HQ__BROKER__BACKOFF_INITIAL_S="0.05",
            EDGE_HQ__BROKER__BACKOFF_MAX_S="0.3",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "edge", "hq", *self.options, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "hq", *self.options, "run"],
                env=self.env,
                stdout=sink,
                stderr=sink,
                cwd=ROOT,
            )

    def tail(self) -> str:
        """The end of this instance's log, for a failure message."""
        code = None if self.proc is None else self.proc.poll()
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return f"--- {self.instance} (exit code {code}) ---\n{text[-3000:]}"

    def stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.terminate()
        return proc.wait(WAIT_S)


async def online(obs: Observer, *instances: HqProcess) -> None:
    """Until every instance announced itself; on a timeout, their logs say why."""
    try:
        await obs.wait_for(lambda: all(obs.births[hq.instance] for hq in instances), WAIT_S)
    except TimeoutError:
        logs = "\n".join(hq.tail() for hq in instances)
        raise AssertionError(f"HQ instance(s) did not come online:\n{logs}") from None


@pytest.fixture(params=["rabbitmq", "nats"])
def broker(request: pytest.FixtureRequest) -> Broker:
    shared: Broker = request.getfixturevalue(request.param)
    if not shared.running:
        shared.start()
    return shared


@pytest.fixture
def hq(tmp_path: Path, broker: Broker) -> Iterator[HqProcess]:
    service = HqProcess(tmp_path / "hq", broker.port, f"hq-{uuid.uuid4().hex[:8]}")
    yield service
    code = service.stop()
    assert code == 0, service.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker) -> Iterator[Gateway]:
    # a store of its own: the brokers live for the whole session
    gw = Gateway(tmp_path / "gateway", broker.port, store_id=f"s{uuid.uuid4().hex[:7]}")
    gw.workdir.mkdir()
    yield gw
    code = gw.stop()
    assert code == 0, gw.log()[-4000:]


def results(obs: Observer, topic: str, request_id: str) -> dict[str, Any] | None:
    for msg in obs.messages:
        if msg.topic == topic and json.loads(msg.payload).get("request_id") == request_id:
            return dict(json.loads(msg.payload))
    return None


async def test_hq_service_settles_answers_and_sees_birth_and_will(
    broker: Broker, hq: HqProcess, gateway: Gateway, tmp_path: Path
) -> None:
    order_id = f"WEB-{uuid.uuid4().hex[:6]}"
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps([contract_sale(order_id, channel="online")]))
    hq.cli("orders", "load", str(orders))
    base = gateway.topic_base
    state = f"{base}/state"
    watched = [f"{base}/acks", f"{base}/cmd-result", state, f"{PREFIX}/_hq/presence/{hq.instance}"]
    async with Observer(broker.port, watched) as obs:
        hq.start()
        await online(obs, hq)
        gateway.start()
        register = gateway.add_client("lane-3-app")
        async with register:
            await register.wait_until("/readyz", lambda r: r["hq_link"]["online"])

            # the birth is retained: a client that subscribes later still gets it
            async with Observer(broker.port, [state]) as late:
                birth = await late.wait_for(lambda: late.latest(state), within=WAIT_S)
                assert late.retained[state].retain
            assert (birth["state"], birth["protocol"]) == ("online", "3.1.1")

            # a look-up HQ answers from its online orders
            status, found = await register.call("POST", "/v1/returns/lookup", {"code": order_id})
            assert status == 200, found
            assert (found["sale"]["sale_id"], found["sale"]["channel"]) == (order_id, "online")

            # a refund HQ records, settles and acks; the LAN API shows it settled
            status, _ = await register.call("POST", "/v1/sales", contract_sale("S-1"))
            assert status == 201
            body = {"sale_id": "S-1", "lines": [{"line_id": "1", "quantity": 1}]}
            status, refund = await register.refund(body, "k-1")
            assert status == 201, refund
            assert refund["offline"] is False
            return_id = refund["return_id"]
            outcome = await obs.wait_for(lambda: obs.outcomes.get(return_id), within=WAIT_S)
            assert outcome["status"] == "settled"
            settled = await register.wait_until(
                f"/v1/refunds/{return_id}", lambda r: r["status"] == "settled"
            )
            assert settled["processor_ref"] == outcome["processor_ref"]

            # a command from HQ's side gets its result on cmd-result
            obs.client.publish(f"{base}/cmd/ping", json.dumps({"request_id": "c-1"}).encode())
            result = await obs.wait_for(
                lambda: results(obs, f"{base}/cmd-result", "c-1"), within=WAIT_S
            )
            assert (result["command"], result["ok"], result["result"]["pong"]) == (
                "ping",
                True,
                True,
            )

        # a crash: the broker sends the Will, retained, with this session's bd_seq
        assert gateway.proc is not None
        gateway.proc.kill()
        gateway.proc.wait(WAIT_S)
        gateway.proc = None
        will = await obs.wait_for(
            lambda: (s := obs.latest(state)) is not None and s["state"] == "offline" and s,
            within=WAIT_S,
        )
        assert will["bd_seq"] == birth["bd_seq"]
    async with Observer(broker.port, [state]) as late:
        retained = await late.wait_for(lambda: late.latest(state), within=WAIT_S)
    assert retained == {"state": "offline", "bd_seq": birth["bd_seq"]}


def counters(obs: Observer, instance: str) -> dict[str, int]:
    presence = obs.latest(f"{PREFIX}/_hq/presence/{instance}") or {}
    return dict(presence.get("counters", {}))


def each_took_all(obs: Observer, instances: list[HqProcess]) -> bool:
    """Each instance received every acked event, and they recorded each one once."""
    events = {e for e, acks in obs.acks.items() if acks[0].get("status") == "accepted"}
    seen = [counters(obs, hq.instance) for hq in instances]
    received = [c.get("events_new", 0) + c.get("events_duplicate", 0) for c in seen]
    recorded = sum(c.get("events_new", 0) for c in seen)
    return bool(events) and min(received) >= len(events) and recorded == len(events)


async def test_two_hq_instances_each_take_everything_and_settle_once(
    broker: Broker, gateway: Gateway, tmp_path: Path
) -> None:
    first = HqProcess(tmp_path / "hq", broker.port, f"hq-a-{uuid.uuid4().hex[:6]}")
    second = HqProcess(tmp_path / "hq", broker.port, f"hq-b-{uuid.uuid4().hex[:6]}")
    base = gateway.topic_base
    presence = [f"{PREFIX}/_hq/presence/{hq.instance}" for hq in (first, second)]
    try:
        async with Observer(broker.port, [f"{base}/acks", *presence]) as obs:
            first.start()
            second.start()
            await online(obs, first, second)
            gateway.start()
            register = gateway.add_client("lane-3-app")
            async with register:
                await register.wait_until("/readyz", lambda r: r["hq_link"]["online"])
                status, _ = await register.call("POST", "/v1/sales", contract_sale("S-1"))
                assert status == 201
                returns = []
                for n in (1, 2):  # the contract sale has 2 units
                    body = {"sale_id": "S-1", "lines": [{"line_id": "1", "quantity": 1}]}
                    status, refund = await register.refund(body, f"k-{n}")
                    assert status == 201, refund
                    returns.append(refund["return_id"])
                await obs.wait_for(lambda: all(r in obs.outcomes for r in returns), within=WAIT_S)
                await register.wait_until("/readyz", lambda r: r["outbox"]["pending"] == 0)
            # every instance received every event; together they recorded each one once
            await obs.wait_for(lambda: each_took_all(obs, [first, second]), within=WAIT_S)
            for return_id in returns:
                settled = {
                    a["processor_ref"]
                    for acks in obs.acks.values()
                    for a in acks
                    if a.get("return_id") == return_id and a["status"] == "settled"
                }
                assert len(settled) == 1, settled  # one processor call, whoever acked it
    finally:
        codes = [first.stop(), second.stop()]
    assert codes == [0, 0]
    report = json.loads(first.cli("status", "--json"))
    assert report["refunds"] == {"settled": 2}
