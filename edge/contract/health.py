"""What a gateway says about itself: its birth and Will on `state`, and the retained `health`.

These are the payloads as the gateway sends them, field for field and in the same order; an
HQ may read them with the same models. Device kinds and states, link states and error
counter names are open sets (plain strings): a newer gateway may add one, and an older HQ
must still read its health.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.contract.payloads import AlertMsg
from edge.contract.wire_types import Instant, WireModel


class BirthMsg(WireModel):
    """Retained on `state` right after every CONNACK; `bd_seq` is one higher per connection
    (kept across restarts) and equals the Will's registered for the same connection."""

    state: Literal["online"] = "online"
    version: str
    started_at: Instant
    bd_seq: int = Field(ge=0)
    protocol: str | None = Field(None, description='MQTT version in use: "5" or "3.1.1"')


class WillMsg(WireModel):
    """The Will registered at CONNECT, and the clean goodbye: retained on `state`. A reader
    that saw an `online` with a higher `bd_seq` is looking at a late Will and ignores it."""

    state: Literal["offline"] = "offline"
    bd_seq: int = Field(ge=0)


class LinkHealth(WireModel):
    state: str = Field(description='"online", "connecting" or "offline: <reason>"')
    protocol: str
    connected_since: Instant | None


class OutboxHealth(WireModel):
    pending: int = Field(ge=0)
    oldest_pending_age_s: float | None
    last_seq: int = Field(ge=0)
    in_flight: int = Field(ge=0)
    high_water: int = Field(ge=0)


class RelayHealth(WireModel):
    """Counters since the gateway started."""

    published: int = Field(ge=0)
    resent: int = Field(ge=0)
    acked: int = Field(ge=0)
    followups: int = Field(ge=0)


class DeviceHealth(WireModel):
    """The last status a device reported."""

    kind: str = Field(description="keyboard, serial, nfc or pcsc")
    lane: str | None
    state: str = Field(description="connected, disconnected or error")
    detail: str
    at: Instant


class ReconHealth(WireModel):
    """Reconciliation at a glance (contract v1.1): open mismatches by kind and class,
    reopenings ever, and when the last report was made and the next checkpoint is due."""

    open_mismatches: int = Field(ge=0)
    by_kind: dict[str, int]
    by_class: dict[str, int]
    reopened_total: int = Field(ge=0)
    last_report_at: Instant | None
    next_checkpoint_at: Instant | None


class HealthMsg(WireModel):
    """Retained on `health` (QoS 0) every `health_interval_s`, on connect and on the
    `health` command: what a fleet operator needs to judge one store at a glance."""

    at: Instant
    version: str
    link: LinkHealth
    outbox: OutboxHealth
    last_hq_ack_at: Instant | None
    relay: RelayHealth
    refunds_today: int = Field(ge=0)
    refunds_awaiting_hq: int = Field(ge=0)
    devices: dict[str, DeviceHealth]
    disk_free_bytes: int = Field(ge=0)
    db_bytes: int = Field(ge=0)
    errors: dict[str, int] = Field(description="counters since start, by name")
    alerts_open: list[AlertMsg]
    uptime_s: float = Field(ge=0)
    recon: ReconHealth | None = Field(
        None, description="added in v1.1; null from a gateway that does not reconcile"
    )
