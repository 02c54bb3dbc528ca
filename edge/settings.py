"""The one validated configuration: built-in defaults, then the TOML file, then `EDGE_*` env.

Every component receives the part it needs from here at construction; nothing reads the
environment or a global settings object later. Nested keys are overridden from the
environment with a double underscore: `EDGE_LAN__PORT=9090`.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.devices.settings import DevicesSettings
from edge.domain.money import currency_exponent
from edge.errors import ConfigError
from edge.hqlink.settings import HqSettings
from edge.lanes.settings import LanesSettings
from edge.validation import field_path

TenderType = Literal["card", "gift_card", "store_credit", "cash"]
TENDER_TYPES: tuple[TenderType, ...] = ("card", "gift_card", "store_credit", "cash")


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        msg = 'write amounts as quoted strings (e.g. "100.00"); floats lose cents'
        raise ValueError(msg)
    return value


def _check_currency(code: str) -> str:
    currency_exponent(code)
    return code


Amount = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0)]
CurrencyCode = Annotated[str, AfterValidator(_check_currency)]
PerCurrency = dict[CurrencyCode, Amount]


def default_data_dir() -> Path:
    """systemd's StateDirectory when run as a unit, else the user's XDG state dir."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edge-gateway"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LanSettings(_Section):
    bind: str = "0.0.0.0"  # noqa: S104 - registers reach the gateway over the store LAN
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (tests)
    max_body_bytes: int = Field(256 * 1024, ge=1024, le=16 * 1024 * 1024)
    token_ttl_s: int = Field(3600, ge=60, le=86400)
    shutdown_grace_s: float = Field(10.0, ge=0, le=120)
    # A connection must send a whole request head within this long of connecting or of its
    # last response (also the keep-alive idle time), and a body within `body_timeout_s`.
    header_timeout_s: float = Field(60.0, gt=0, le=600)
    body_timeout_s: float = Field(15.0, gt=0, le=600)
    max_subscribers_per_client: int = Field(8, ge=1, le=1000)


class RefundSettings(_Section):
    return_window_days: int = Field(30, ge=0, le=3650)
    approval_threshold: PerCurrency = Field(
        default_factory=lambda: {"USD": Decimal("100.00"), "EUR": Decimal("100.00")}
    )
    tender_refund_order: list[TenderType] = Field(default_factory=lambda: list(TENDER_TYPES))
    refund_shipping: bool = False
    store_credit_prefix: str = Field("SC", pattern=r"^[A-Z0-9]{1,6}$")

    @field_validator("tender_refund_order")
    @classmethod
    def _all_tenders_once(cls, order: list[str]) -> list[str]:
        if sorted(order) != sorted(TENDER_TYPES):
            msg = f"must list each of {', '.join(TENDER_TYPES)} exactly once"
            raise ValueError(msg)
        return order


class OfflineSettings(_Section):
    """How far card refunds may go while HQ cannot confirm them."""

    max_card_refund: PerCurrency = Field(default_factory=lambda: {"USD": Decimal("200.00")})
    max_card_pending_total: PerCurrency = Field(default_factory=lambda: {"USD": Decimal("2000.00")})


class IdempotencySettings(_Section):
    retention_hours: int = Field(48, ge=24, le=24 * 90)


class ManagerSettings(_Section):
    max_pin_failures: int = Field(5, ge=1, le=100)
    lockout_s: int = Field(300, ge=1, le=86400)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    store_id: str = Field("0001", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    gateway_id: str = Field("gw-01", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    data_dir: Path = Field(default_factory=default_data_dir)
    currency: CurrencyCode = "USD"
    lan: LanSettings = Field(default_factory=LanSettings)
    refunds: RefundSettings = Field(default_factory=RefundSettings)
    offline: OfflineSettings = Field(default_factory=OfflineSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    managers: ManagerSettings = Field(default_factory=ManagerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    devices: DevicesSettings = Field(default_factory=DevicesSettings)
    lanes: LanesSettings = Field(default_factory=LanesSettings)
    hq: HqSettings = Field(default_factory=HqSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ledger.sqlite3"


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Validate defaults + TOML file + environment; raise ConfigError naming each bad key."""
    if path is not None and not path.is_file():
        raise ConfigError([("(file)", f"{path} does not exist or is not a file")])
    cls: type[Settings] = Settings
    if path is not None:
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})
        cls = type("FileSettings", (Settings,), {"model_config": config})
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            [(field_path(err["loc"]), err["msg"]) for err in exc.errors(include_input=False)]
        ) from None
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise ConfigError([("(file)", str(exc))]) from None
