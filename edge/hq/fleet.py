"""The fleet as HQ sees it: every gateway's retained state and health, and its open alerts.

Fed from `{prefix}/+/+/state`, `health` and `alerts`. A Will (`offline`) whose `bd_seq` is
older than the session HQ already saw come online is a late message from a dead session
and does not mark a live gateway offline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from edge.contract.payloads import AlertMsg, Malformed, StateMsg, parse
from edge.contract.topics import GatewayAddress, parse_gateway_topic
from edge.mqtt.client import Message


@dataclass
class GatewayView:
    store_id: str
    gateway_id: str
    state: str = "unknown"
    bd_seq: int | None = None
    version: str | None = None
    state_seen: float | None = None
    health: dict[str, Any] | None = None
    health_seen: float | None = None
    alerts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def row(self, now: float) -> dict[str, Any]:
        health = self.health or {}
        outbox = health.get("outbox") or {}
        link = health.get("link") or {}
        return {
            "store_id": self.store_id,
            "gateway_id": self.gateway_id,
            "state": self.state,
            "bd_seq": self.bd_seq,
            "version": self.version or health.get("version"),
            "health_age_s": None
            if self.health_seen is None
            else round(max(0.0, now - self.health_seen), 1),
            "health_at": health.get("at"),
            "link": link.get("state"),
            "outbox_pending": outbox.get("pending"),
            "oldest_pending_age_s": outbox.get("oldest_pending_age_s"),
            "last_hq_ack_at": health.get("last_hq_ack_at"),
            "alerts": sorted(
                {
                    f"{a['alert']}:{a['subject']}" if a["subject"] else a["alert"]
                    for a in self.alerts.values()
                }
            ),
        }


class FleetView:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._gateways: dict[tuple[str, str], GatewayView] = {}
        self.updates = 0

    def __len__(self) -> int:
        return len(self._gateways)

    def get(self, store_id: str, gateway_id: str) -> GatewayView | None:
        return self._gateways.get((store_id, gateway_id))

    def apply(self, msg: Message, now: float | None = None) -> GatewayAddress:
        """Take one state/health/alerts message; raises Malformed for anything else."""
        seen = time.time() if now is None else now
        addr = parse_gateway_topic(self._prefix, msg.topic)
        if addr is None:
            raise Malformed(f"not a gateway topic: {msg.topic}")
        key = (addr.store_id, addr.gateway_id)
        if not msg.payload and addr.leaf == "state":
            self._gateways.pop(key, None)  # retained state cleared: the gateway was retired
            return addr
        view = self._gateways.get(key) or GatewayView(*key)
        if addr.leaf == "state":
            self._state(view, parse(StateMsg, msg.payload), seen)
        elif addr.leaf == "health":
            view.health = _object(msg.payload)
            view.health_seen = seen
            open_alerts = view.health.get("alerts_open")
            if isinstance(open_alerts, list):
                view.alerts = {}
                for entry in open_alerts:
                    self._alert(view, entry)
        elif addr.leaf == "alerts":
            alert = parse(AlertMsg, msg.payload)
            self._alert(view, json.loads(msg.payload), cleared=alert.state == "cleared")
        else:
            raise Malformed(f"fleet does not read {addr.leaf}")
        self._gateways[key] = view
        self.updates += 1
        return addr

    def _state(self, view: GatewayView, state: StateMsg, seen: float) -> None:
        stale_will = (
            state.state == "offline"
            and view.state == "online"
            and state.bd_seq is not None
            and view.bd_seq is not None
            and state.bd_seq < view.bd_seq
        )
        if stale_will:
            return
        view.state = state.state
        view.bd_seq = state.bd_seq if state.bd_seq is not None else view.bd_seq
        view.version = state.version or view.version
        view.state_seen = seen

    @staticmethod
    def _alert(view: GatewayView, entry: Any, *, cleared: bool = False) -> None:
        if not isinstance(entry, dict) or not isinstance(entry.get("alert"), str):
            return
        key = (entry["alert"], str(entry.get("subject") or ""))
        if cleared:
            view.alerts.pop(key, None)
        else:
            view.alerts[key] = {**entry, "subject": key[1]}

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        at = time.time() if now is None else now
        return [self._gateways[k].row(at) for k in sorted(self._gateways)]

    def render(self, now: float | None = None) -> str:
        """A table for an operator's terminal."""
        rows = self.rows(now)
        header = ("STORE", "GATEWAY", "STATE", "HEALTH AGE", "LINK", "OUTBOX", "OLDEST", "ALERTS")
        table = [header] + [
            (
                r["store_id"],
                r["gateway_id"],
                r["state"],
                "-" if r["health_age_s"] is None else f"{r['health_age_s']:.0f}s",
                str(r["link"] or "-")[:32],
                "-" if r["outbox_pending"] is None else str(r["outbox_pending"]),
                "-" if r["oldest_pending_age_s"] is None else f"{r['oldest_pending_age_s']:.0f}s",
                ", ".join(r["alerts"]) or "-",
            )
            for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table
        ]
        online = sum(1 for r in rows if r["state"] == "online")
        lines.append(f"{len(rows)} gateways, {online} online, {len(rows) - online} not online")
        return "\n".join(line.rstrip() for line in lines)


def _object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Malformed(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Malformed("health is not a JSON object")
    return data
