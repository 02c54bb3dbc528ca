"""`edge-gateway backup` and `restore`, run as store IT runs them, against the real daemon:
a backup taken while registers are refunding is one consistent commit and verifies;
restore is refused while the gateway runs (as is a second gateway on the same data), works
once it is stopped, keeps what it replaced, and refuses a damaged or another store's
backup."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.ledger.backup import read_backup
from tests.core.conftest import sale
from tests.core.daemon import add_client, cli, env_for, free_port, launch
from tests.hqlink.harness import Register


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data: Path
    register: Register

    async def refund(self, key: str) -> tuple[int, Any]:
        body = {"sale_id": "S-BAK", "lines": [{"line_id": "1", "quantity": 1}]}
        return await self.register.call("POST", "/v1/refunds", body, key)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    data = tmp_path / "data"
    port = free_port()
    env = env_for(data, port, EDGE_STORE_ID="0042", EDGE_GATEWAY_ID="gw-05")
    creds = add_client(env)
    proc = await asyncio.to_thread(launch, env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            register = await Register(
                http, base, (creds["client_id"], creds["client_secret"])
            ).login()
            bearer = {"Authorization": f"Bearer {register.token}"}
            body = sale(sale_id="S-BAK", order_discount="0")
            body["lines"][0].update(quantity=5000, unit_price="1.00", discount="0", tax="0")
            body["tenders"] = [{"tender_id": "c", "type": "store_credit", "amount": "5000.00"}]
            async with http.post(f"{base}/v1/sales", json=body, headers=bearer) as r:
                assert r.status == 201, await r.text()
            yield Running(proc, env, data, register)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def whole_refunds(db: sqlite3.Connection) -> list[str]:
    """Every refund with all of its rows (lines, tender, event, audit, key); asserts the
    outbox numbering is gapless."""
    ids = [r[0] for r in db.execute("SELECT return_id FROM returns ORDER BY return_id")]
    for return_id in ids:
        lines = db.execute("SELECT count(*) FROM return_lines WHERE return_id=?", (return_id,))
        tenders = db.execute("SELECT count(*) FROM return_tenders WHERE return_id=?", (return_id,))
        events = db.execute(
            "SELECT count(*) FROM outbox WHERE type = 'refund.requested' AND envelope LIKE ?",
            (f'%"{return_id}"%',),
        )
        audits = db.execute("SELECT count(*) FROM audit_log WHERE subject=?", (return_id,))
        keys = db.execute(
            "SELECT count(*) FROM idempotency_keys WHERE response LIKE ?", (f'%"{return_id}"%',)
        )
        counts = [c.fetchone()[0] for c in (lines, tenders, events, audits, keys)]
        assert counts == [1, 1, 1, 1, 1], (return_id, counts)
    seqs = [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    return ids


def returns_in(path: Path) -> int:
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM returns").fetchone()[0])
    finally:
        db.close()


async def test_a_backup_taken_while_registers_refund_is_one_consistent_commit(
    tmp_path: Path, gateway: Running
) -> None:
    acknowledged: list[str] = []
    started = asyncio.Event()
    done = asyncio.Event()

    async def register(n: int) -> None:
        i = 0
        while not done.is_set():
            status, body = await gateway.refund(f"r{n}-{i}")
            assert status == 201, body
            acknowledged.append(body["return_id"])
            if len(acknowledged) >= 40:
                started.set()
            i += 1

    registers = [asyncio.create_task(register(n)) for n in range(4)]
    await asyncio.wait_for(started.wait(), 60)
    before = len(acknowledged)
    target = tmp_path / "backups"
    target.mkdir()
    out = await asyncio.to_thread(cli, gateway.env, "backup", str(target), "--json")
    during = len(acknowledged) - before
    done.set()
    await asyncio.gather(*registers)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    archive = Path(report["path"])
    assert archive.parent == target
    assert archive.name.startswith("edge-gateway-0042-gw-05-")
    assert archive.name.endswith(".tar.gz")
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    assert during > 0, "refunds went on while the backup was taken"
    assert [p.name for p in target.iterdir()] == [archive.name], "no temporary file left"
    assert {"ledger.sqlite3", "token-signing.key"} <= set(report["files"])

    unpacked = tmp_path / "unpacked"
    manifest = read_backup(archive, unpacked)  # verifies checksums, integrity and counts
    assert (manifest.store_id, manifest.gateway_id) == ("0042", "gw-05")
    copy = sqlite3.connect(unpacked / "ledger.sqlite3")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    in_backup = whole_refunds(copy)
    copy.close()
    assert manifest.counts["returns"] == len(in_backup)
    assert before <= len(in_backup) <= len(acknowledged)
    assert set(in_backup) <= set(acknowledged)
    key = (gateway.data / "token-signing.key").read_bytes()
    assert (unpacked / "token-signing.key").read_bytes() == key
    # the copy is a ledger the gateway's own tools accept: its audit chain is whole
    verify = cli({**gateway.env, "EDGE_DATA_DIR": str(unpacked)}, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "chain intact" in verify.stdout


async def test_restore_is_refused_while_the_gateway_runs_and_works_once_it_is_stopped(
    tmp_path: Path, gateway: Running
) -> None:
    status, kept = await gateway.refund("before-backup")
    assert status == 201
    archive = tmp_path / "nightly.tar.gz"
    out = await asyncio.to_thread(cli, gateway.env, "backup", str(archive))
    assert out.returncode == 0, out.stderr
    assert f"wrote {archive}" in out.stdout
    status, lost = await gateway.refund("after-backup")
    assert status == 201

    refused = await asyncio.to_thread(cli, gateway.env, "restore", str(archive))
    assert refused.returncode == 3
    assert f"pid {gateway.proc.pid}" in refused.stderr
    assert "stop it first" in refused.stderr
    assert returns_in(gateway.data / "ledger.sqlite3") == 2, "nothing was changed"
    assert not list(gateway.data.glob("before-restore-*"))

    second = await asyncio.to_thread(
        cli, {**gateway.env, "EDGE_LAN__PORT": str(free_port())}, "run"
    )
    assert second.returncode == 2, "a second gateway on the same data refuses to start"
    assert "data_dir" in second.stderr
    assert "in use by a running edge-gateway" in second.stderr

    assert stop(gateway.proc) == 0
    restored = await asyncio.to_thread(cli, gateway.env, "restore", str(archive), "--json")
    assert restored.returncode == 0, restored.stderr
    result = json.loads(restored.stdout)
    aside = Path(result["kept_aside"])
    assert aside.parent == gateway.data
    assert returns_in(gateway.data / "ledger.sqlite3") == 1
    assert returns_in(aside / "ledger.sqlite3") == 2, "what the restore replaced is kept"
    assert stat.S_IMODE((gateway.data / "ledger.sqlite3").stat().st_mode) == 0o600
    assert not list(gateway.data.glob(".restore-*"))

    gateway.proc = await asyncio.to_thread(launch, gateway.env, tmp_path)
    register = gateway.register
    fresh = await Register(register.http, register.url, register.creds).login()
    bearer = {"Authorization": f"Bearer {fresh.token}"}
    for refund, expected in ((kept, 200), (lost, 404)):
        url = f"{register.url}/v1/refunds/{refund['return_id']}"
        async with register.http.get(url, headers=bearer) as r:
            assert r.status == expected
    status, again = await gateway.refund("after-restore")
    assert status == 201, again
    assert stop(gateway.proc) == 0


def _rewrite_member(archive: Path, name: str, data: bytes, into: Path) -> Path:
    """The archive again with one member's bytes replaced (its manifest left as it was)."""
    out = into / f"tampered-{archive.name}"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            body = src.extractfile(member)
            assert body is not None
            payload = data if member.name == name else body.read()
            member.size = len(payload)
            dst.addfile(member, io.BytesIO(payload))
    return out


