"""What the API handlers need from the rest of the daemon, handed in by the composition root."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from edge.api.auth import Authenticator, Principal, require_role
from edge.api.body import read_body
from edge.api.metrics import ApiMetrics
from edge.api.pin_check import ManagerLocks
from edge.api.problems import ProblemError, from_validation
from edge.bus import EventBus
from edge.canonical import canonical_json
from edge.contract.payloads import AlertMsg
from edge.domain.views import SaleView
from edge.lanes.router import DeviceHealth
from edge.ledger.ledger import Ledger
from edge.ledger.refunds import RefundRules
from edge.settings import Settings

M = TypeVar("M", bound=BaseModel)


class HqLinkView(Protocol):
    """The HQ link as the API sees it: whether HQ can confirm, online-order look-up, and
    the reconciliation checkpoint run on demand."""

    @property
    def online(self) -> bool: ...

    @property
    def state(self) -> str: ...

    async def lookup_order(self, code: str) -> SaleView | None: ...

    async def run_checkpoint(self) -> str:
        """Run the reconciliation checkpoint now; the id of its report."""
        ...


class LinkDetails(Protocol):
    """What the status page and /metrics show of the HQ link besides its state."""

    @property
    def state_since(self) -> float:
        """When the link last went online or offline (Unix time)."""
        ...

    @property
    def last_ack_at(self) -> float | None:
        """When HQ last acked an event since the gateway started (Unix time)."""
        ...

    def open_alerts(self) -> list[AlertMsg]: ...


class LaneActivity(Protocol):
    """Devices and lanes as the status page and /metrics see them (the lane router)."""

    @property
    def health(self) -> Mapping[str, DeviceHealth]: ...

    @property
    def lane_scans(self) -> Mapping[str, int]: ...

    @property
    def last_scan_at(self) -> Mapping[str, datetime]: ...


class GrantRedeemer(Protocol):
    def lane_of(self, grant: str) -> str | None: ...

    def redeem(self, grant: str, lane: str) -> str | None: ...

    def restore(self, grant: str) -> None: ...


@dataclass
class ApiContext:
    settings: Settings
    ledger: Ledger
    auth: Authenticator
    bus: EventBus
    link: HqLinkView
    metrics: ApiMetrics
    grants: GrantRedeemer | None = None
    in_flight: dict[tuple[str, str], str] = field(default_factory=dict)
    pin_locks: ManagerLocks = field(default_factory=ManagerLocks)
    extra_ready_checks: list[Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]] = field(
        default_factory=list
    )
    # SHA-256 of the LAN API's TLS certificate ("AB:CD:..."), shown so registers can pin
    # it; None while the API serves plain HTTP.
    tls_fingerprint: str | None = None
    # For the status page and /metrics: the HQ link's since/last-ack/alerts, and the
    # devices' states and the lanes' scans (None: not shown).
    link_details: LinkDetails | None = None
    lanes: LaneActivity | None = None

    @cached_property
    def refund_rules(self) -> RefundRules:
        """The refund rules of the settings, made once (the settings do not change)."""
        r = self.settings.refunds
        o = self.settings.offline
        return RefundRules(
            window_days=r.return_window_days,
            approval_thresholds=r.approval_threshold,
            tender_order=r.tender_refund_order,
            refund_shipping=r.refund_shipping,
            store_credit_prefix=r.store_credit_prefix,
            offline_per_refund=o.max_card_refund,
            offline_pending_cap=o.max_card_pending_total,
        )

    async def principal(self, request: web.Request, roles: frozenset[str]) -> Principal:
        principal = await self.auth.authenticate(request)
        require_role(principal, roles)
        return principal


async def read_json(request: web.Request) -> Any:
    """The body as JSON, read within the deadline and size limit (see `edge.api.body`).

    Besides syntax errors, `json` raises ValueError for bytes that are not UTF-8 and for
    integer literals past Python's digit limit, and RecursionError for deep nesting.
    """
    raw = await read_body(request)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ProblemError(
            "validation-failed",
            "the body is not valid JSON",
            errors=[{"field": "(body)", "message": "not valid JSON"}],
        ) from None


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


def fingerprint(payload: Any) -> str:
    """What an Idempotency-Key or a sale id stands for: the hash of the request's canonical
    JSON (the same text for the same request across versions: fingerprints are stored)."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class StandaloneLink:
    """No HQ link configured: nothing is confirmed by HQ, so refunds count as offline, and
    there is no HQ to hold an order this gateway does not: a look-up of one is `not-found`
    (a 503 would tell the register to retry something that can never succeed).

    The reconciliation checkpoint needs no HQ: `checkpoint`, handed in by the composition
    root, runs it on the ledger and publishes nothing; runs take turns. Without one, a
    run is `hq-unreachable`."""

    online = False
    state = "not-configured"
    last_ack_at = None

    def __init__(self, checkpoint: Callable[[], Awaitable[str]] | None = None) -> None:
        self._checkpoint = checkpoint
        self._turn = asyncio.Lock()
        self.state_since = time.time()

    def open_alerts(self) -> list[AlertMsg]:
        return []

    async def lookup_order(self, code: str) -> SaleView | None:
        return None

    async def run_checkpoint(self) -> str:
        if self._checkpoint is None:
            raise ProblemError(
                "hq-unreachable", "no HQ link is configured to run the reconciliation checkpoint"
            )
        async with self._turn:
            return await self._checkpoint()
