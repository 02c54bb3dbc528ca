"""A full disk under the real daemon: refunds get 503 `storage-unavailable`, /readyz turns
503, the HQ link raises a critical alert, nothing is half-written; space back, the alert
clears and the next refund goes through, without a restart.

The daemon runs in a private mount namespace (`tests/namespaces.py`) with a 8 MiB tmpfs over
its data directory, so filling that filesystem touches nothing of the host. The test
reaches the daemon's filesystem through `/proc/<pid>/root`, registers call the real LAN
API, and a real mosquitto carries the alert to an MQTT observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.core.conftest import sale
from tests.core.daemon import ROOT, ReadySocket, env_for, free_port
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import Observer, Register
from tests.namespaces import in_private_mounts

ALERTS = "retail/v1/0042/gw-09/alerts"
TMPFS_SIZE = "8m"
# Inside the namespace: a small tmpfs over the data directory, a register client in the
# ledger there, then the gateway itself (exec: the test's pid is the daemon's).
LAUNCH = """
mount -t tmpfs -o size={size},mode=0700 tmpfs "$EDGE_DATA_DIR" || exit 97
"{python}" -m edge clients add disk-test --role register --json > "{creds}" || exit 98
exec "{python}" -m edge run
"""


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    data: Path  # the data directory as the daemon sees it
    inside: Path  # the same, reached from here through /proc/<pid>/root
    base: str
    http: aiohttp.ClientSession
    bearer: dict[str, str]

    async def refund(self, key: str) -> tuple[int, str, Any]:
        body = {"sale_id": "S-FULL", "lines": [{"line_id": "1", "quantity": 1}]}
        headers = {**self.bearer, "Idempotency-Key": key}
        async with self.http.post(f"{self.base}/v1/refunds", json=body, headers=headers) as r:
            return r.status, r.content_type, await r.json(content_type=None)

    async def ready(self) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}/readyz") as r:
            return r.status, await r.json()


def fill(folder: Path) -> Path:
    """Take every free byte of the filesystem `folder` is on."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        st = os.statvfs(folder)
        if st.f_bavail:
            os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize)
        os.lseek(fd, 0, os.SEEK_END)
        with contextlib.suppress(OSError):  # whatever fallocate left, to the last page
            while os.statvfs(folder).f_bavail:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return ballast


# Run inside the daemon's mount namespace (nsenter): SQLite resolves /proc/<pid>/root.
READ_LEDGER = """
import json, sys
from tests.appliance.test_disk_full import ledger_state
print(json.dumps(ledger_state(sys.argv[1])))
"""


