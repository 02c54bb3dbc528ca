"""What the benchmarks share: the gateway as a subprocess, and a throwaway mosquitto.

Only the package and its runtime dependencies are used here, so the benchmarks run in the
virtualenv `scripts/run` builds, without the test extras.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
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


def access_token(base: str, creds: dict[str, Any]) -> str:
    """A bearer token for the client, from the gateway's OAuth endpoint."""
    basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
    request = urllib.request.Request(
        f"{base}/oauth/token",
        data=b"grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["access_token"])


@dataclass(frozen=True)
class RunningGateway:
    base: str
    token: str
    pid: int


@contextlib.contextmanager
def running_gateway(
    folder: Path, *, preload: Path | None = None, **extra_env: str
) -> Iterator[RunningGateway]:
    """A gateway process on `folder/data` (seed its ledger first if the benchmark needs one),
    with a register client; `preload` is an LD_PRELOAD library for the gateway alone."""
    port = free_port()
    ready = ReadySocket(folder)
    env = gateway_env(
        folder / "data", port, NOTIFY_SOCKET=ready.path, EDGE_LOGGING__LEVEL="WARNING", **extra_env
    )
    creds = add_client(env, "bench-register")
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    proc = start_gateway(env, folder / "daemon.log")
    try:
        ready.wait_for("READY=1", timeout=120)
        if preload is not None and str(preload) not in Path(f"/proc/{proc.pid}/maps").read_text():
            raise RuntimeError(f"{preload} is not loaded in the gateway")
        base = f"http://127.0.0.1:{port}"
        yield RunningGateway(base, access_token(base, creds), proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
        ready.close()


def build_slow_fsync_shim(folder: Path) -> Path:
    """bench/slow_fsync.c built with the system C compiler into `folder`."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("a C compiler (cc) is needed: sudo apt-get install build-essential")
    out = folder / "slow_fsync.so"
    source = Path(__file__).with_name("slow_fsync.c")
    subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(source), "-ldl"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@dataclass(frozen=True)
class ProcUsage:
    rss_mib: float
    cpu_s: float  # user + system seconds so far


def proc_usage(pid: int) -> ProcUsage:
    """Resident memory and CPU time of a process, from /proc."""
    rss_kib = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ProcUsage(rss_kib / 1024, ticks / os.sysconf("SC_CLK_TCK"))


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
