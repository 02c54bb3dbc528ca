"""Brokers that cluster, for tests: RabbitMQ's MQTT plugin and NATS's MQTT support.

Both speak MQTT 3.1.1 only and have no shared subscriptions (RabbitMQ 3.10 and NATS 2.9 as
Debian 12 ships them). Each runs from a temp dir on free loopback ports, never touching the
machine's own services: RabbitMQ gets a private epmd (started here, as our child, on its own
port) and its own node name, cookie, database and config. They have the interface of
`tests.hqlink.broker.Mosquitto` (`port`, `start()`, `stop()`, `restart()`, `running`), so a
test written against one runs on all three. Readiness is the broker's own "ready" log line
followed by a real CONNACK, and `stop()` checks that nothing it started still runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol

from tests.hqlink.broker import Mosquitto, free_port

__all__ = ["KINDS", "Broker", "Mosquitto", "Nats", "RabbitMq", "connack"]

KINDS = ("mosquitto", "rabbitmq", "nats")
STOP_TIMEOUT_S = 20.0
CONNACK_TIMEOUT_S = 5.0
RETRY_S = 0.05  # between CONNACK attempts, while the process is alive and the deadline ahead


class Broker(Protocol):
    """What the tests use of a broker, whichever it is."""

    port: int

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...


def connack(port: int, timeout: float = CONNACK_TIMEOUT_S) -> int | None:
    """Send an MQTT 3.1.1 CONNECT; the CONNACK return code, or None without one."""
    client_id = f"ready-{uuid.uuid4().hex[:8]}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client_id).to_bytes(2, "big") + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            answer = b""
            while len(answer) < 4 and (chunk := sock.recv(4 - len(answer))):
                answer += chunk
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return None
    if len(answer) < 4 or answer[0] != 0x20:
        return None
    return answer[3]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Process:
    """One broker process: its log drained by a thread that flags the ready line."""

    def __init__(self, name: str, log_path: Path, ready_marker: bytes) -> None:
        self.name = name
        self.log_path = log_path
        self.ready_marker = ready_marker
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = threading.Event()
        self.exited = threading.Event()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.ready.clear()
        self.exited.clear()
        # a session of its own: stop() can signal everything the broker forked
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with self.log_path.open("ab") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if self.ready_marker in line:
                    self.ready.set()
        self.exited.set()
        self.ready.set()  # wakes the waiter, who then sees the exit

    def wait_ready(self, port: int, timeout: float) -> None:
        """The ready log line, then a real CONNACK on `port`, within `timeout`."""
        deadline = time.monotonic() + timeout
        if not self.ready.wait(timeout) or not self.running:
            raise RuntimeError(f"{self.name} did not start; see {self.log_path}")
        while connack(port, max(0.1, deadline - time.monotonic())) != 0:
            left = deadline - time.monotonic()
            if left <= 0 or self.exited.wait(min(RETRY_S, left)):
                raise RuntimeError(f"{self.name} accepts no MQTT client; see {self.log_path}")

    def wait_listening(self, port: int, timeout: float) -> None:
        """For a process without a ready line: until `port` accepts a connection."""
        deadline = time.monotonic() + timeout
        while not port_open(port):
            left = deadline - time.monotonic()
            if left <= 0 or self.exited.wait(min(RETRY_S, left)):
                raise RuntimeError(f"{self.name} does not listen on {port}; see {self.log_path}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # whatever the broker forked into its session (Erlang's helpers) goes with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.exited.wait(STOP_TIMEOUT_S)


class Nats:
    """nats-server with JetStream (which its MQTT support needs) and an MQTT listener."""

    startup_timeout_s = 15.0

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.nats_port = free_port()
        self.log_path = workdir / "nats.log"
        self.starts = 0
        self._process = _Process("nats-server", self.log_path, b"Server is ready")

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self) -> None:
        assert not self.running
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats.conf"
        conf.write_text(
            f"server_name: edge_test_{self.port}\n"
            f"listen: 127.0.0.1:{self.nats_port}\n"
            f'jetstream {{ store_dir: "{self.workdir / "jetstream"}" }}\n'
            f"mqtt {{ listen: 127.0.0.1:{self.port} }}\n"
        )
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self._process.spawn([binary, "-c", str(conf)])
        try:
            self._process.wait_ready(self.port, self.startup_timeout_s)
        except RuntimeError:
            self.stop()
            raise
        self.starts += 1

    def stop(self) -> None:
        self._process.stop()
        assert not port_open(self.port), f"something still listens on {self.port}"

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Nats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RabbitMq:
    """RabbitMQ with the MQTT plugin, as a node of its own: private epmd, node name, cookie
    (in HOME), database, log and config, all under `workdir`."""

    startup_timeout_s = 60.0

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"edge-test-{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = workdir / "rabbitmq.log"
        self.starts = 0
        self._broker_process = _Process(
            "rabbitmq-server", self.log_path, b"Server startup complete"
        )
        self._epmd = _Process("epmd", workdir / "epmd.log", b"epmd: ")

    @property
    def running(self) -> bool:
        return self._broker_process.running

    def env(self) -> dict[str, str]:
        home = self.workdir / "home"
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            HOME=str(home),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_LOGS="-",  # to stdout, where the ready line is read
            RABBITMQ_PID_FILE=str(self.workdir / "rabbitmq.pid"),
            RABBITMQ_CONFIG_FILE=str(self.workdir / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.workdir / "advanced.config"),
        )
        return env

    def _write_config(self) -> None:
        (self.workdir / "home").mkdir(parents=True, exist_ok=True)
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.workdir / "advanced.config").write_text("[].\n")
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "mqtt.allow_anonymous = true\n"
            "mqtt.vhost = /\n"
            "mqtt.exchange = amq.topic\n"
        )

    def start(self) -> None:
        assert not self.running
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        env = self.env()
        if not self._epmd.running:
            # our own epmd, as our child: RabbitMQ finds it on ERL_EPMD_PORT and starts none
            epmd = shutil.which("epmd") or "/usr/bin/epmd"
            self._epmd.spawn([epmd, "-address", "127.0.0.1", "-port", str(self.epmd_port)], env)
            self._epmd.wait_listening(self.epmd_port, self.startup_timeout_s)
        self._broker_process.spawn(["/usr/lib/rabbitmq/bin/rabbitmq-server"], env)
        try:
            self._broker_process.wait_ready(self.port, self.startup_timeout_s)
        except RuntimeError:
            self.stop()
            raise
        self.starts += 1

    def stop(self) -> None:
        """Stop the node (gracefully: SIGTERM), then its epmd; check that none is left."""
        self._broker_process.stop()
        self._epmd.stop()
        leftovers = [p for p in (self.port, self.dist_port, self.epmd_port) if port_open(p)]
        assert not leftovers, f"RabbitMQ left listeners on {leftovers}"

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RabbitMq:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
