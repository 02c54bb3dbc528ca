"""The real daemon with real readers: a serial scan and a manager badge reach the lane's
register over its WebSocket, and the badge's grant approves exactly one refund on that lane.

This goes through the composition root (`edge-gateway run` in a subprocess): pcscd with the
vpcd virtual reader for the badge, a socat pty for the serial scanner, the operator CLI for
the manager and the register's client, and the audit trail and refund rows on disk after.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.lanes.approvals import badge_fingerprint
from tests.core.conftest import sale
from tests.core.daemon import ReadySocket, add_client, cli, env_for, free_port, start

from .conftest import WAIT_S, PtyPair
from .vpcd_card import VirtualCard

BADGE = "04A1B2C3D4E5F6"
SALE_ID = "0042-03-20261122-0007"


@pytest.fixture
def ready(tmp_path: Path) -> Iterator[ReadySocket]:
    sock = ReadySocket(tmp_path)
    yield sock
    sock.close()


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str, **fields: str) -> Any:
    """The next message of `kind` (with these field values), skipping others."""
    async with asyncio.timeout(WAIT_S * 2):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message


def refund(grant: str, register_id: str | None, quantity: int = 1) -> dict[str, Any]:
    return {
        "sale_id": SALE_ID,
        "lines": [{"line_id": "1", "quantity": quantity, "reason": "damaged", "restock": False}],
        "refund_to": "store_credit",
        "register_id": register_id,
        "approval": {"grant": grant},
    }


async def test_serial_scan_and_badge_approval_through_the_daemon(
    tmp_path: Path, ready: ReadySocket, vpcd: int, pty_pair: PtyPair
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[[devices.serial]]
id = "lane3-serial"
lane = "lane-3"
port = "{pty_pair.port}"

[[devices.pcsc]]
id = "lane3-badge"
lane = "lane-3"
reader = "Virtual PCD 00 00"
mode = "approvals"
"""
    )
    port = free_port()
    env = env_for(tmp_path / "data", port, NOTIFY_SOCKET=ready.path, EDGE_CONFIG=str(config))
    env["EDGE_HQ__ENABLED"] = "false"  # the HQ link has tests of its own, with a broker
    added = cli(env, "managers", "add", "m-17", "--name", "Dana", "--badge", BADGE, "--no-pin")
    assert added.returncode == 0, added.stderr
    creds = add_client(env)
    proc = start(env, tmp_path / "daemon.log")
    base = f"http://127.0.0.1:{port}"
    card = VirtualCard(vpcd, BADGE)
    try:
        await asyncio.to_thread(ready.wait_for, "READY=1")
        async with aiohttp.ClientSession() as http:
            basic = {
                "Authorization": aiohttp.encode_basic_auth(
                    creds["client_id"], creds["client_secret"]
                )
            }
            async with http.post(
                f"{base}/oauth/token", data={"grant_type": "client_credentials"}, headers=basic
            ) as r:
                bearer = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
            async with http.post(f"{base}/v1/sales", json=sale(), headers=bearer) as r:
                assert r.status == 201, await r.text()
            # after=0: the replay shows the readers' device.status from before we connected
            async with http.ws_connect(
                f"{base}/v1/events?lane=lane-3&after=0", headers=bearer
            ) as ws:
                connected: set[str] = set()
                while connected != {"lane3-serial", "lane3-badge"}:  # in either order
                    status = await next_of(ws, "device.status", state="connected")
                    connected.add(status["device"])

                pty_pair.write(b"]C1010950600013435210ABC\x1d17261231\r")
                scan = await next_of(ws, "scan")
                assert set(scan) == {
                    "type", "id", "lane", "device", "symbology", "data", "parsed", "at",
                }  # fmt: skip
                assert (scan["lane"], scan["device"], scan["symbology"]) == (
                    "lane-3",
                    "lane3-serial",
                    "gs1-128",
                )
                assert scan["parsed"]["batch"] == "ABC"

                card.insert()
                granted = await next_of(ws, "approval.granted")
                await asyncio.to_thread(card.remove)
            assert (granted["lane"], granted["manager_id"]) == ("lane-3", "m-17")
            grant = granted["grant"]

            async def post_refund(
                key: str, register_id: str | None, quantity: int = 1
            ) -> tuple[int, Any]:
                headers = {**bearer, "Idempotency-Key": key}
                body = refund(grant, register_id, quantity)
                async with http.post(f"{base}/v1/refunds", json=body, headers=headers) as r:
                    return r.status, await r.json()

            status, body = await post_refund("no-lane", None)
            assert (status, body["type"].rsplit("/", 1)[-1]) == (403, "approval-required")
            status, body = await post_refund("too-many", "lane-3", quantity=10_000)
            assert (status, body["type"].rsplit("/", 1)[-1]) == (409, "quantity-exceeds-returnable")
            # the refused refund wrote nothing, so the grant is still good for this one
            status, first = await post_refund("lane-3-a", "lane-3")
            assert status == 201, first
            status, body = await post_refund("lane-3-b", "lane-3")
            assert (status, body["type"].rsplit("/", 1)[-1]) == (403, "approval-required")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, WAIT_S * 4) == 0
    finally:
        card.remove()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(tmp_path / "data" / "ledger.sqlite3") as db:
        (approved_by,) = db.execute(
            "SELECT approved_by FROM returns WHERE return_id = ?", (first["return_id"],)
        ).fetchone()
        audit = db.execute(
            "SELECT action, subject, detail FROM audit_log WHERE action = 'approval.grant_issued'"
        ).fetchall()
    assert approved_by == "m-17"
    assert len(audit) == 1
    _, subject, detail = audit[0]
    assert subject == "m-17"
    assert json.loads(detail)["badge"] == badge_fingerprint(BADGE)
    assert BADGE not in detail
