"""The `[hq]` configuration: which broker, how to authenticate, and how the link behaves.

The defaults connect to a broker on the gateway itself (127.0.0.1:1883, the mosquitto that
`scripts/setup` installs), so a fresh install works without a config file. Timings are
chosen so that a lost ack costs seconds, not minutes, and thousands of stores returning
after a regional outage spread their reconnects over the backoff window.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from edge.domain.money import ZERO, currency_exponent
from edge.mqtt.settings import BrokerSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        msg = 'write amounts as quoted strings (e.g. "10.00"); floats lose cents'
        raise ValueError(msg)
    return value


def _check_currency(code: str) -> str:
    currency_exponent(code)
    return code


_Threshold = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0)]
_Currency = Annotated[str, AfterValidator(_check_currency)]


class ReconSettings(_Section):
    """The `[recon]` section: how the gateway checks HQ's digests and runs its own
    checkpoint (contract v1.1 "Reconciliation"). Limits are checked before a digest is
    parsed, so one oversized message cannot exhaust the gateway's memory."""

    settle_within_s: float = Field(86_400.0, gt=0, le=90 * 86_400)
    checkpoint_interval_s: float = Field(3600.0, gt=0, le=7 * 86_400)
    # Alert when a mismatch's amount at risk is above this, per currency; a currency not
    # listed alerts on any amount above zero. `unconfirmed` always alerts.
    alert_amount: dict[_Currency, _Threshold] = Field(default_factory=dict)
    digest_max_entries: int = Field(5_000, ge=1, le=5_000)
    digest_max_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)

    def alert_threshold(self, currency: str) -> Decimal:
        """The amount above which a mismatch in `currency` raises an alert."""
        return self.alert_amount.get(currency, ZERO)
