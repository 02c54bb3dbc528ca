"""The `[hq]` configuration: which broker, how to authenticate, and how the link behaves.

The defaults connect to a broker on the gateway itself (127.0.0.1:1883, the mosquitto that
`scripts/setup` installs), so a fresh install works without a config file. Timings are
chosen so that a lost ack costs seconds, not minutes, and thousands of stores returning
after a regional outage spread their reconnects over the backoff window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    """TLS to the broker (TLS 1.2 or newer); a client certificate makes it mutual TLS."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            msg = "cert_file and key_file go together (mutual TLS needs both)"
            raise ValueError(msg)
        return self


class BrokerSettings(_Section):
    """Where the MQTT broker is and how to reach it; shared by the gateway and the HQ service."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings = Field(default_factory=TlsSettings)
    keepalive_s: int = Field(30, ge=5, le=3600)
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    backoff_initial_s: float = Field(1.0, gt=0, le=600)
    backoff_max_s: float = Field(60.0, gt=0, le=3600)
    stable_after_s: float = Field(10.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.backoff_max_s < self.backoff_initial_s:
            msg = "backoff_max_s must not be below backoff_initial_s"
            raise ValueError(msg)
        return self


class HqSettings(_Section):
    """The HQ link of one gateway."""

    enabled: bool = True
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    prefix: str = Field("retail/v1", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    health_interval_s: float = Field(30.0, gt=0, le=3600)
    window: int = Field(500, ge=1, le=1000)
    ack_timeout_s: float = Field(10.0, gt=0, le=3600)
    ack_silence_s: float = Field(20.0, gt=0, le=3600)
    require_hq_presence: bool = False  # opt-in refinement of `online`; never gates delivery
    settle_followup_s: float = Field(120.0, gt=0, le=86400)
    lookup_timeout_s: float = Field(2.0, gt=0, le=60)
    lookup_cache_s: float = Field(300.0, ge=0, le=86400)
    outbox_high_water: int = Field(10_000, ge=1)
    acked_retention_days: float = Field(7.0, ge=0, le=3650)
    prune_interval_s: float = Field(3600.0, gt=0, le=86400)
