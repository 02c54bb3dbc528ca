"""`scripts/run` as store IT uses it: one pid to stop, the local broker going with it.

The script runs from a copy of the checkout whose `scripts/setup` does nothing (the test
environment is set up already) and whose `.venv/bin/edge-gateway` is this one's, so the
real `scripts/run` and `scripts/local-broker` start the real gateway and mosquitto.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.daemon import ROOT, ReadySocket, env_for, free_port, start


@pytest.fixture
def ready(tmp_path: Path) -> Iterator[ReadySocket]:
    sock = ReadySocket(tmp_path)
    yield sock
    sock.close()


def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / ".venv" / "bin").mkdir(parents=True)
    for name in ("run", "local-broker"):
        shutil.copy2(ROOT / "scripts" / name, repo / "scripts" / name)
    setup = repo / "scripts" / "setup"
    setup.write_text("#!/bin/sh\nexit 0\n")
    setup.chmod(0o755)
    gateway = ROOT / ".venv" / "bin" / "edge-gateway"
    (repo / ".venv" / "bin" / "edge-gateway").symlink_to(gateway)
    return repo


def wait_gone(pid: int, timeout: float) -> bool:
    """True once process `pid` has exited (a pidfd turns readable), False after `timeout`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def test_sigterm_to_scripts_run_stops_the_gateway_and_its_local_broker(
    tmp_path: Path, ready: ReadySocket
) -> None:
    repo = checkout(tmp_path)
    env = env_for(
        tmp_path / "data",
        free_port(),
        NOTIFY_SOCKET=ready.path,
        EDGE_HQ__ENABLED="true",
        EDGE_HQ__BROKER__PORT=str(free_port()),  # nothing listens: the script starts a broker
    )
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(repo / "scripts" / "run")],
            env=env,
            stdout=sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    broker_pid = None
    try:
        ready.wait_for("READY=1")
        broker_pid = int((repo / "var" / "mosquitto" / "mosquitto.pid").read_text())
        assert not wait_gone(broker_pid, 0), "the local broker runs beside the gateway"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert any(arg.endswith(b"edge-gateway") for arg in cmdline), cmdline
        assert b"run" in cmdline, "the script's pid is the gateway itself (exec)"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert wait_gone(broker_pid, 10), "the broker stops once the gateway has exited"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if broker_pid is not None and not wait_gone(broker_pid, 0):
            os.kill(broker_pid, signal.SIGKILL)
    lines = log.read_text().splitlines()
    assert "stopped" in lines[-1], lines[-3:]


def test_a_clean_shutdown_ends_with_a_stopped_line(tmp_path: Path, ready: ReadySocket) -> None:
    env = env_for(tmp_path / "data", free_port(), NOTIFY_SOCKET=ready.path)
    env.update(EDGE_STORE_ID="0042", EDGE_GATEWAY_ID="gw-03")
    log = tmp_path / "daemon.log"
    proc = start(env, log)
    try:
        ready.wait_for("READY=1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines()]  # JSON: not a tty
    assert (lines[-1]["level"], lines[-1]["logger"], lines[-1]["msg"]) == (
        "INFO",
        "edge.app",
        "gateway 0042/gw-03 stopped",
    ), lines[-3:]
    assert not any("example value" in line["msg"] for line in lines), "real ids: no warning"


@pytest.mark.parametrize(
    ("ids", "named"),
    [
        ({}, "store_id = '0001' and gateway_id = 'gw-01' are still the example values"),
        ({"EDGE_STORE_ID": "0042"}, "gateway_id = 'gw-01' is still the example value"),
    ],
)
def test_a_gateway_on_the_example_ids_warns_at_start(
    tmp_path: Path, ready: ReadySocket, ids: dict[str, str], named: str
) -> None:
    env = env_for(tmp_path / "data", free_port(), NOTIFY_SOCKET=ready.path, **ids)
    log = tmp_path / "daemon.log"
    proc = start(env, log)
    try:
        ready.wait_for("READY=1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    warnings = [r for r in records if "example value" in r["msg"]]
    assert len(warnings) == 1, warnings
    assert (warnings[0]["level"], warnings[0]["logger"]) == ("WARNING", "edge.app")
    assert warnings[0]["msg"].startswith(f"{named}: set ")


def test_the_example_configuration_holds_the_ids_the_warning_looks_for() -> None:
    from edge.settings import load_settings  # noqa: PLC0415

    example = load_settings(ROOT / "config" / "gateway.example.toml")
    defaults = load_settings(None)
    assert (example.store_id, example.gateway_id) == (defaults.store_id, defaults.gateway_id)
