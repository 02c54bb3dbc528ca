"""The real daemon in a subprocess: crash safety under SIGKILL, clean SIGTERM, operator CLI."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.core.conftest import sale
from tests.core.daemon import ReadySocket, add_client, cli, env_for, free_port, start


@pytest.fixture
def ready(tmp_path: Path):
    sock = ReadySocket(tmp_path)
    yield sock
    sock.close()


async def token(http: aiohttp.ClientSession, base: str, creds: dict) -> str:
    basic = {"Authorization": aiohttp.encode_basic_auth(creds["client_id"], creds["client_secret"])}
    async with http.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, headers=basic
    ) as r:
        return str((await r.json())["access_token"])


@dataclass
class Running:
    """A started daemon with one register client and a 5,000-unit sale recorded."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    base: str
    bearer: dict[str, str]
    http: aiohttp.ClientSession


@pytest.fixture
async def daemon(tmp_path: Path, ready: ReadySocket) -> AsyncIterator[Running]:
    port = free_port()
    env = env_for(tmp_path / "data", port, NOTIFY_SOCKET=ready.path)
    creds = add_client(env)
    proc = start(env, tmp_path / "daemon.log")
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(ready.wait_for, "READY=1")
        async with aiohttp.ClientSession() as http:
            bearer = {"Authorization": f"Bearer {await token(http, base, creds)}"}
            async with http.post(f"{base}/v1/sales", json=many_units_sale(), headers=bearer) as r:
                assert r.status == 201, await r.text()
            yield Running(proc, env, base, bearer, http)
    finally:
        proc.kill()
        proc.wait()


def many_units_sale() -> dict:
    body = sale(sale_id="S-KILL", order_discount="0")
    body["lines"][0].update(quantity=5000, unit_price="1.00", discount="0", tax="0")
    body["tenders"] = [{"tender_id": "c", "type": "store_credit", "amount": "5000.00"}]
    return body


