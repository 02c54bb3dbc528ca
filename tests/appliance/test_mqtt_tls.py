"""The HQ link can require TLS 1.3: a real mosquitto with a TLS listener (certificates from a
CA made in the test), the link's own MQTT client and the real gateway daemon.

mosquitto's `tls_version` is a floor, not a ceiling: a broker that cannot do TLS 1.3 (one
built on an old OpenSSL) is made here with an OpenSSL configuration capping the protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from edge.mqtt.client import Message, MqttClient
from edge.mqtt.settings import BrokerSettings
from edge.settings import load_settings
from tests.appliance.test_lan_tls import StoreCa
from tests.core.daemon import env_for, free_port, start
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import FAST_BROKER

FAST = {f"EDGE_HQ__BROKER__{name.upper()}": str(value) for name, value in FAST_BROKER.items()}


TLS_12_ONLY = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_module
[ssl_module]
system_default = tls12_only
[tls12_only]
MaxProtocol = TLSv1.2
"""


@contextmanager
def tls_broker(
    folder: Path, ca: StoreCa, monkeypatch: pytest.MonkeyPatch, *, tls13: bool
) -> Iterator[int]:
    """mosquitto with TLS on a free loopback port; without TLS 1.3 unless `tls13`."""
    cert, key = ca.issue("broker")
    broker = Mosquitto(folder, extra_conf=f"certfile {cert}\nkeyfile {key}\n")
    with monkeypatch.context() as patch:  # the broker's environment only, while it starts
        if not tls13:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "openssl.cnf").write_text(TLS_12_ONLY)
            patch.setenv("OPENSSL_CONF", str(folder / "openssl.cnf"))
        broker.start()
    try:
        yield broker.port
    finally:
        broker.stop()


def link_environment(port: int, ca: StoreCa, min_version: str | None) -> dict[str, str]:
    env = {
        "EDGE_HQ__BROKER__PORT": str(port),
        "EDGE_HQ__BROKER__TLS__ENABLED": "true",
        "EDGE_HQ__BROKER__TLS__CA_FILE": str(ca.path),
        **FAST,
    }
    if min_version is not None:
        env["EDGE_HQ__BROKER__TLS__MIN_VERSION"] = min_version
    return env


def broker_settings(port: int, ca: StoreCa, min_version: str | None) -> BrokerSettings:
    """The link's broker settings, read the way the daemon reads them."""
    return load_settings(None, environ=link_environment(port, ca, min_version)).hq.broker


@asynccontextmanager
async def running(client: MqttClient) -> AsyncIterator[MqttClient]:
    task = asyncio.create_task(client.run(), name="test-mqtt")
    try:
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def test_a_link_that_requires_tls_1_3_refuses_a_tls_1_2_broker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = StoreCa(tmp_path / "pki")
    with tls_broker(tmp_path / "broker", ca, monkeypatch, tls13=False) as port:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        default = MqttClient(
            broker_settings(port, ca, None),
            "tls12-ok",
            name="hq-link",
            on_message=inbox.put_nowait,
            subscriptions=[("t/#", 1)],
        )
        async with running(default), asyncio.timeout(10):
            await default.wait_connected()  # the default still takes TLS 1.2
            default.publish("t/echo", b"ping")
            assert (await inbox.get()).payload == b"ping"

        assert broker_settings(port, ca, "1.3").tls.min_version == "1.3"
        reasons: asyncio.Queue[str] = asyncio.Queue()
        strict = MqttClient(
            broker_settings(port, ca, "1.3"),
            "tls13-refused",
            name="hq-link",
            on_message=inbox.put_nowait,
            on_disconnect=reasons.put_nowait,
        )
        with caplog.at_level(logging.WARNING, logger="edge.mqtt.client"):
            async with running(strict), asyncio.timeout(10):
                reason = await reasons.get()
                assert not strict.connected
    assert "requires TLS 1.3" in reason, reason
    logged = [r.getMessage() for r in caplog.records if "broker offline" in r.getMessage()]
    assert logged, "the link says why it is offline"
    assert "requires TLS 1.3" in logged[0]


async def test_the_gateway_links_to_hq_over_tls_1_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = StoreCa(tmp_path / "pki")
    with tls_broker(tmp_path / "broker", ca, monkeypatch, tls13=True) as port:
        states: asyncio.Queue[Message] = asyncio.Queue()
        topic = "retail/v1/0042/gw-03/state"
        observer = MqttClient(
            broker_settings(port, ca, "1.3"),
            "observer",
            name="observer",
            on_message=states.put_nowait,
            subscriptions=[(topic, 1)],
        )
        async with running(observer):
            async with asyncio.timeout(10):
                await observer.wait_connected()
            env = env_for(
                tmp_path / "data",
                free_port(),
                EDGE_STORE_ID="0042",
                EDGE_GATEWAY_ID="gw-03",
                EDGE_HQ__ENABLED="true",
                **link_environment(port, ca, "1.3"),
            )
            log = tmp_path / "daemon.log"
            proc = start(env, log)
            try:
                async with asyncio.timeout(30):
                    while True:
                        msg = await states.get()
                        if msg.payload and json.loads(msg.payload).get("state") == "online":
                            break
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(proc.wait, 30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    text = log.read_text()
    assert "connected to 127.0.0.1" in text
    assert "broker offline" not in text