def ledger_state_of(pid: int, data: Path) -> dict[str, Any]:
    """Integrity, refunds and what each holds, read beside the running daemon."""
    out = subprocess.run(
        [
            "nsenter",
            "-t",
            str(pid),
            "-m",
            "--root",  # the daemon's root: inside a chroot, the chroot's
            f"--wd={ROOT}",
            sys.executable,
            "-c",
            READ_LEDGER,
            str(data),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def ledger_state(data: str) -> dict[str, Any]:
    path = Path(data) / "ledger.sqlite3"
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        returns = [r[0] for r in db.execute("SELECT return_id FROM returns")]
        parts = {
            rid: [
                db.execute(sql, (rid,)).fetchone()[0]
                for sql in (
                    "SELECT count(*) FROM return_lines WHERE return_id = ?",
                    "SELECT count(*) FROM return_tenders WHERE return_id = ?",
                    "SELECT count(*) FROM audit_log WHERE subject = ?",
                )
            ]
            for rid in returns
        }
        keys = [r[0] for r in db.execute("SELECT key FROM idempotency_keys")]
        seqs = [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    finally:
        db.close()
    return {"integrity": integrity, "returns": returns, "parts": parts, "keys": keys, "seqs": seqs}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Observer]]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    data = tmp_path / "data"
    data.mkdir()
    creds_file = tmp_path / "creds.json"
    port = free_port()
    ready = ReadySocket(tmp_path)
    env = env_for(
        data,
        port,
        EDGE_STORE_ID="0042",
        EDGE_GATEWAY_ID="gw-09",
        EDGE_HQ__ENABLED="true",
        EDGE_HQ__BROKER__PORT=str(broker.port),
        EDGE_HQ__BROKER__BACKOFF_INITIAL_S="0.05",
        EDGE_HQ__BROKER__BACKOFF_MAX_S="0.3",
        EDGE_STORAGE__PROBE_INTERVAL_S="0.2",
        NOTIFY_SOCKET=ready.path,
    )
    script = LAUNCH.format(size=TMPFS_SIZE, python=sys.executable, creds=creds_file)
    proc = spawn(script, env, tmp_path / "daemon.log")
    try:
        async with Observer(broker.port, [ALERTS]) as observer:
            await asyncio.to_thread(ready.wait_for, "READY=1")
            creds = json.loads(creds_file.read_text())
            inside = Path(f"/proc/{proc.pid}/root") / data.relative_to("/")
            assert os.statvfs(inside).f_blocks * os.statvfs(inside).f_frsize <= 8 << 20
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                register = await Register(
                    http, base, (creds["client_id"], creds["client_secret"])
                ).login()
                bearer = {"Authorization": f"Bearer {register.token}"}
                body = sale(sale_id="S-FULL", order_discount="0")
                body["lines"][0].update(quantity=100, unit_price="1.00", discount="0", tax="0")
                body["tenders"] = [{"tender_id": "c", "type": "store_credit", "amount": "100.00"}]
                async with http.post(f"{base}/v1/sales", json=body, headers=bearer) as r:
                    assert r.status == 201, await r.text()
                yield Daemon(proc, data, inside, base, http, bearer), observer
    finally:
        ready.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.stop()


def spawn(script: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`script` in a mount namespace of its own (a private copy of this one's mounts)."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            in_private_mounts(script),
            env=env,
            stdout=sink,
            stderr=sink,
            cwd=ROOT,
        )


def storage_alerts(observer: Observer) -> list[dict[str, Any]]:
    return [
        json.loads(m.payload)
        for m in observer.messages
        if m.topic == ALERTS and json.loads(m.payload)["alert"] == "storage-unavailable"
    ]


async def test_a_full_disk_refuses_refunds_whole_and_recovers_without_a_restart(
    daemon: tuple[Daemon, Observer], tmp_path: Path
) -> None:
    gw, observer = daemon
    status, _, first = await gw.refund("before-full")
    assert status == 201, first
    status, ready = await gw.ready()
    assert status == 200, ready

    ballast = await asyncio.to_thread(fill, gw.inside)
    status, media, problem = await gw.refund("while-full")
    assert status == 503, problem
    assert media == "application/problem+json"
    assert problem["type"].endswith("/storage-unavailable")
    assert problem["status"] == 503
    status, _, again = await gw.refund("while-full-2")
    assert status == 503, again

    status, ready = await gw.ready()
    assert status == 503
    assert ready["ready"] is False
    assert ready["database"]["ok"] is False
    assert "cannot take a write" in ready["database"]["detail"]

    raised = await observer.wait_for(
        lambda: [a for a in storage_alerts(observer) if a["state"] == "raised"]
    )
    assert raised[0]["severity"] == "critical"

    state = await asyncio.to_thread(ledger_state_of, gw.proc.pid, gw.data)
    assert state["integrity"] == "ok"
    assert state["returns"] == [first["return_id"]], "no refund half- or wholly written"
    assert state["parts"][first["return_id"]] == [1, 1, 1]
    assert "while-full" not in state["keys"]
    assert "while-full-2" not in state["keys"]
    assert state["seqs"] == list(range(1, len(state["seqs"]) + 1))

    await asyncio.to_thread(ballast.unlink)
    await observer.wait_for(
        lambda: [a for a in storage_alerts(observer) if a["state"] == "cleared"]
    )
    status, ready = await gw.ready()
    assert status == 200, ready
    status, _, refund = await gw.refund("while-full")  # the register's retry, same key
    assert status == 201, refund
    assert "Idempotent-Replayed" not in refund

    state = await asyncio.to_thread(ledger_state_of, gw.proc.pid, gw.data)
    assert state["integrity"] == "ok"
    assert sorted(state["returns"]) == sorted([first["return_id"], refund["return_id"]])
    assert all(parts == [1, 1, 1] for parts in state["parts"].values())
    assert state["seqs"] == list(range(1, len(state["seqs"]) + 1))

    gw.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gw.proc.wait, 30) == 0
    log = (tmp_path / "daemon.log").read_text()
    assert "storage failed" in log
    assert "storage writable again" in log
