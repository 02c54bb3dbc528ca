"""A simulated register for the demo: records sales and refunds through the real LAN API and
prints each refund as HQ settles or declines it.

Every fourth customer paid with a card token the simulated processor declines, so the
demo shows both outcomes; with HQ's demo orders loaded, every fifth customer brings back
an online order that the gateway has to ask HQ for.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

import aiohttp

STATUS_CHECK_LIMIT = 50


class _Register:
    def __init__(self, http: aiohttp.ClientSession, url: str, client: tuple[str, str]) -> None:
        self._http = http
        self._url = url.rstrip("/")
        self._client = client
        self._token = ""

    async def login(self) -> None:
        async with self._http.post(
            f"{self._url}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": aiohttp.encode_basic_auth(*self._client)},
        ) as resp:
            resp.raise_for_status()
            self._token = (await resp.json())["access_token"]

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        for _ in range(2):
            headers = {"Authorization": f"Bearer {self._token}"}
            if key:
                headers["Idempotency-Key"] = key
            async with self._http.request(
                method, f"{self._url}{path}", json=body, headers=headers
            ) as resp:
                if resp.status == 401:
                    await self.login()
                    continue
                return resp.status, await resp.json(content_type=None)
        return 401, {}


def _sale(n: int, run: str) -> dict[str, Any]:
    declined = n % 4 == 0
    return {
        "sale_id": f"DEMO-{run}-{n:05d}",
        "channel": "store",
        "register_id": "demo-lane-1",
        "occurred_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "currency": "USD",
        "lines": [
            {
                "line_id": "1",
                "sku": "TSHIRT-M-BLK",
                "description": "T-shirt",
                "quantity": 2,
                "unit_price": "19.99",
                "tax": "3.20",
            }
        ],
        "tenders": [
            {
                "tender_id": "t1",
                "type": "card",
                "amount": "43.18",
                "payment_token": f"tok_decline_{n}" if declined else f"tok_demo_{n}",
                "last4": "4242",
            }
        ],
    }


async def run_register(
    url: str,
    client_id: str,
    secret: str,
    stop: asyncio.Event,
    *,
    every_s: float,
    count: int,
    online_prefix: str,
    out: TextIO,
) -> int:
    run = uuid.uuid4().hex[:6].upper()
    waiting: dict[str, str] = {}
    async with aiohttp.ClientSession() as http:
        register = _Register(http, url, (client_id, secret))
        await register.login()
        n = 0
        while not stop.is_set() and (count == 0 or n < count):
            n += 1
            sale_id = await _customer(register, n, run, online_prefix, out)
            if sale_id is not None:
                status, refund = await register.call(
                    "POST",
                    "/v1/refunds",
                    {"sale_id": sale_id, "lines": [{"line_id": "1", "quantity": 1}]},
                    key=secrets.token_urlsafe(18),  # no digit run a card guard could refuse
                )
                if status == 201:
                    waiting[refund["return_id"]] = refund["status"]
                    offline = " (offline: HQ unreachable)" if refund["offline"] else ""
                    print(
                        f"  refund {refund['return_id']} {refund['total']} USD"
                        f" {refund['status']}{offline}",
                        file=out,
                        flush=True,
                    )
                else:
                    print(
                        f"  refund refused: {refund.get('title')}: {refund.get('detail')}",
                        file=out,
                        flush=True,
                    )
            await _report(register, waiting, out)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await stop.wait()
        await _report(register, waiting, out)
    return 0


async def _customer(
    register: _Register, n: int, run: str, online_prefix: str, out: TextIO
) -> str | None:
    if online_prefix and n % 5 == 0:
        code = f"{online_prefix}{(n // 5 - 1) % 10 + 1:03d}"
        status, body = await register.call("POST", "/v1/returns/lookup", {"code": code})
        if status != 200:
            print(f"customer {n}: online order {code}: {body.get('title')}", file=out, flush=True)
            return None
        print(f"customer {n}: online order {code} found ({body['source']})", file=out, flush=True)
        return str(body["sale"]["sale_id"])
    sale = _sale(n, run)
    status, body = await register.call("POST", "/v1/sales", sale)
    if status not in (200, 201):
        print(f"customer {n}: sale refused: {body.get('detail')}", file=out, flush=True)
        return None
    print(f"customer {n}: sale {sale['sale_id']} 43.18 USD by card", file=out, flush=True)
    return str(sale["sale_id"])


async def _report(register: _Register, waiting: dict[str, str], out: TextIO) -> None:
    """Print refunds whose status changed since the register recorded them."""
    for return_id in list(waiting)[:STATUS_CHECK_LIMIT]:
        status, refund = await register.call("GET", f"/v1/refunds/{return_id}")
        if status != 200 or refund["status"] == waiting[return_id]:
            continue
        del waiting[return_id]
        if refund["status"] == "settled":
            print(
                f"  HQ settled {return_id}: processor {refund['processor_ref']},"
                f" ERP {refund['erp_ref']}",
                file=out,
                flush=True,
            )
        else:
            print(f"  HQ declined {return_id}: {refund['decline_reason']}", file=out, flush=True)
