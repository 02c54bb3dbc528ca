"""A register that knows only the contract: badge grants without `register_id`, lane-bound
clients, replay to the next subscriber, and one NFC reader serving badges and tags.

The reader is nfcpy's UDP radio with an emulated NFC Forum Type 3 tag (the only part of the
chain that cannot run here is the radio itself); the gateway reads it through its own
device path, configured as store IT would in the TOML file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ndef
import pytest

from tests.brokers import Broker
from tests.devices.nfc_emulator import EmulatedType3Tag, free_udp_port

from .peers import ContractHq, Gateway, contract_sale, next_message, slug

BADGE = "03FEFFE011223344"
TAG = "0102030405060708"
SALE_ID = "0042-03-20261122-0007"


@pytest.fixture
async def radio() -> AsyncIterator[Callable[[str, list[Any]], EmulatedType3Tag]]:
    """Presents emulated tags to one UDP radio port; removes them after the test."""
    port = free_udp_port()
    presented: list[EmulatedType3Tag] = []

    def present(uid: str, records: list[Any]) -> EmulatedType3Tag:
        tag = EmulatedType3Tag(port, uid, records)
        presented.append(tag)
        tag.present()
        return tag

    present.port = port  # type: ignore[attr-defined]
    yield present
    for tag in presented:
        await asyncio.to_thread(tag.remove)


def with_reader(gateway: Gateway, port: int, lane: str = "lane-3") -> None:
    gateway.config += (
        f'[[devices.nfc]]\nid = "{lane}-nfc"\nlane = "{lane}"\n'
        f'path = "udp:127.0.0.1:{port}"\ntargets = ["212F"]\nreconnect_s = 0.05\n'
    )
    gateway.cli("managers", "add", "m-17", "--name", "Dana", "--badge", BADGE, "--no-pin")


def refund_with(grant: str) -> dict[str, Any]:
    """A refund as the contract writes it: no register_id, store credit, the grant."""
    return {
        "sale_id": SALE_ID,
        "lines": [{"line_id": "1", "quantity": 1, "reason": "damaged", "restock": False}],
        "refund_to": "store_credit",
        "approval": {"grant": grant},
    }


async def take_grant(
    present: Callable[[str, list[Any]], EmulatedType3Tag], ws: Any
) -> dict[str, Any]:
    tag = present(BADGE, [])
    granted = await next_message(ws, "approval.granted")
    await asyncio.to_thread(tag.remove)
    return granted


async def test_badge_grant_redeemed_without_register_id_once(
    gateway: Gateway, broker: Broker, radio: Any
) -> None:
    with_reader(gateway, radio.port)
    register = gateway.add_client("lane-3-app", lane="lane-3")
    with ContractHq(broker.port):
        gateway.start()
        async with register:
            status, _ = await register.call("POST", "/v1/sales", contract_sale(SALE_ID))
            assert status == 201
            async with register.events("lane-3") as ws:
                granted = await take_grant(radio, ws)
            assert granted["lane"] == "lane-3"
            status, refund = await register.refund(refund_with(granted["grant"]), "g-1")
            assert status == 201, refund
            status, again = await register.refund(refund_with(granted["grant"]), "g-2")
            assert (status, slug(again)) == (403, "approval-required")
    assert BADGE not in gateway.log()


async def test_lane_bound_client_is_refused_another_lanes_events_and_grant(
    gateway: Gateway, broker: Broker, radio: Any
) -> None:
    with_reader(gateway, radio.port)
    lane3 = gateway.add_client("lane-3-app", lane="lane-3")
    lane4 = gateway.add_client("lane-4-app", lane="lane-4")
    with ContractHq(broker.port):
        gateway.start()
        async with lane3, lane4:
            status, _ = await lane3.call("POST", "/v1/sales", contract_sale(SALE_ID))
            assert status == 201
            status, problem = await lane4.call("GET", "/v1/events?lane=lane-3")
            assert (status, slug(problem)) == (403, "forbidden")
            async with lane3.events("lane-3") as ws:
                granted = await take_grant(radio, ws)
            status, refused = await lane4.refund(refund_with(granted["grant"]), "l4-1")
            assert (status, slug(refused)) == (403, "approval-required")
            mismatch = {**refund_with(granted["grant"]), "register_id": "lane-4"}
            status, refused = await lane3.refund(mismatch, "l3-mismatch")
            assert (status, slug(refused)) == (403, "approval-required")
            status, refund = await lane3.refund(refund_with(granted["grant"]), "l3-1")
            assert status == 201, refund  # the refusals did not spend it


async def test_scan_made_while_no_register_listens_reaches_the_next_one(
    gateway: Gateway, broker: Broker, radio: Any
) -> None:
    with_reader(gateway, radio.port)
    register = gateway.add_client("lane-3-app", lane="lane-3")
    with ContractHq(broker.port):
        gateway.start()
        async with register:
            await register.wait_until(  # /readyz shows each reader's state (docs/api.md)
                "/readyz", lambda r: r["devices"]["lane-3-nfc"]["state"] == "connected"
            )
            tag = radio(TAG, [ndef.UriRecord("https://example.com/r/1")])
            assert await asyncio.to_thread(tag.activated.wait, 15)
            status, problem = await register.call("GET", "/v1/events?lane=lane-3")
            assert status == 400, problem  # a plain GET is not a subscription
            async with register.events("lane-3") as ws:  # no `after`: the app restarted
                scan = await next_message(ws, "scan")
                assert (scan["lane"], scan["symbology"], scan["data"]) == ("lane-3", "nfc", TAG)
                ids_seen = {scan["id"]}
                await asyncio.to_thread(tag.remove)
                second = radio("0A0B0C0D0E0F1011", [])
                later = await next_message(ws, "scan")
                assert later["id"] not in ids_seen  # the held scan is not delivered again
                await asyncio.to_thread(second.remove)
            async with register.events("lane-3", after=scan["id"]) as ws:
                replayed = await next_message(ws, "scan")
                assert replayed["id"] == later["id"]  # `after` works as before


async def test_one_reader_serves_badges_and_customer_tags(
    gateway: Gateway, broker: Broker, radio: Any, tmp_path: Path
) -> None:
    with_reader(gateway, radio.port)
    register = gateway.add_client("lane-3-app", lane="lane-3")
    with ContractHq(broker.port):
        gateway.start()
        async with register, register.events("lane-3") as ws:
            received: list[dict[str, Any]] = []
            tag = radio(TAG, [ndef.UriRecord("https://example.com/r/1"), ndef.TextRecord("hi")])
            scan = await next_message(ws, "scan")
            received.append(scan)
            await asyncio.to_thread(tag.remove)
            granted = await take_grant(radio, ws)
            received.append(granted)
    assert (scan["symbology"], scan["data"]) == ("nfc", TAG)
    assert scan["parsed"]["uid"] == TAG
    assert scan["parsed"]["ndef"][0] == {"type": "uri", "uri": "https://example.com/r/1"}
    assert scan["parsed"]["ndef"][1]["type"] == "text"
    assert scan["parsed"]["ndef"][1]["text"] == "hi"
    assert granted["grant"]
    assert BADGE not in json.dumps(received)  # a badge's UID never reaches a register
    assert BADGE not in gateway.log()
