"""The gateway on the store LAN by name: a zeroconf (mDNS/DNS-SD) record registers find it by,
and the browse `edge-gateway discover` lists them with.

The record is `<store_id>-<gateway_id>._edge-gateway._tcp.local.` with the LAN API's port and
a TXT record telling how to reach and trust it: `scheme`, `tls_sha256` (the certificate's
fingerprint to pin), the ids, the version and the API's paths. Discovery is a convenience:
when the network has no multicast the gateway logs it once, counts it, and serves on.
python-zeroconf is loaded only when the gateway advertises or a command browses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, Metric

from edge.api.tls import interface_addresses, is_loopback
from edge.errors import EdgeError
from edge.settings import LanSettings, Settings

if TYPE_CHECKING:
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_edge-gateway._tcp.local."
MAX_INSTANCE_BYTES = 63  # a DNS label
REGISTER_TIMEOUT_S = 10.0
GOODBYE_TIMEOUT_S = 3.0
RESOLVE_TIMEOUT_MS = 2000


class DiscoveryError(EdgeError):
    """This machine cannot browse the LAN (no interface with an address, no multicast)."""


def should_advertise(lan: LanSettings) -> bool:
    """`on`, or `auto` while the API is bound to an address other machines can reach."""
    if lan.advertise == "auto":
        return not is_loopback(lan.bind)
    return lan.advertise == "on"


def instance_name(store_id: str, gateway_id: str) -> str:
    return f"{store_id}-{gateway_id}".encode()[:MAX_INSTANCE_BYTES].decode(errors="ignore")


def advertised_addresses(bind: str) -> list[str]:
    """The addresses the record lists: the bound one, or every interface's for a wildcard
    bind (loopback only when there is nothing else, e.g. in a namespace of its own)."""
    bound = _bound_ip(bind)
    if bound is not None and not bound.is_unspecified:
        return [str(bound)]
    with_v6 = bound is None or bound.version == 6
    found = [a for a in interface_addresses() if a.version == 4 or with_v6]
    outside = [a for a in found if not a.is_loopback]
    return list(dict.fromkeys(str(a) for a in (outside or found)))


@dataclass(frozen=True)
class GatewayRecord:
    """What a register learns from the record."""

    store_id: str
    gateway_id: str
    port: int
    scheme: str
    tls_sha256: str | None
    version: str
    addresses: list[str] = field(default_factory=list)
    host: str = ""
    path: str = "/"
    api: str = "/v1"

    @property
    def name(self) -> str:
        return instance_name(self.store_id, self.gateway_id)

    def txt(self) -> dict[str, str]:
        out = {
            "store_id": self.store_id,
            "gateway_id": self.gateway_id,
            "scheme": self.scheme,
            "version": self.version,
            "path": self.path,
            "api": self.api,
        }
        if self.tls_sha256:
            out["tls_sha256"] = self.tls_sha256
        return out

    def url(self) -> str:
        host = self.addresses[0] if self.addresses else self.host.rstrip(".")
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "store_id": self.store_id,
            "gateway_id": self.gateway_id,
            "host": self.host,
            "addresses": self.addresses,
            "port": self.port,
            "scheme": self.scheme,
            "tls_sha256": self.tls_sha256,
            "version": self.version,
            "path": self.path,
            "api": self.api,
            "url": self.url(),
        }


def gateway_record(
    settings: Settings, port: int, fingerprint: str | None, version: str
) -> GatewayRecord:
    """The record of this gateway serving on `port` (HTTPS when it has a `fingerprint`)."""
    return GatewayRecord(
        store_id=settings.store_id,
        gateway_id=settings.gateway_id,
        port=port,
        scheme="https" if fingerprint else "http",
        tls_sha256=fingerprint,
        version=version,
        addresses=advertised_addresses(settings.lan.bind),
        host=host_name(),
    )


class Advertiser:
    """Registers the record while the LAN API serves, with goodbye packets on exit.

    A collector for /metrics too: `edge_discovery_errors_total` counts what kept the record
    off the network (no multicast interface, a refused registration).
    """

    def __init__(self, record: GatewayRecord, bind: str) -> None:
        self._record = record
        self._bind = bind
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._announcing: asyncio.Future[Any] | None = None
        self.errors = 0
        self.registered_name: str | None = None

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "edge_discovery_errors",
            "Times the zeroconf record could not be registered or withdrawn",
        )
        family.add_metric([], self.errors)
        yield family

    def _failed(self, doing: str, exc: BaseException) -> None:
        self.errors += 1
        if self.errors == 1:
            log.warning(
                "zeroconf: could not %s (%s: %s); the LAN API serves on, registers need its"
                " address",
                doing,
                type(exc).__name__,
                exc,
            )

    async def __aenter__(self) -> Advertiser:
        from zeroconf import Error, IPVersion  # noqa: PLC0415 - only when advertising
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf  # noqa: PLC0415

        record = self._record
        bound = _bound_ip(self._bind)
        v6 = any(":" in a for a in record.addresses)
        try:
            if bound is not None and not bound.is_unspecified:
                self._zeroconf = AsyncZeroconf(interfaces=[str(bound)])
            else:
                self._zeroconf = AsyncZeroconf(ip_version=IPVersion.All if v6 else IPVersion.V4Only)
            self._info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{record.name}.{SERVICE_TYPE}",
                port=record.port,
                properties=record.txt(),
                server=record.host,
                parsed_addresses=record.addresses,
            )
            async with asyncio.timeout(REGISTER_TIMEOUT_S):
                announced = await self._zeroconf.async_register_service(
                    self._info, allow_name_change=True
                )
            self._announcing = asyncio.ensure_future(announced)
        except (OSError, RuntimeError, ValueError, TimeoutError, Error) as exc:
            self._failed("advertise the gateway", exc)
            await self._close()
            return self
        self.registered_name = self._info.name
        if self.registered_name != f"{record.name}.{SERVICE_TYPE}":
            log.warning(
                "zeroconf: %s is taken on this LAN; advertised as %s", record.name, self._info.name
            )
        log.info(
            "zeroconf: advertising %s on %s port %s",
            self.registered_name,
            ", ".join(record.addresses),
            record.port,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        from zeroconf import Error  # noqa: PLC0415 - loaded already when this has work

        zeroconf, self._zeroconf = self._zeroconf, None
        info, self._info = self._info, None
        announcing, self._announcing = self._announcing, None
        if zeroconf is None:
            return
        try:
            if announcing is not None and not announcing.done():
                announcing.cancel()
                await asyncio.wait([announcing], timeout=GOODBYE_TIMEOUT_S)
            if info is not None and self.registered_name is not None:
                async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                    await (await zeroconf.async_unregister_service(info))
        except (OSError, RuntimeError, TimeoutError, Error) as exc:
            self._failed("withdraw the record", exc)
        finally:
            self.registered_name = None
            with contextlib.suppress(OSError, RuntimeError):
                await zeroconf.async_close()


def _bound_ip(bind: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(bind.strip("[]"))
    except ValueError:
        return None


def host_name() -> str:
    """This machine's mDNS name, `<host>.local.`."""
    return f"{socket.gethostname().split('.')[0]}.local."