async def test_sigkill_while_refunds_are_written_leaves_each_whole_or_absent(
    tmp_path: Path, daemon: Running
) -> None:
    acknowledged: set[str] = set()
    enough = asyncio.Event()

    async def register(n: int) -> None:
        for i in range(10_000):
            headers = {**daemon.bearer, "Idempotency-Key": f"w{n}-{i}"}
            body = {
                "sale_id": "S-KILL",
                "lines": [{"line_id": "1", "quantity": 1, "restock": i % 2 == 0}],
            }
            try:
                async with daemon.http.post(
                    f"{daemon.base}/v1/refunds", json=body, headers=headers
                ) as r:
                    data = await r.json()
            except (aiohttp.ClientError, json.JSONDecodeError):
                return
            assert r.status == 201, data
            acknowledged.add(data["return_id"])
            if len(acknowledged) >= 150 + random.randrange(100):
                enough.set()

    tasks = [asyncio.create_task(register(n)) for n in range(8)]
    await asyncio.wait_for(enough.wait(), 60)
    daemon.proc.send_signal(signal.SIGKILL)
    await asyncio.gather(*tasks)
    env = daemon.env
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3")
    returns = {r[0] for r in db.execute("SELECT return_id FROM returns")}
    assert acknowledged <= returns, "every refund the register was told about is on disk"
    for (return_id,) in db.execute("SELECT return_id FROM returns"):
        lines = db.execute(
            "SELECT count(*), sum(restock) FROM return_lines WHERE return_id=?", (return_id,)
        ).fetchone()
        tenders = db.execute(
            "SELECT count(*) FROM return_tenders WHERE return_id=?", (return_id,)
        ).fetchone()[0]
        events = [
            r[0]
            for r in db.execute(
                "SELECT type FROM outbox WHERE envelope LIKE ? ORDER BY seq", (f'%"{return_id}"%',)
            )
        ]
        audits = db.execute(
            "SELECT count(*) FROM audit_log WHERE subject=?", (return_id,)
        ).fetchone()[0]
        keys = db.execute(
            "SELECT count(*) FROM idempotency_keys WHERE response LIKE ?", (f'%"{return_id}"%',)
        ).fetchone()[0]
        assert lines[0] == 1
        assert tenders == 1
        expected = ["refund.requested"] + (["inventory.returned"] if lines[1] else [])
        assert events == expected
        assert (audits, keys) == (1, 1)
    seqs = [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "outbox seq stays gapless"
    out = cli(env, "audit", "verify")
    assert out.returncode == 0, out.stderr
    assert "chain intact" in out.stdout


async def test_sigterm_finishes_in_flight_requests_and_closes_cleanly(
    tmp_path: Path, ready: ReadySocket, daemon: Running
) -> None:
    async def one(i: int) -> int:
        headers = {**daemon.bearer, "Idempotency-Key": f"t{i}"}
        body = {"sale_id": "S-KILL", "lines": [{"line_id": "1", "quantity": 1}]}
        async with daemon.http.post(f"{daemon.base}/v1/refunds", json=body, headers=headers) as r:
            await r.read()
            return r.status

    pending = [asyncio.create_task(one(i)) for i in range(50)]
    await asyncio.sleep(0)
    daemon.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(ready.wait_for, "STOPPING=1")
    statuses = await asyncio.gather(*pending, return_exceptions=True)
    code = await asyncio.to_thread(daemon.proc.wait, 30)
    assert code == 0
    done = [s for s in statuses if s == 201]
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3")
    (count,) = db.execute("SELECT count(*) FROM returns").fetchone()
    assert count == len(done), "every 201 is on disk, nothing beyond what was answered"
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    wal = tmp_path / "data" / "ledger.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "closed cleanly: WAL checkpointed"


def test_operator_cli(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data", free_port())
    creds = add_client(env, "handheld")
    listed = json.loads(cli(env, "clients", "list", "--json").stdout)
    assert [c["client_id"] for c in listed] == [creds["client_id"]]
    assert creds["client_secret"] not in (tmp_path / "data" / "ledger.sqlite3").read_text(
        errors="ignore"
    )
    assert cli(env, "clients", "revoke", creds["client_id"]).returncode == 0
    assert cli(env, "clients", "revoke", creds["client_id"]).returncode == 1

    out = cli(
        env,
        "managers",
        "add",
        "m-1",
        "--name",
        "Ann",
        "--badge",
        "04:A2:2B:1A",
        "--pin-stdin",
        stdin="482913\n",
    )
    assert out.returncode == 0, out.stderr
    managers = json.loads(cli(env, "managers", "list", "--json").stdout)
    assert managers == [
        {"manager_id": "m-1", "name": "Ann", "pin": True, "badge": True, "locked_until": None}
    ]
    assert (
        cli(env, "managers", "add", "m-2", "--name", "B", "--pin-stdin", stdin="12\n").returncode
        != 0
    )
    assert cli(env, "managers", "remove", "m-1").returncode == 0

    assert cli(env, "audit", "verify").returncode == 0
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3")
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("""UPDATE audit_log SET detail = '{"role":"admin"}' WHERE seq = 2""")
    db.commit()
    out = cli(env, "audit", "verify")
    assert out.returncode == 1
    assert "record 2: content does not match its hash (edited)" in out.stderr


def test_audit_verify_finds_deleted_and_inserted_records(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data", free_port())
    for role in ("register", "handheld", "monitor"):
        add_client(env, role)
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3")
    db.execute("DROP TRIGGER audit_log_no_delete")
    db.execute("DELETE FROM audit_log WHERE seq = 3")
    db.commit()
    out = cli(env, "audit", "verify")
    assert out.returncode == 1
    assert "records removed from the end" in out.stderr
    db.execute(
        "INSERT INTO audit_log SELECT 3, at, actor, action, 'forged', detail, prev_hash, "
        "hash FROM audit_log WHERE seq = 2"
    )
    db.execute("DELETE FROM audit_log WHERE seq = 2")
    db.commit()
    out = cli(env, "audit", "verify")
    assert "record 3: expected sequence 2 (records missing)" in out.stderr


def test_config_check_names_each_bad_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('store_id = "0042"\n[refunds]\napproval_threshold = { USD = "150.00" }\n')
    env = env_for(tmp_path / "data", free_port())
    del env["EDGE_LAN__PORT"]  # the environment overrides the file; here the file speaks
    out = cli(env, "config", "check", str(good))
    assert out.returncode == 0, out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'store_id = "no spaces allowed"\nbogus = 1\n[lan]\nport = 70000\n'
        '[refunds]\napproval_threshold = { USD = 100.0 }\ntender_refund_order = ["card"]\n'
    )
    out = cli(env, "config", "check", str(bad))
    assert out.returncode == 1
    for key in (
        "store_id",
        "bogus",
        "lan.port",
        "refunds.approval_threshold.USD",
        "refunds.tender_refund_order",
    ):
        assert f": {key}: " in out.stderr, (key, out.stderr)
    out = cli({**env, "EDGE_LAN__PORT": "nope"}, "config", "check", str(good))
    assert "lan.port" in out.stderr
