"""Where an MQTT broker is and how to reach it: shared by the gateway's HQ link and the HQ
service, so both speak to a broker the same way (TLS, credentials, protocol, backoff)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    """TLS to the broker; a client certificate makes it mutual TLS.

    `min_version = "1.3"` refuses a broker that cannot do TLS 1.3 (the handshake fails and
    the link says so); the default accepts TLS 1.2 too.
    """

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"

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
