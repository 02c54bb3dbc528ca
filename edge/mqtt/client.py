"""The broker connection as a resource: connect, keep connected, back off, close gracefully.

`run()` is the reconnect supervisor (its owner runs it as a task); the client itself is an
async context manager, so the composition root closes it after the LAN listener stopped,
with last words (e.g. the retained `offline` state) confirmed by the broker before the
DISCONNECT.

On `protocol = "auto"` MQTT 5 is tried first. A broker that refuses it with a CONNACK code
(mosquitto with a 3.1.1-only listener, NATS) gets MQTT 3.1.1 from then on. A broker that
drops an MQTT 5 CONNECT without an answer (RabbitMQ 3.x closes the socket) or never
answers it is asked again at once with 3.1.1; that answer decides: 3.1.1 sticks when it
is accepted, and MQTT 5 is tried again next time when it is not (the broker was simply
unwell, not old).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.backoff import Backoff
from edge.errors import MqttLinkError
from edge.mqtt.session import ClosedBeforeConnack, Message, MessageHandler, Session
from edge.mqtt.settings import BrokerSettings, TlsSettings

log = logging.getLogger(__name__)

UNSUPPORTED_PROTOCOL = (1, 132)  # CONNACK codes of 3.1.1 and 5 for "unsupported version"
SHARED_NOT_SUPPORTED = 0x9E  # SUBACK reason code of MQTT 5
CLOSE_GRACE_S = 2.0

__all__ = [
    "Capabilities",
    "Message",
    "MqttClient",
    "Outgoing",
    "Subscriptions",
    "Will",
    "tls_context",
]


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What the broker offers on the current connection: owners whose subscriptions depend
    on it (shared subscriptions) choose them from this at every connect."""

    protocol: str
    shared_subscriptions: bool


Subscriptions = Sequence[tuple[str, int]] | Callable[[Capabilities], Sequence[tuple[str, int]]]


class _Unsupported(MqttLinkError):
    """The broker does not speak the protocol version offered: `certain` when it said so
    in a CONNACK, not when it only dropped or ignored the CONNECT."""

    def __init__(self, message: str, *, certain: bool) -> None:
        super().__init__(message)
        self.certain = certain


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """Verify the broker (system CAs or `ca_file`), TLS 1.2 or 1.3 at least (`min_version`),
    optional client cert."""
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None
    )
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


def _tls_hint(tls: TlsSettings, exc: ssl.SSLError) -> str:
    """What to look at when the handshake failed on the protocol version."""
    if tls.min_version == "1.3" and "VERSION" in str(exc).upper():
        return " (the link requires TLS 1.3, tls.min_version = '1.3'; the broker offers less)"
    return ""


