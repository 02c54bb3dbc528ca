"""The MQTT client on its own: TLS with client certificates, passwords, 3.1.1 fallback,
backoff with full jitter."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.backoff import Backoff
from edge.mqtt.client import CLOSE_GRACE_S, Message, MqttClient, Outgoing
from edge.mqtt.settings import BrokerSettings, TlsSettings
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import fast_broker


def test_backoff_grows_with_full_jitter_and_resets() -> None:
    backoff = Backoff(1.0, 60.0, random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        assert 0 <= backoff.next_delay() <= ceilings[-1]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    draws = [Backoff(1.0, 60.0, random.Random(s)).next_delay() for s in range(200)]
    assert min(draws) < 0.1
    assert max(draws) > 0.9  # spread over the whole window, not clustered at the cap
    backoff.reset()
    assert backoff.ceiling() == 1


@contextlib.asynccontextmanager
async def running(client: MqttClient) -> AsyncIterator[MqttClient]:
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def roundtrip(client: MqttClient, inbox: asyncio.Queue[Message]) -> Message:
    async with asyncio.timeout(10):
        await client.wait_connected()
        client.publish("t/echo", b"ping", qos=1)
        return await inbox.get()


def client_for(settings: BrokerSettings, name: str, inbox: asyncio.Queue[Message]) -> MqttClient:
    return MqttClient(
        settings, name, name=name, on_message=inbox.put_nowait, subscriptions=[("t/#", 1)]
    )


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path / "pki"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
                "-extfile", "san.ext", cwd=d)  # fmt: skip
    return d


async def test_mutual_tls(tmp_path: Path, certs: Path) -> None:
    broker = Mosquitto(
        tmp_path / "tls-broker",
        extra_conf=(
            f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'server.crt'}\n"
            f"keyfile {certs / 'server.key'}\nrequire_certificate true\ntls_version tlsv1.2\n"
        ),
    )
    broker.start()
    try:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        tls = TlsSettings(
            enabled=True,
            ca_file=certs / "ca.crt",
            cert_file=certs / "client.crt",
            key_file=certs / "client.key",
        )
        good = client_for(fast_broker(broker.port, tls=tls), "tls-ok", inbox)
        async with running(good):
            assert (await roundtrip(good, inbox)).payload == b"ping"
        only_ca = TlsSettings(enabled=True, ca_file=certs / "ca.crt")
        no_cert = client_for(fast_broker(broker.port, tls=only_ca), "tls-no-cert", inbox)
        # without a client certificate the broker refuses the handshake
        with pytest.raises(Exception, match=r"cannot reach|closed before CONNACK"):
            await no_cert._open()
        assert no_cert.connected is False
    finally:
        broker.stop()


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "store", "s3cret"], check=True)
    return path


async def test_username_and_password(tmp_path: Path, pwfile: Path) -> None:
    broker = Mosquitto(
        tmp_path / "auth-broker", extra_conf=f"allow_anonymous false\npassword_file {pwfile}\n"
    )
    broker.start()
    try:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        ok = client_for(fast_broker(broker.port, username="store", password="s3cret"), "ok", inbox)
        async with running(ok):
            assert (await roundtrip(ok, inbox)).payload == b"ping"
        wrong = client_for(fast_broker(broker.port, username="store", password="no"), "no", inbox)
        with pytest.raises(Exception, match="refused the connection"):
            await wrong._open()
    finally:
        broker.stop()


async def _refuse_mqtt5(
    upstream: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer an MQTT 5 CONNECT with 'unsupported protocol version'; pipe 3.1.1 through."""
    head = await reader.readexactly(2)
    length, shift, byte = head[1] & 0x7F, 7, head[1]
    while byte & 0x80:
        byte = (await reader.readexactly(1))[0]
        head += bytes([byte])
        length += (byte & 0x7F) << shift
        shift += 7
    body = await reader.readexactly(length)
    if body[6] == 5:  # protocol level after the 2-byte length and "MQTT"
        writer.write(bytes([0x20, 3, 0, 0x84, 0]))
        await writer.drain()
        writer.close()
        return
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
    up_writer.write(head + body)

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_falls_back_to_mqtt_311_when_5_is_refused(broker: Mosquitto) -> None:
    server = await asyncio.start_server(
        lambda r, w: _refuse_mqtt5(broker.port, r, w), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        client = client_for(fast_broker(port), "fallback", inbox)
        async with running(client):
            assert (await roundtrip(client, inbox)).payload == b"ping"
            assert client.protocol == "3.1.1"
    finally:
        server.close()


async def test_close_is_bounded_when_the_broker_stops_answering(tmp_path: Path) -> None:
    """A broker that hangs (SIGSTOP) at shutdown: the goodbye is not confirmed, and close
    still returns within its grace period instead of waiting for ever."""
    broker = Mosquitto(tmp_path)
    broker.start()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    client = client_for(fast_broker(broker.port), "closer", inbox)
    task = asyncio.create_task(client.run())
    try:
        await roundtrip(client, inbox)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        goodbye = Outgoing("t/bye", b"offline", qos=1, retain=True)
        async with asyncio.timeout(CLOSE_GRACE_S * 2 + 2):
            await client.close([goodbye])
        assert client.state == "closed"
        assert not client.connected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if broker.proc is not None:
            broker.proc.send_signal(signal.SIGCONT)
        broker.stop()
