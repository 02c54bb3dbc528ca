"""The fleet as HQ sees it: every gateway's retained state and health, and its open alerts.

Fed from `{prefix}/+/+/state`, `health` and `alerts`. A Will (`offline`) whose `bd_seq` is
older than the session HQ already saw come online is a late message from a dead session
and does not mark a live gateway offline.

Besides the latest of each, a gateway keeps what an operator asks "since when?" about:
when its state last changed, its recent alerts (raised and cleared) and a bounded ring of
its last health reports (outbox depth and oldest pending age), all in memory.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge.contract.payloads import AlertMsg, Malformed, StateMsg, parse
from edge.contract.timefmt import iso, parse_iso
from edge.contract.topics import GatewayAddress, parse_gateway_topic
from edge.mqtt.client import Message

HISTORY_MAX = 120  # health reports kept per gateway (2 minutes at the 1 s default, more at 30 s)
ALERT_LOG_MAX = 30  # raised/cleared alerts kept per gateway
SEVERITIES = ("info", "warning", "critical")


class HealthRing:
    """The last `size` health points (seen, outbox depth, oldest pending age) in one flat
    float array: 10,000 gateways with 120 points each stay under 30 MB."""

    def __init__(self, size: int = HISTORY_MAX) -> None:
        self._size = size
        self._data = array("d")
        self._next = 0  # the slot the next point overwrites once the ring is full

    def __len__(self) -> int:
        return len(self._data) // 3

    def append(self, seen: float, depth: float | None, oldest_s: float | None) -> None:
        point = (
            seen,
            math.nan if depth is None else depth,
            math.nan if oldest_s is None else oldest_s,
        )
        if len(self) < self._size:
            self._data.extend(point)
            return
        self._data[self._next * 3 : self._next * 3 + 3] = array("d", point)
        self._next = (self._next + 1) % self._size

    def points(self) -> list[tuple[float, float | None, float | None]]:
        """Oldest first; a missing value is None."""
        count = len(self)
        start = self._next if count == self._size else 0
        out = []
        for n in range(count):
            i = (start + n) % count * 3
            seen, depth, oldest = self._data[i], self._data[i + 1], self._data[i + 2]
            out.append(
                (seen, None if math.isnan(depth) else depth, None if math.isnan(oldest) else oldest)
            )
        return out


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
    state_since: float | None = None  # when HQ saw the state (or the session) change
    state_retained: bool = False  # the state came from the broker's store, not live
    alert_log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ALERT_LOG_MAX))
    history: HealthRing = field(default_factory=HealthRing)

    @property
    def outbox_depth(self) -> int | None:
        value = ((self.health or {}).get("outbox") or {}).get("pending")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def oldest_pending_age_s(self) -> float | None:
        value = ((self.health or {}).get("outbox") or {}).get("oldest_pending_age_s")
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    def oldest_pending_now(self, now: float) -> float | None:
        """The oldest pending event's age now: the reported age plus the time since that
        report, since a gateway gone silent still has those events waiting (0 when empty)."""
        if self.outbox_depth == 0:
            return 0.0
        reported = self.oldest_pending_age_s
        if reported is None or self.health_seen is None:
            return None
        return round(reported + max(0.0, now - self.health_seen), 1)

    def open_by_severity(self) -> dict[str, int]:
        counts = dict.fromkeys(SEVERITIES, 0)
        for entry in self.alerts.values():
            severity = entry.get("severity")
            counts[severity if severity in counts else "warning"] += 1
        return counts

    def row(self, now: float) -> dict[str, Any]:
        health = self.health or {}
        link = health.get("link") or {}
        return {
            "store_id": self.store_id,
            "gateway_id": self.gateway_id,
            "state": self.state,
            "bd_seq": self.bd_seq,
            "version": self.version or health.get("version"),
            "state_since": _stamp(self.state_since),
            "state_age_s": _age(now, self.state_since),
            "health_age_s": _age(now, self.health_seen),
            "health_seen": _stamp(self.health_seen),
            "health_at": health.get("at"),
            "link": link.get("state"),
            "outbox_pending": self.outbox_depth,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "oldest_pending_now_s": self.oldest_pending_now(now),
            "last_hq_ack_at": health.get("last_hq_ack_at"),
            "alerts": sorted(
                {
                    f"{a['alert']}:{a['subject']}" if a["subject"] else a["alert"]
                    for a in self.alerts.values()
                }
            ),
            "open_alerts": len(self.alerts),
            "open_critical": self.open_by_severity()["critical"],
        }

    def detail(self, now: float) -> dict[str, Any]:
        """Everything the store's page shows: the row, the last health, alerts, history."""
        return {
            **self.row(now),
            "health": self.health,
            "open_alert_list": sorted(self.alerts.values(), key=lambda a: str(a.get("at"))),
            "recent_alerts": list(reversed(self.alert_log)),
            "history": [
                {"seen": _stamp(seen), "age_s": _age(now, seen), "depth": d, "oldest_s": o}
                for seen, d, o in self.history.points()
            ],
        }