def test_a_damaged_a_tampered_and_another_stores_backup_are_refused(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data", free_port(), EDGE_STORE_ID="0042", EDGE_GATEWAY_ID="gw-05")
    missing = cli(env, "backup", str(tmp_path / "none.tar.gz"))
    assert missing.returncode == 1
    assert "there is no ledger" in missing.stderr
    add_client(env)
    archive = tmp_path / "good.tar.gz"
    assert cli(env, "backup", str(archive)).returncode == 0
    ledger = tmp_path / "data" / "ledger.sqlite3"
    original = hashlib.sha256(ledger.read_bytes()).hexdigest()

    damaged = tmp_path / "damaged.tar.gz"
    raw = bytearray(archive.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = os.urandom(64)
    damaged.write_bytes(bytes(raw))

    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("ledger.sqlite3")
        assert member is not None
        ledger_bytes = bytearray(member.read())
    ledger_bytes[len(ledger_bytes) // 2] ^= 0xFF
    tampered = _rewrite_member(archive, "ledger.sqlite3", bytes(ledger_bytes), tmp_path)

    not_a_backup = tmp_path / "notes.tar.gz"
    not_a_backup.write_bytes(gzip.compress(b"just some text"))

    for bad, words in (
        (damaged, ""),
        (tampered, "do not match the manifest"),
        (not_a_backup, "not a readable backup"),
    ):
        out = cli(env, "restore", str(bad))
        assert out.returncode == 1, (bad, out.stdout, out.stderr)
        assert "restore refused" in out.stderr
        assert words in out.stderr
        assert "nothing was changed" in out.stderr
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == original
    assert not list((tmp_path / "data").glob("before-restore-*"))
    assert not list((tmp_path / "data").glob(".restore-*"))

    other = {**env, "EDGE_STORE_ID": "0099"}
    foreign = cli(other, "restore", str(archive))
    assert foreign.returncode == 1
    assert "made by store 0042 gateway gw-05" in foreign.stderr
    assert "--force" in foreign.stderr
    forced = cli(other, "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "kept in" in forced.stdout
