"""The one validated configuration: built-in defaults, then the TOML file, then `EDGE_*` env.

Every component receives the part it needs from here at construction; nothing reads the
environment or a global settings object later. Nested keys are overridden from the
environment with a double underscore: `EDGE_LAN__PORT=9090`. Variable names are not
case-sensitive; one that names no setting is ignored (`EDGE_CONFIG` names the file); the
value of a whole section, table or list is JSON (`EDGE_LAN='{"port": 9090}'`,
`EDGE_REFUNDS__APPROVAL_THRESHOLD='{"USD": "50.00"}'`). The sources are merged key by key
(the file's `[lan] bind` survives `EDGE_LAN__PORT`) and validated once, with the standard
library's TOML reader and pydantic alone: no settings framework is loaded into the daemon.
"""

from __future__ import annotations

import json
import os
import tomllib
import types
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.contract.field_paths import field_path
from edge.devices.settings import DevicesSettings
from edge.domain.money import currency_exponent
from edge.errors import ConfigError
from edge.hqlink.settings import HqSettings, ReconSettings
from edge.lanes.settings import LanesSettings

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


def _check_zone(name: str) -> str:
    """An IANA time zone name ("Europe/Berlin") that zoneinfo finds."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, not a key, or not a file
        msg = f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin"
        raise ValueError(msg) from None
    return name


ZoneName = Annotated[str, Field(max_length=64), AfterValidator(_check_zone)]


def default_data_dir() -> Path:
    """systemd's StateDirectory when run as a unit, else the user's XDG state dir."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edge-gateway"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LanTlsSettings(_Section):
    """HTTPS on the store LAN (docs/lan-security.md).

    `auto` serves HTTPS unless the API is bound to loopback only; `on` always; `off` serves
    plain HTTP even on the LAN, for registers that cannot do TLS. Without `cert_file` and
    `key_file` the gateway makes a self-signed certificate under `<data_dir>/tls/`.
    """

    mode: Literal["auto", "on", "off"] = "auto"
    cert_file: Path | None = None
    key_file: Path | None = None
    min_version: Literal["1.2", "1.3"] = "1.3"

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> LanTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            msg = "cert_file and key_file go together"
            raise ValueError(msg)
        return self


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
    tls: LanTlsSettings = Field(default_factory=LanTlsSettings)
    # Zeroconf record `_edge-gateway._tcp` so registers find the gateway: `auto` while the
    # API is bound to a non-loopback address, `on` always, `off` never.
    advertise: Literal["auto", "on", "off"] = "auto"


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
    """docs/logging.md: `auto` writes one JSON object per line unless stderr is a terminal."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"
    json_lines: bool = False  # the older name: true means format = "json"

    @model_validator(mode="after")
    def _json_lines_means_json(self) -> LoggingSettings:
        if self.json_lines:
            if self.format == "text":
                msg = 'json_lines = true contradicts format = "text"; keep only format'
                raise ValueError(msg)
            self.format = "json"
        return self


class StorageSettings(_Section):
    """The data directory's disk: when `doctor` warns or fails on free space, and how often
    the gateway probes a disk that refused a write (docs/backup.md)."""

    free_warn_mb: int = Field(256, ge=0)
    free_fail_mb: int = Field(32, ge=0)
    probe_interval_s: float = Field(5.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _fail_below_warn(self) -> StorageSettings:
        if self.free_fail_mb > self.free_warn_mb:
            msg = "free_fail_mb must not be above free_warn_mb"
            raise ValueError(msg)
        return self


ENV_PREFIX = "EDGE_"
ENV_NESTED = "__"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    store_id: str = Field("0001", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    gateway_id: str = Field("gw-01", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    data_dir: Path = Field(default_factory=default_data_dir)
    currency: CurrencyCode = "USD"
    # The store's IANA time zone, for the times on the status page; None: the machine's own.
    timezone: ZoneName | None = None
    lan: LanSettings = Field(default_factory=LanSettings)
    refunds: RefundSettings = Field(default_factory=RefundSettings)
    offline: OfflineSettings = Field(default_factory=OfflineSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    managers: ManagerSettings = Field(default_factory=ManagerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    devices: DevicesSettings = Field(default_factory=DevicesSettings)
    lanes: LanesSettings = Field(default_factory=LanesSettings)
    hq: HqSettings = Field(default_factory=HqSettings)
    recon: ReconSettings = Field(default_factory=ReconSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ledger.sqlite3"


EXAMPLE_ID_KEYS = ("store_id", "gateway_id")


def example_ids(settings: Settings) -> list[str]:
    """`key = 'value'` for each identity key still at the example value: HQ tells gateways
    apart by these, so two left on the example would mix their events (the daemon warns
    at start, `doctor` warns)."""
    return [
        f"{key} = {getattr(settings, key)!r}"
        for key in EXAMPLE_ID_KEYS
        if getattr(settings, key) == Settings.model_fields[key].default
    ]


def load_settings(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Validate defaults + TOML file + environment (`environ`, default `os.environ`) +
    `overrides`, each source over the one before; raise ConfigError naming each bad key."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError([("(file)", f"{path} does not exist or is not a file")])
        try:
            data = tomllib.loads(path.read_bytes().decode())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([("(file)", f"{path}: {exc}")]) from None
    _merge(data, _from_environment(os.environ if environ is None else environ))
    _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [(field_path(err["loc"]), err["msg"]) for err in exc.errors(include_input=False)]
        ) from None


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """`EDGE_LAN__PORT=9090` as `{"lan": {"port": "9090"}}`, for pydantic to validate.

    Whole sections are applied before the keys inside them, so `EDGE_LAN__PORT` wins over a
    port in `EDGE_LAN`.
    """
    found: list[tuple[list[str], str, str]] = []
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split(ENV_NESTED)
        if keys[0] in Settings.model_fields and all(keys):
            found.append((keys, name, value))
    out: dict[str, Any] = {}
    for keys, name, value in sorted(found, key=lambda item: len(item[0])):
        parsed: Any = value
        if _structured(keys):
            try:
                parsed = json.loads(value)
            except ValueError:
                problem = f"{name} must be JSON for this setting"
                raise ConfigError([(field_path(keys), problem)]) from None
        _merge(out, _nest(keys, parsed))
    return out


def _structured(keys: list[str]) -> bool:
    """Whether the setting at `keys` is a section, a table or a list (given as JSON)."""
    annotation: Any = Settings
    for key in keys:
        model = _model_in(annotation)
        if model is None:  # a key inside a table: its values are plain
            return False
        field = model.model_fields.get(key)
        if field is None:  # not a setting: pydantic refuses it by name
            return False
        annotation = field.annotation
    return _model_in(annotation) is not None or _container(annotation)


def _unwrap(annotation: Any) -> list[Any]:
    """The types an annotation allows (`Annotated[...]` and `X | None` taken apart)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _unwrap(arg) if t is not type(None)]
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for option in _unwrap(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None


def _container(annotation: Any) -> bool:
    return any(
        (get_origin(option) or option) in (dict, list, tuple, set, frozenset)
        for option in _unwrap(annotation)
    )


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    for key in reversed(keys):
        value = {key: value}
    return dict(value)


def _merge(into: dict[str, Any], source: Mapping[str, Any]) -> None:
    """Merge `source` into `into` key by key; where both hold a table, recursively."""
    for key, value in source.items():
        if isinstance(value, Mapping):
            if not isinstance(into.get(key), dict):
                into[key] = {}
            _merge(into[key], value)
        else:
            into[key] = value
