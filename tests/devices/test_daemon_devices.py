"""The real daemon with real readers: a serial scan and a manager badge reach the lane's
register over its WebSocket, and the badge's grant approves exactly one refund on that lane;
one NFC reader on its default mode serves both jobs, badges and customers' tags.

This goes through the composition root (`edge-gateway run` in a subprocess): pcscd with the
vpcd virtual reader for the badge, nfcpy's UDP radio with emulated tags, a socat pty for the
serial scanner, the operator CLI for the manager and the register's client, and the audit
trail and refund rows on disk after.
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
import ndef
import pytest

from edge.lanes.approvals import badge_fingerprint
from tests.core.conftest import sale
from tests.core.daemon import ReadySocket, add_client, cli, env_for, free_port, start

from .conftest import WAIT_S, PtyPair
from .nfc_emulator import EmulatedType3Tag, free_udp_port
from .vpcd_card import VirtualCard

BADGE = "04A1B2C3D4E5F6"
SALE_ID = "0042-03-20261122-0007"


@pytest.fixture
def ready(tmp_path: Path) -> Iterator[ReadySocket]:
    sock = ReadySocket(tmp_path)
    yield sock
    sock.close()


async def next_of(
    ws: aiohttp.ClientWebSocketResponse,
    kind: str,
    seen: list[str] | None = None,
    **fields: str,
) -> Any:
    """The next message of `kind` (with these field values), skipping others; every message
    read is added to `seen` as it came."""
    async with asyncio.timeout(WAIT_S * 2):
        while True:
            text = await ws.receive_str()
            if seen is not None:
                seen.append(text)
            message = json.loads(text)
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

            status, body = await post_refund("other-lane", "lane-4")
            assert (status, body["type"].rsplit("/", 1)[-1]) == (403, "approval-required")
            status, body = await post_refund("too-many", "lane-3", quantity=10_000)
            assert (status, body["type"].rsplit("/", 1)[-1]) == (409, "quantity-exceeds-returnable")
            # the refused refunds wrote nothing, so the grant is still good for this one,
            # which, as the contract allows, names no register
            status, first = await post_refund("no-register-id", None)
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


async def test_one_nfc_reader_serves_both_jobs_through_the_daemon(
    tmp_path: Path, ready: ReadySocket
) -> None:
    badge_idm, tag_idm = "03FEFFE011223344", "0102030405060708"
    radio = free_udp_port()
    config = tmp_path / "gateway.toml"
    config.write_text(  # no mode: the default serves both jobs
        f"""
[[devices.nfc]]
id = "lane3-nfc"
lane = "lane-3"
path = "udp:127.0.0.1:{radio}"
targets = ["212F"]
"""
    )
    port = free_port()
    env = env_for(tmp_path / "data", port, NOTIFY_SOCKET=ready.path, EDGE_CONFIG=str(config))
    env["EDGE_LOGGING__LEVEL"] = "DEBUG"  # the most the log ever says
    added = cli(env, "managers", "add", "m-17", "--name", "Dana", "--badge", badge_idm, "--no-pin")
    assert added.returncode == 0, added.stderr
    creds = add_client(env)
    log = tmp_path / "daemon.log"
    proc = start(env, log)
    base = f"http://127.0.0.1:{port}"
    badge = EmulatedType3Tag(radio, badge_idm, [ndef.TextRecord("staff")])
    customer = EmulatedType3Tag(
        radio, tag_idm, [ndef.UriRecord("https://example.com/r/1"), ndef.TextRecord("hello")]
    )
    received: list[str] = []
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
            async with http.ws_connect(
                f"{base}/v1/events?lane=lane-3&after=0", headers=bearer
            ) as ws:
                await next_of(ws, "device.status", received, device="lane3-nfc", state="connected")
                badge.present()
                granted = await next_of(ws, "approval.granted", received)
                await asyncio.to_thread(badge.remove)
                customer.present()
                scan = await next_of(ws, "scan", received)
                await asyncio.to_thread(customer.remove)
            headers = {**bearer, "Idempotency-Key": "auto-reader"}
            body = refund(granted["grant"], "lane-3")
            async with http.post(f"{base}/v1/refunds", json=body, headers=headers) as r:
                assert r.status == 201, await r.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, WAIT_S * 4) == 0
    finally:
        for tag in (badge, customer):
            await asyncio.to_thread(tag.remove)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (granted["lane"], granted["manager_id"]) == ("lane-3", "m-17")
    assert {k: v for k, v in scan.items() if k not in ("id", "at")} == {
        "type": "scan",
        "lane": "lane-3",
        "device": "lane3-nfc",
        "symbology": "nfc",
        "data": tag_idm,
        "parsed": {
            "uid": tag_idm,
            "ndef": [
                {"type": "uri", "uri": "https://example.com/r/1"},
                {"type": "text", "text": "hello"},
            ],
        },
    }
    assert [m for m in received if '"scan"' in m] == [received[-1]], "the badge was no scan"
    assert not [m for m in received if badge_idm in m], "the register never sees the badge's UID"
    assert badge_idm not in log.read_text()
    with sqlite3.connect(tmp_path / "data" / "ledger.sqlite3") as db:
        audit = db.execute(
            "SELECT action, detail FROM audit_log WHERE action LIKE 'badge.%'"
            " OR action = 'approval.grant_issued'"
        ).fetchall()
    assert [(action, json.loads(detail)["badge"]) for action, detail in audit] == [
        ("approval.grant_issued", badge_fingerprint(badge_idm))
    ], "the customer's tag is not audited as a badge"