class MqttClient:
    def __init__(
        self,
        broker: BrokerSettings,
        client_id: str,
        *,
        name: str,
        on_message: MessageHandler,
        subscriptions: Subscriptions = (),
        prepare: Callable[[], Awaitable[Will | None]] | None = None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._broker = broker
        self._client_id = client_id
        self._name = name
        self._on_message = on_message
        self._subscriptions = subscriptions
        self._prepare = prepare
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._backoff = Backoff(broker.backoff_initial_s, broker.backoff_max_s, rng)
        self._protocol = "5" if broker.protocol in ("auto", "5") else "3.1.1"
        self._session: Session | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._closing = False
        self.capabilities = Capabilities(self._protocol, shared_subscriptions=False)
        self.generation = 0
        self.state = "connecting"
        self.last_error = ""
        self.connected_since: float | None = None

    # ---- what owners use ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def protocol(self) -> str:
        return self._protocol

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> int:
        """Hand one message to the connection; raises MqttLinkError when not connected."""
        session = self._session
        if session is None:
            raise MqttLinkError("not connected to the broker")
        props = None
        if self._protocol == "5" and (response_topic or correlation):
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation:
                props.CorrelationData = correlation
        return session.publish(topic, payload, qos, retain, props)

    async def __aenter__(self) -> MqttClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, goodbye: Sequence[Outgoing] = ()) -> None:
        """Say `goodbye` (confirmed), DISCONNECT so the Will is not sent, drop the socket."""
        self._closing = True
        session, self._session = self._session, None
        self._connected.clear()
        self._disconnected.set()
        if session is None:
            return
        try:
            for msg in goodbye:
                mid = session.publish(msg.topic, msg.payload, msg.qos, msg.retain, None)
                if msg.qos:
                    await session.confirm(mid, CLOSE_GRACE_S)
            session.disconnect()
            async with asyncio.timeout(CLOSE_GRACE_S):
                await asyncio.shield(session.closed)
        except (MqttLinkError, TimeoutError) as exc:
            log.warning("%s: closing without a clean goodbye: %s", self._name, exc)
        finally:
            session.close()
            await session.wait_closed()
        self.state = "closed"

    async def abort(self) -> None:
        """Drop the connection without a DISCONNECT, as a crash would: the broker sends the
        Will. For fault drills and simulations."""
        self._closing = True
        session, self._session = self._session, None
        self._connected.clear()
        self._disconnected.set()
        if session is not None:
            session.close()
            await session.wait_closed()
        self.state = "closed"

    async def run(self) -> None:
        """Connect, serve until the connection drops, back off with jitter, repeat."""
        while not self._closing:
            try:
                session = await self._open()
            except MqttLinkError as exc:
                self._offline(str(exc))
                await asyncio.sleep(self._backoff.next_delay())
                continue
            started = time.monotonic()
            reason = await asyncio.shield(session.closed)
            if self._session is session:
                self._session = None
                self._connected.clear()
                session.close()
                await session.wait_closed()
                self._offline(f"connection lost ({reason})")
            if time.monotonic() - started >= self._broker.stable_after_s:
                self._backoff.reset()
            await asyncio.sleep(self._backoff.next_delay())

    # ---- connecting --------------------------------------------------------------

    def _offline(self, reason: str) -> None:
        self._disconnected.set()
        if self.state != f"offline: {reason}":
            log.warning("%s: broker offline: %s", self._name, reason)
        self.state = f"offline: {reason}"
        self.last_error = reason
        self.connected_since = None
        if self._on_disconnect is not None:
            self._on_disconnect(reason)

    async def _open(self) -> Session:
        will = await self._prepare() if self._prepare is not None else None
        try:
            session = await self._connect(self._protocol, will)
        except _Unsupported as refused:
            if self._broker.protocol != "auto" or self._protocol == "3.1.1":
                raise
            if refused.certain:
                self._protocol = "3.1.1"
            try:
                session = await self._connect("3.1.1", will)
            except MqttLinkError:
                if not refused.certain:
                    log.info("%s: neither MQTT 5 nor 3.1.1 connected: %s", self._name, refused)
                raise
            log.warning("%s: the broker refused MQTT 5 (%s); using MQTT 3.1.1", self._name, refused)
            self._protocol = "3.1.1"
        self._session = session
        self.generation += 1
        self.state = "connected"
        self.connected_since = time.time()
        self._disconnected.clear()
        self._connected.set()
        log.info(
            "%s: connected to %s:%s (MQTT %s)",
            self._name,
            self._broker.host,
            self._broker.port,
            self._protocol,
        )
        if self._on_connect is not None:
            try:
                await self._on_connect()
            except MqttLinkError as exc:
                log.warning("%s: connect hook failed: %s", self._name, exc)
        return session

    def _new_client(self, protocol: str, will: Will | None) -> Any:
        v5 = protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        # No limit in paho: the relay bounds its own window, and with a limit set paho walks
        # every unacknowledged message on each PUBACK (quadratic in the window).
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.connect_timeout = self._broker.connect_timeout_s
        if self._broker.username is not None:
            password = self._broker.password
            client.username_pw_set(
                self._broker.username, password.get_secret_value() if password else None
            )
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        return client

    async def _connect(self, protocol: str, will: Will | None) -> Session:
        loop = asyncio.get_running_loop()
        client = self._new_client(protocol, will)
        session = Session(loop, client, self._on_message, self._name)
        broker = self._broker

        def blocking_connect() -> None:
            if broker.tls.enabled:
                client.tls_set_context(tls_context(broker.tls))
            kwargs: dict[str, Any] = {"clean_start": True} if protocol == "5" else {}
            client.connect(broker.host, broker.port, broker.keepalive_s, **kwargs)

        pending = loop.run_in_executor(None, blocking_connect)
        try:
            await asyncio.shield(pending)
        except asyncio.CancelledError:
            pending.add_done_callback(lambda _f: session.close())
            raise
        except ssl.SSLError as exc:
            session.close()
            hint = _tls_hint(broker.tls, exc)
            raise MqttLinkError(f"cannot reach {broker.host}:{broker.port}: {exc}{hint}") from None
        except (OSError, ValueError) as exc:
            session.close()
            raise MqttLinkError(f"cannot reach {broker.host}:{broker.port}: {exc}") from None
        try:
            try:
                async with asyncio.timeout(broker.connect_timeout_s):
                    connack = await asyncio.shield(session.connack)
            except TimeoutError:
                if protocol == "5":
                    raise _Unsupported("no CONNACK to MQTT 5 in time", certain=False) from None
                raise MqttLinkError("no CONNACK from the broker in time") from None
            except ClosedBeforeConnack as exc:
                if protocol == "5":
                    raise _Unsupported(str(exc), certain=False) from None
                raise
            if connack.code in UNSUPPORTED_PROTOCOL:
                raise _Unsupported(
                    f"broker refused MQTT {protocol}: {connack.reason}", certain=True
                )
            if connack.code >= 128:
                raise MqttLinkError(f"broker refused the connection: {connack.reason}")
            self.capabilities = Capabilities(protocol, connack.shared_subscriptions)
            async with asyncio.timeout(broker.connect_timeout_s):
                await self._subscribe(session)
        except TimeoutError:
            session.close()
            raise MqttLinkError("no SUBACK from the broker in time") from None
        except BaseException:
            session.close()
            raise
        return session

    async def _subscribe(self, session: Session) -> None:
        """Subscribe to what the owner wants given the broker's capabilities. A broker that
        offered shared subscriptions but refuses one (reason 0x9E) is taken at its word:
        the owner chooses again without them, and the difference is subscribed."""
        wanted = self._subscriptions
        topics = list(wanted(self.capabilities) if callable(wanted) else wanted)
        if not topics:
            return
        granted = await session.subscribe(topics)
        codes = dict(zip((t for t, _q in topics), granted, strict=False))
        instead: list[tuple[str, int]] = []
        if callable(wanted) and SHARED_NOT_SUPPORTED in codes.values():
            self.capabilities = replace(self.capabilities, shared_subscriptions=False)
            instead = [s for s in wanted(self.capabilities) if s[0] not in codes]
            if instead:
                log.warning("%s: the broker refused shared subscriptions", self._name)
                again = await session.subscribe(instead)
                codes.update(zip((t for t, _q in instead), again, strict=False))
        for topic, code in codes.items():
            if code >= 128 and not (code == SHARED_NOT_SUPPORTED and instead):
                log.error("%s: broker refused subscription %s (%s)", self._name, topic, code)
