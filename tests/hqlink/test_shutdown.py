"""Shutdown is bounded whatever the broker does: the broker dies at the very moment the
gateway and three HQ instances get SIGTERM, under refund load, and every process still
exits within its grace period with its database closed cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import subprocess
import time
from pathlib import Path

import aiohttp

from tests.hqlink.broker import Mosquitto
from tests.hqlink.faults import record_sales
from tests.hqlink.harness import PREFIX, Gateway, HqService, Observer, Register

TOPICS = [f"{PREFIX}/+/+/acks", f"{PREFIX}/_hq/presence/+"]
GATEWAY_GRACE_S = 3.0  # lan.shutdown_grace_s for this test
# What a process may take after SIGTERM: its grace for in-flight requests, then the HQ
# link's bounded goodbye; the margin is for a loaded 2-core test machine.
BOUND_S = GATEWAY_GRACE_S + 8.0


async def keep_refunding(reg: Register, sale_ids: list[str], stop: asyncio.Event) -> int:
    """Refunds one after another until told to stop; errors are expected at the end."""
    done = 0
    while not stop.is_set():
        body = {
            "sale_id": sale_ids[done % len(sale_ids)],
            "lines": [{"line_id": "1", "quantity": 1}],
        }
        try:
            status, _ = await reg.call("POST", "/v1/refunds", body, key=secrets.token_urlsafe(18))
        except aiohttp.ClientError:
            return done
        if status == 201:
            done += 1
    return done


def exited_within(procs: list[subprocess.Popen[bytes]], seconds: float) -> list[float | None]:
    """Each process's time to exit after now (None: still running at the bound)."""
    start = time.monotonic()
    took: list[float | None] = []
    for proc in procs:
        try:
            proc.wait(max(0.0, seconds - (time.monotonic() - start)))
            took.append(time.monotonic() - start)
        except subprocess.TimeoutExpired:
            took.append(None)
    return took


async def test_broker_killed_with_sigterm_under_load_still_exits_in_time(
    tmp_path: Path, broker: Mosquitto
) -> None:
    gw = Gateway(tmp_path, broker.port, EDGE_LAN__SHUTDOWN_GRACE_S=str(GATEWAY_GRACE_S))
    hqs = [HqService(tmp_path, broker.port, f"hq-{n}") for n in range(3)]  # one HQ store
    stop = asyncio.Event()
    async with Observer(broker.port, TOPICS) as obs, aiohttp.ClientSession() as http:
        for hq in hqs:
            await hq.start(obs)
        await gw.start()
        try:
            reg = await Register(http, gw.url, gw.add_client()).login()
            sales = await record_sales(reg, 4)
            loads = [asyncio.create_task(keep_refunding(reg, sales, stop)) for _ in range(8)]
            await obs.wait_for(lambda: len(obs.acks) >= 50)  # HQ is settling under load
            procs = [p for p in (gw.proc, *(hq.proc for hq in hqs)) if p is not None]
            assert broker.proc is not None
            broker.proc.kill()  # the broker goes away at the same moment
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            took = await asyncio.to_thread(exited_within, procs, BOUND_S)
            stop.set()
            refunded = sum(await asyncio.gather(*loads))
        finally:
            for proc in (gw.proc, *(hq.proc for hq in hqs)):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            with contextlib.suppress(Exception):
                broker.stop()
    assert all(t is not None for t in took), f"still running {BOUND_S} s after SIGTERM: {took}"
    assert [p.returncode for p in procs] == [0] * len(procs), gw.log.read_text()[-3000:]
    assert refunded > 0
    wal = gw.db.with_name(gw.db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the ledger was closed cleanly"
    assert "stopped" in gw.log.read_text().splitlines()[-1]
    for hq in hqs:
        last = json.loads(hq.log.read_text().splitlines()[-1])  # JSON lines: not a tty
        assert last["msg"].endswith("stopped"), hq.log.read_text()[-2000:]