async def browse(timeout_s: float) -> list[GatewayRecord]:
    """The gateways that answer on the LAN within `timeout_s`, each resolved to a record."""
    from zeroconf import Error, ServiceStateChange  # noqa: PLC0415 - only when browsing
    from zeroconf.asyncio import (  # noqa: PLC0415
        AsyncServiceBrowser,
        AsyncServiceInfo,
        AsyncZeroconf,
    )

    found: dict[str, GatewayRecord] = {}
    pending: set[asyncio.Task[None]] = set()

    async def resolve(zc: Zeroconf, name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if await info.async_request(zc, RESOLVE_TIMEOUT_MS):
            record = record_of(info)
            if record is not None:
                found[name] = record

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            found.pop(name, None)
            return
        task = asyncio.get_running_loop().create_task(resolve(zeroconf, name), name="resolve")
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        aiozc = AsyncZeroconf()
    except (OSError, RuntimeError, Error) as exc:
        raise DiscoveryError(f"cannot browse the LAN: {exc}") from None
    async with aiozc:
        browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change])
        try:
            await asyncio.sleep(timeout_s)
        finally:
            await browser.async_cancel()
            if pending:
                await asyncio.wait(pending, timeout=RESOLVE_TIMEOUT_MS / 1000)
            for task in pending:
                task.cancel()
    return sorted(found.values(), key=lambda r: (r.store_id, r.gateway_id))


def record_of(info: AsyncServiceInfo) -> GatewayRecord | None:
    """A resolved service as a record; None when it is not a gateway's (no ids)."""
    txt = {
        key.decode(errors="replace"): (value or b"").decode(errors="replace")
        for key, value in info.properties.items()
    }
    if not txt.get("store_id") or not txt.get("gateway_id") or info.port is None:
        return None
    return GatewayRecord(
        store_id=txt["store_id"],
        gateway_id=txt["gateway_id"],
        port=info.port,
        scheme=txt.get("scheme", "http"),
        tls_sha256=txt.get("tls_sha256") or None,
        version=txt.get("version", ""),
        addresses=info.parsed_scoped_addresses(),
        host=info.server or "",
        path=txt.get("path", "/"),
        api=txt.get("api", "/v1"),
    )
