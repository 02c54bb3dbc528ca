"""What the benchmarks share: the gateway as a subprocess, and a throwaway mosquitto.

Only the package and its runtime dependencies are used here, so the benchmarks run in the
virtualenv `scripts/run` builds, without the test extras.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "edge"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment for a gateway on loopback with its own data and no HQ link."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_DATA_DIR=str(data_dir),
        EDGE_LAN__PORT=str(port),
        EDGE_LAN__BIND="127.0.0.1",
        EDGE_HQ__ENABLED="false",
    )
    env.update(extra)
    return env


def add_client(env: dict[str, str], name: str, role: str = "register") -> dict[str, Any]:
    out = subprocess.run(
        [*CLI, "clients", "add", name, "--role", role, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    return dict(json.loads(out.stdout))


def start_gateway(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([*CLI, "run"], env=env, stdout=sink, stderr=sink, cwd=ROOT)


class ReadySocket:
    """A NOTIFY_SOCKET for the gateway: READY=1 arrives when its startup is complete."""

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
        raise TimeoutError(f"gateway did not send {word}")

    def close(self) -> None:
        self.sock.close()


class Mosquitto:
    """A mosquitto on a free loopback port, ready once it accepts connections."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 0\nmax_queued_messages 0\nset_tcp_nodelay true\n"
            # as root mosquitto would switch to its own user, who cannot read this folder
            f"user {getpass.getuser()}\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.05)  # the broker is still binding its port
            else:
                return
        self.stop()
        raise RuntimeError(f"mosquitto did not start; see {self.workdir / 'mosquitto.log'}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
