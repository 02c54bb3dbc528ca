"""Results of the commands HQ sends on `cmd/{name}`, as the gateway publishes them on
`cmd-result` (the command itself is `CommandMsg` in `edge.contract.payloads`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from edge.contract.payloads import AlertMsg
from edge.contract.wire_types import Instant, WireModel


def _absent(value: object) -> bool:
    return value is None


class CmdResultMsg(WireModel):
    """One per command received: `result` when `ok`, else `error` (the other key is left
    out, not sent as null). On MQTT 5 it carries the command's Correlation Data."""

    request_id: str = Field(min_length=1, max_length=128)
    command: str = Field(min_length=1)
    ok: bool
    result: dict[str, Any] | None = Field(None, exclude_if=_absent)
    error: str | None = Field(None, exclude_if=_absent)
    at: Instant


# What `result` holds for each built-in command (`health` answers with the health message,
# `edge.contract.health.HealthMsg`).


class PingResult(WireModel):
    pong: bool
    version: str


class AlertsResult(WireModel):
    open: list[AlertMsg]


class ReplayResult(WireModel):
    """Acked events from `from_seq` on became pending again; older ones were pruned, so the
    first seq still held (null when none is) says where the replay really starts."""

    replayed: int = Field(ge=0)
    first_seq_held: int | None


class PruneResult(WireModel):
    pruned: int = Field(ge=0)


class ReconcileResult(WireModel):
    """`cmd/reconcile`: the checkpoint ran now; its report follows on `recon/report`."""

    report_id: str = Field(min_length=1, max_length=128)
