"""One MQTT connection: a paho client whose socket is served by the asyncio event loop.

paho does the protocol; the loop watches its socket (add_reader/add_writer), so paho's
callbacks run on the loop thread and only hand data on: they resolve a future or call a
handler that must not block. Only the blocking connect (DNS, TCP, TLS handshake) runs in
a worker thread, and the socket callbacks it triggers are moved onto the loop with
`call_soon_threadsafe`. Each connection gets a fresh paho client, so nothing from a dead
session is replayed behind the caller's back: callers re-send what still needs sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from edge.errors import MqttLinkError

log = logging.getLogger(__name__)

MISC_INTERVAL_S = 1.0
DRAIN_PACKETS_MAX = 10_000


@dataclass(frozen=True)
class Message:
    """An incoming message as the rest of the daemon sees it (no paho types)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    response_topic: str | None = None
    correlation: bytes | None = None


MessageHandler = Callable[[Message], None]


class ClosedBeforeConnack(MqttLinkError):
    """The connection ended before the broker answered CONNECT: some brokers (RabbitMQ 3.x)
    answer an MQTT version they do not speak this way instead of with a CONNACK code."""


@dataclass(frozen=True)
class Connack:
    """The broker's answer to CONNECT: the code and what the broker offers (MQTT 5 only;
    a 3.1.1 CONNACK offers nothing beyond the protocol)."""

    code: int
    reason: str
    shared_subscriptions: bool = False


