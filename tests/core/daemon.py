"""Run the real `edge-gateway` daemon as a subprocess, for crash and shutdown tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
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


class ReadySocket:
    """A NOTIFY_SOCKET for the daemon: READY=1 arrives when startup is complete."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait_for(self, word: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            if word in message:
                return message
        raise TimeoutError(f"daemon did not send {word}")

    def close(self) -> None:
        self.sock.close()
