"""`protocol = "auto"` on every broker kind: MQTT 5 where the broker speaks it, a clean
fall back to 3.1.1 where it does not, whether the broker says so in a CONNACK (NATS) or
only drops the connection (RabbitMQ 3.x); and a broker that was merely unwell for a moment
is not taken for an old one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge.mqtt.client import Capabilities, Message, MqttClient
from edge.mqtt.settings import BrokerSettings
from tests.brokers import Broker
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import fast_broker

EXPECTED = {  # protocol, shared subscriptions offered
    "mosquitto": ("5", True),
    "rabbitmq": ("3.1.1", False),
    "nats": ("3.1.1", False),
}


@pytest.fixture(params=list(EXPECTED))
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    if request.param == "mosquitto":
        mosquitto = Mosquitto(tmp_path / "broker")
        mosquitto.start()
        yield mosquitto
        mosquitto.stop()
        return
    shared: Broker = request.getfixturevalue(request.param)
    if not shared.running:
        shared.start()
    yield shared


@contextlib.asynccontextmanager
async def running(client: MqttClient) -> AsyncIterator[MqttClient]:
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def client_for(settings: BrokerSettings, inbox: asyncio.Queue[Message], topic: str) -> MqttClient:
    name = f"fallback-{uuid.uuid4().hex[:8]}"
    return MqttClient(
        settings, name, name=name, on_message=inbox.put_nowait, subscriptions=[(topic, 1)]
    )


async def test_auto_connects_with_what_each_broker_speaks(
    broker: Broker, request: pytest.FixtureRequest
) -> None:
    protocol, shared = EXPECTED[request.node.callspec.params["broker"]]
    topic = f"t/{uuid.uuid4().hex[:8]}/echo"
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    async with running(client_for(fast_broker(broker.port), inbox, topic)) as client:
        async with asyncio.timeout(15):
            await client.wait_connected()
            client.publish(topic, b"ping", qos=1)
            echo = await inbox.get()
        assert echo.payload == b"ping"
        assert (client.protocol, client.capabilities.protocol) == (protocol, protocol)
        assert client.capabilities.shared_subscriptions is shared


class PickyProxy:
    """In front of mosquitto: reads each CONNECT's protocol level, then drops the
    connection without an answer (as RabbitMQ 3.x does with MQTT 5) or pipes it through."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.levels: list[int] = []
        self.drop_levels: set[int] = set()
        self.drop_next = 0  # drop this many more connections whatever their level
        self.open: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> PickyProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        self.cut()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        """Drop every piped connection, as a broker restart would."""
        for writer in self.open:
            writer.close()
        self.open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(2)
        length, shift, byte = head[1] & 0x7F, 7, head[1]
        while byte & 0x80:
            byte = (await reader.readexactly(1))[0]
            head += bytes([byte])
            length += (byte & 0x7F) << shift
            shift += 7
        body = await reader.readexactly(length)
        level = body[6]  # after the 2-byte length and "MQTT"
        self.levels.append(level)
        if self.drop_next > 0 or level in self.drop_levels:
            self.drop_next = max(0, self.drop_next - 1)
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        up_writer.write(head + body)
        self.open += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


async def test_a_broker_that_drops_mqtt_5_gets_3_1_1_from_then_on(mosquitto: Mosquitto) -> None:
    async with PickyProxy(mosquitto.port) as proxy:
        proxy.drop_levels = {5}
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        async with running(client_for(fast_broker(proxy.port), inbox, "t/echo")) as client:
            async with asyncio.timeout(10):
                await client.wait_connected()
            assert client.protocol == "3.1.1"
            assert not client.capabilities.shared_subscriptions
            generation = client.generation
            proxy.cut()
            async with asyncio.timeout(10):
                await client.wait_disconnected()
                await client.wait_connected()
            assert client.generation == generation + 1
            client.publish("t/echo", b"ping", qos=1)
            async with asyncio.timeout(10):
                assert (await inbox.get()).payload == b"ping"
    # once 3.1.1 was accepted right after MQTT 5 was dropped, MQTT 5 is not tried again
    assert proxy.levels == [5, 4, 4]


async def test_a_broker_unwell_for_a_moment_is_not_taken_for_an_old_one(
    mosquitto: Mosquitto,
) -> None:
    async with PickyProxy(mosquitto.port) as proxy:
        proxy.drop_next = 2  # the MQTT 5 CONNECT and the 3.1.1 one right after it
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        async with running(client_for(fast_broker(proxy.port), inbox, "t/echo")) as client:
            async with asyncio.timeout(10):
                await client.wait_connected()
            assert client.protocol == "5"
            assert client.capabilities.shared_subscriptions
    assert proxy.levels == [5, 4, 5]


class RefusingShares:
    """A session on a broker that announced shared subscriptions yet refuses them (0x9E)."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int]]] = []

    async def subscribe(self, topics: list[tuple[str, int]]) -> list[int]:
        self.calls.append(topics)
        return [0x9E if t.startswith("$share/") else q for t, q in topics]


async def test_refused_shared_subscriptions_are_chosen_again_without_sharing() -> None:
    def wanted(broker: Capabilities) -> list[tuple[str, int]]:
        work = "$share/hq/r/+/events" if broker.shared_subscriptions else "r/+/events"
        return [(work, 1), ("r/+/state", 1)]

    client = MqttClient(
        BrokerSettings(), "refused", name="refused", on_message=print, subscriptions=wanted
    )
    client.capabilities = Capabilities("5", shared_subscriptions=True)
    session = RefusingShares()
    await client._subscribe(session)  # type: ignore[arg-type]
    assert session.calls == [[("$share/hq/r/+/events", 1), ("r/+/state", 1)], [("r/+/events", 1)]]
    assert client.capabilities == Capabilities("5", shared_subscriptions=False)