class Session:
    """Owns one paho client, its socket registration and its keepalive task."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: Any,
        on_message: MessageHandler,
        name: str,
    ) -> None:
        self._aio_loop = loop
        self._loop_thread = threading.get_ident()
        self.client = client
        self._on_message = on_message
        self._name = name
        self.connack: asyncio.Future[Connack] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self._confirms: dict[int, asyncio.Future[None]] = {}
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        self._paho_sock: Any = None
        self._fd: int | None = None
        self._misc: asyncio.Task[None] | None = None
        self.handler_failures = 0
        self.bad_topics = 0
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_publish = self._published
        client.on_subscribe = self._subscribed

    # ---- called by the owner (loop thread) ---------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, props: Any) -> int:
        info = self.client.publish(topic, payload, qos, retain, props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttLinkError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return int(info.mid)

    async def confirm(self, mid: int, timeout_s: float) -> None:
        """Wait for the broker's PUBACK of `mid`; its entry goes whatever happens."""
        fut: asyncio.Future[None] = self._aio_loop.create_future()
        self._confirms[mid] = fut
        try:
            async with asyncio.timeout(timeout_s):
                await fut
        finally:
            self._confirms.pop(mid, None)

    async def subscribe(self, topics: list[tuple[str, int]]) -> list[int]:
        """Subscribe and wait for the SUBACK; returns the granted codes (>= 128 refused)."""
        rc, mid = self.client.subscribe(topics)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttLinkError(f"subscribe failed: {paho.error_string(rc)}")
        fut: asyncio.Future[list[int]] = self._aio_loop.create_future()
        self._subacks[mid] = fut
        try:
            return await fut
        finally:
            self._subacks.pop(mid, None)

    def disconnect(self) -> None:
        """Send DISCONNECT (the broker then drops the Will)."""
        self.client.disconnect()

    def close(self) -> None:
        """Drop the socket at once and fail whatever still waits on it. Idempotent."""
        if self._misc is not None:
            self._misc.cancel()
        self._drop_socket()
        self._detach()
        self._finish("closed by the gateway")

    def _drop_socket(self) -> None:
        """Shut the socket down and let paho read the end of the stream: paho then closes
        the socket itself (and calls back to unregister it), through its public API."""
        sock = self.client.socket()
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        for _ in range(DRAIN_PACKETS_MAX):  # bytes already received are read first
            if self.client.socket() is None:
                return
            if self.client.loop_read() == MQTTErrorCode.MQTT_ERR_NO_CONN:
                return

    async def wait_closed(self) -> None:
        if self._misc is not None:
            # asyncio.wait, not `await`: the keepalive task's own cancellation is expected and
            # must not be taken for (or swallow) a cancellation of the task that waits here.
            await asyncio.wait([self._misc])

    # ---- paho callbacks: resolve futures or hand on, never block ----------------

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._aio_loop.call_soon_threadsafe(fn, *args)

    def _socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._attach, sock)

    def _socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._detach)

    def _register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._want_write)

    def _unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._no_write)

    def _attach(self, sock: Any) -> None:
        if self.closed.done() or sock.fileno() < 0:
            return
        self._paho_sock = sock
        self._fd = sock.fileno()
        with contextlib.suppress(OSError):  # small acks must not wait for Nagle's algorithm
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._aio_loop.add_reader(self._fd, self._readable)
        self._misc = self._aio_loop.create_task(
            self._misc_loop(), name=f"{self._name}-mqtt-keepalive"
        )
        if self.client.want_write():
            self._want_write()

    def _watch(self, op: Callable[..., object], *args: Any) -> None:
        """One add/remove of the socket's watchers. The socket may already be closed under
        us (the broker dropped it during shutdown): uvloop then raises RuntimeError and the
        stdlib loop OSError or ValueError; either way the session is over, not the caller."""
        try:
            op(*args)
        except (OSError, RuntimeError, ValueError) as exc:
            self._fd = None
            self._finish(f"socket gone ({type(exc).__name__})")

    def _detach(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._watch(self._aio_loop.remove_reader, fd)
            self._watch(self._aio_loop.remove_writer, fd)

    def _want_write(self) -> None:
        if self._fd is not None:
            self._watch(self._aio_loop.add_writer, self._fd, self._writable)

    def _no_write(self) -> None:
        if self._fd is not None:
            self._watch(self._aio_loop.remove_writer, self._fd)

    def _readable(self) -> None:
        rc = self.client.loop_read()
        # TLS may hold decrypted bytes the socket no longer signals: read them now.
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and isinstance(self._paho_sock, ssl.SSLSocket)
            and self._fd is not None
            and self._paho_sock.pending()
        ):
            rc = self.client.loop_read()
        if self.client.socket() is None:
            self._finish("connection lost")

    def _writable(self) -> None:
        self.client.loop_write()
        if not self.client.want_write():
            self._no_write()
        if self.client.socket() is None:
            self._finish("connection lost")

    async def _misc_loop(self) -> None:
        while not self.closed.done():
            await asyncio.sleep(MISC_INTERVAL_S)
            self.client.loop_misc()
            if self.client.socket() is None:
                self._finish("keepalive timed out")

    def _connected(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connack.done():
            return
        # MQTT 5: Shared Subscription Available is 1 when absent (section 3.2.2.3.15)
        shared = client.protocol == paho.MQTTv5 and (
            getattr(props, "SharedSubscriptionAvailable", 1) != 0 if props else True
        )
        self.connack.set_result(Connack(int(reason.value), str(reason), shared))

    def _disconnected(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._finish(str(reason))

    def _finish(self, reason: str) -> None:
        if not self.connack.done():
            self.connack.set_exception(ClosedBeforeConnack(f"closed before CONNACK: {reason}"))
            self.connack.exception()  # retrieved: a caller may no longer wait on it
        if not self.closed.done():
            self.closed.set_result(reason)
        lost = MqttLinkError(f"connection closed: {reason}")
        waiting: list[asyncio.Future[Any]] = [*self._confirms.values(), *self._subacks.values()]
        for fut in waiting:
            if not fut.done():
                fut.set_exception(lost)
                fut.exception()
        self._confirms.clear()
        self._subacks.clear()

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            topic = str(msg.topic)
        except UnicodeDecodeError:  # MQTT requires UTF-8 topics: a broker bug or an attack
            self.bad_topics += 1
            log.warning("%s: ignored a message whose topic is not UTF-8", self._name)
            return
        props = msg.properties
        message = Message(
            topic=topic,
            payload=bytes(msg.payload),
            qos=int(msg.qos),
            retain=bool(msg.retain),
            response_topic=getattr(props, "ResponseTopic", None) if props else None,
            correlation=getattr(props, "CorrelationData", None) if props else None,
        )
        try:
            self._on_message(message)
        except Exception:  # supervisor point: one bad message must not stop the read loop
            self.handler_failures += 1
            log.exception("%s: handler failed on a message on %s", self._name, message.topic)

    def _published(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        fut = self._confirms.pop(mid, None)
        if fut is None or fut.done():
            return
        if reason.is_failure:
            fut.set_exception(MqttLinkError(f"the broker refused the publish: {reason}"))
        else:
            fut.set_result(None)

    def _subscribed(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        fut = self._subacks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result([int(r.value) for r in reasons])