class FleetView:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._gateways: dict[tuple[str, str], GatewayView] = {}
        self.updates = 0
        # called after every applied message, on the applying thread (e.g. to push to a page)
        self.listeners: list[Callable[[GatewayAddress], None]] = []

    def __len__(self) -> int:
        return len(self._gateways)

    def get(self, store_id: str, gateway_id: str) -> GatewayView | None:
        return self._gateways.get((store_id, gateway_id))

    def views(self) -> Iterator[GatewayView]:
        """Every gateway, in no particular order (for a scrape: no sorting, no copies)."""
        return iter(list(self._gateways.values()))

    def apply(self, msg: Message, now: float | None = None) -> GatewayAddress:
        """Take one state/health/alerts message; raises Malformed for anything else."""
        seen = time.time() if now is None else now
        addr = parse_gateway_topic(self._prefix, msg.topic)
        if addr is None:
            raise Malformed(f"not a gateway topic: {msg.topic}")
        key = (addr.store_id, addr.gateway_id)
        if not msg.payload and addr.leaf == "state":
            self._gateways.pop(key, None)  # retained state cleared: the gateway was retired
            self._notify(addr)
            return addr
        view = self._gateways.get(key) or GatewayView(*key)
        if addr.leaf == "state":
            self._state(view, parse(StateMsg, msg.payload), seen, retained=msg.retain)
        elif addr.leaf == "health":
            self._health(view, _object(msg.payload), seen)
        elif addr.leaf == "alerts":
            alert = parse(AlertMsg, msg.payload)
            entry = json.loads(msg.payload)
            self._alert(view, entry, cleared=alert.state == "cleared")
            self._log_alert(view, {**entry, "state": alert.state})
        else:
            raise Malformed(f"fleet does not read {addr.leaf}")
        self._gateways[key] = view
        self.updates += 1
        self._notify(addr)
        return addr

    def _notify(self, addr: GatewayAddress) -> None:
        for listener in list(self.listeners):
            listener(addr)

    def _state(self, view: GatewayView, state: StateMsg, seen: float, *, retained: bool) -> None:
        stale_will = (
            state.state == "offline"
            and view.state == "online"
            and state.bd_seq is not None
            and view.bd_seq is not None
            and state.bd_seq < view.bd_seq
        )
        if stale_will:
            return
        changed = state.state != view.state or (
            state.bd_seq is not None and state.bd_seq != view.bd_seq
        )
        if changed or view.state_since is None:
            view.state_since = seen
            view.state_retained = retained
        view.state = state.state
        view.bd_seq = state.bd_seq if state.bd_seq is not None else view.bd_seq
        view.version = state.version or view.version
        view.state_seen = seen

    def _health(self, view: GatewayView, health: dict[str, Any], seen: float) -> None:
        view.health = health
        view.health_seen = seen
        view.history.append(seen, view.outbox_depth, view.oldest_pending_age_s)
        connected = _epoch((health.get("link") or {}).get("connected_since"))
        if (
            view.state == "online"
            and view.state_retained
            and connected is not None
            and view.state_since is not None
            and connected < view.state_since
        ):
            # HQ came up after the birth: the gateway's own connect time says since when
            view.state_since = connected
            view.state_retained = False
        open_alerts = health.get("alerts_open")
        if isinstance(open_alerts, list):
            before = set(view.alerts)
            view.alerts = {}
            for entry in open_alerts:
                self._alert(view, entry)
            for key in view.alerts.keys() - before:  # raised while HQ was not listening
                self._log_alert(view, {**view.alerts[key], "state": "raised"})

    @staticmethod
    def _alert(view: GatewayView, entry: Any, *, cleared: bool = False) -> None:
        if not isinstance(entry, dict) or not isinstance(entry.get("alert"), str):
            return
        key = (entry["alert"], str(entry.get("subject") or ""))
        if cleared:
            view.alerts.pop(key, None)
        else:
            view.alerts[key] = {**entry, "subject": key[1]}

    @staticmethod
    def _log_alert(view: GatewayView, entry: dict[str, Any]) -> None:
        """Keep one line per raise or clear; the same one seen in health and on `alerts`
        (either may come first) is kept once."""
        item = {
            "alert": str(entry.get("alert")),
            "subject": str(entry.get("subject") or ""),
            "severity": str(entry.get("severity") or "warning"),
            "state": str(entry.get("state") or "raised"),
            "detail": str(entry.get("detail") or ""),
            "at": _normalised(entry.get("at")),
        }
        same = ("alert", "subject", "state", "at")
        if any(all(old[k] == item[k] for k in same) for old in view.alert_log):
            return
        view.alert_log.append(item)

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        at = time.time() if now is None else now
        return [self._gateways[k].row(at) for k in sorted(self._gateways)]

    def summary(self) -> dict[str, int]:
        """Counts for the top of the page."""
        counts = {"gateways": 0, "online": 0, "offline": 0, "unknown": 0, "alerting": 0}
        for view in self._gateways.values():
            counts["gateways"] += 1
            counts[view.state if view.state in ("online", "offline") else "unknown"] += 1
            counts["alerting"] += 1 if view.alerts else 0
        return counts

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


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(max(0.0, now - then), 1)


def _stamp(epoch: float | None) -> str | None:
    return None if epoch is None else iso(datetime.fromtimestamp(epoch, UTC))


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_iso(text).timestamp()
    except ValueError:
        return None


def _normalised(at: Any) -> str:
    """One spelling of a time, so the same alert seen in health and on `alerts` compares."""
    epoch = _epoch(at)
    return str(at or "") if epoch is None else iso(datetime.fromtimestamp(epoch, UTC))
