"""The HQ store's copy of the fleet view: latest state and health per gateway, and alerts."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from edge.contract.payloads import AlertMsg, dumps, parse
from edge.contract.timefmt import iso
from edge.hq.fleet import GatewayView


def save_fleet(
    conn: sqlite3.Connection, views: list[GatewayView], alerts: list[tuple[str, str, bytes]]
) -> None:
    """Persist the latest state and health of the gateways that changed, and their alerts."""
    for view in views:
        conn.execute(
            "INSERT INTO gateways (store_id, gateway_id, state, bd_seq, version, state_at,"
            " health, health_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (store_id, gateway_id) DO UPDATE SET state = excluded.state,"
            " bd_seq = excluded.bd_seq, version = excluded.version,"
            " state_at = excluded.state_at, health = excluded.health,"
            " health_at = excluded.health_at",
            (
                view.store_id,
                view.gateway_id,
                view.state,
                view.bd_seq,
                view.version,
                _stamp(view.state_seen),
                None if view.health is None else dumps(view.health).decode(),
                _stamp(view.health_seen),
            ),
        )
    for store_id, gateway_id, payload in alerts:
        alert = parse(AlertMsg, payload)
        conn.execute(
            "INSERT INTO alerts (store_id, gateway_id, alert, subject, severity, state, detail,"
            " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                store_id,
                gateway_id,
                alert.alert,
                str(json.loads(payload).get("subject") or ""),
                alert.severity,
                alert.state,
                alert.detail,
                iso(alert.at),
            ),
        )


def _stamp(epoch: float | None) -> str | None:
    return None if epoch is None else iso(datetime.fromtimestamp(epoch, UTC))
