"""Run the real `edge-gateway` daemon as a subprocess, for crash and shutdown tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "edge"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_DATA_DIR=str(data_dir),
        EDGE_LAN__PORT=str(port),
        EDGE_LAN__BIND="127.0.0.1",
        EDGE_HQ__ENABLED="false",  # HQ link tests turn it on, with a broker of their own
    )
    env.update(extra)
    return env


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )


def add_client(env: dict[str, str], role: str = "register") -> dict[str, Any]:
    out = cli(env, "clients", "add", f"test-{role}", "--role", role, "--json")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([*CLI, "run"], env=env, stdout=sink, stderr=sink, cwd=ROOT)


def launch(env: dict[str, str], folder: Path, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`start` the daemon (logging to `log`, by default `folder/daemon.log`) with a
    NOTIFY_SOCKET in `folder`, and return once it sent READY=1 (killed if it never does).
    The socket is gone afterwards: the daemon takes a missing one in its stride."""
    ready = ReadySocket(folder)
    try:
        proc = start({**env, "NOTIFY_SOCKET": ready.path}, log or folder / "daemon.log")
        try:
            ready.wait_for("READY=1")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    finally:
        ready.close()
        os.unlink(ready.path)
    return proc


class ReadySocket:
    """A NOTIFY_SOCKET for the daemon (the service manager's end of it): READY=1 arrives
    when startup is complete, then STATUS= lines, WATCHDOG=1 pings and STOPPING=1."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def receive(self, timeout: float) -> str | None:
        """The next message within `timeout` seconds, or None."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def wait_for(self, word: str, timeout: float = 30.0) -> str:
        """The first message containing `word` within `timeout` seconds."""
        return self._first(lambda message: word in message, word, timeout)

    def wait_for_field(self, field: str, timeout: float = 30.0) -> str:
        """The first message with `field` (e.g. "READY=1") as one of its lines."""
        return self._first(lambda message: field in message.splitlines(), field, timeout)

    def _first(self, matches: Callable[[str], bool], what: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and matches(message):
                return message
        raise TimeoutError(f"daemon did not send {what} within {timeout} s")

    def during(self, seconds: float) -> list[str]:
        """Every message that arrives within the next `seconds`."""
        messages = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None:
                messages.append(message)
        return messages

    def drain(self) -> None:
        """Drop what has already arrived."""
        while self.receive(0.001) is not None:
            continue

    def close(self) -> None:
        self.sock.close()
