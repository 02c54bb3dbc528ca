"""The HQ store's copy of the fleet view: latest state and health per gateway, and alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.payloads import AlertMsg, dumps, parse
from edge.contract.timefmt import iso
from edge.hq.fleet import GatewayView
from edge.hq.tables import alerts as alerts_table
from edge.hq.tables import gateways, insert


async def save_fleet(
    conn: AsyncConnection, views: list[GatewayView], alerts: list[tuple[str, str, bytes]]
) -> None:
    """Persist the latest state and health of the gateways that changed, and their alerts."""
    rows = [
        {
            "store_id": view.store_id,
            "gateway_id": view.gateway_id,
            "state": view.state,
            "bd_seq": view.bd_seq,
            "version": view.version,
            "state_at": _stamp(view.state_seen),
            "health": None if view.health is None else dumps(view.health).decode(),
            "health_at": _stamp(view.health_seen),
        }
        for view in sorted(views, key=lambda v: (v.store_id, v.gateway_id))  # lock order
    ]
    if rows:
        stmt = insert(conn, gateways)
        latest = ("state", "bd_seq", "version", "state_at", "health", "health_at")
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[gateways.c.store_id, gateways.c.gateway_id],
                set_={name: stmt.excluded[name] for name in latest},
            ),
            rows,
        )
    alert_rows = []
    for store_id, gateway_id, payload in alerts:
        alert = parse(AlertMsg, payload)
        alert_rows.append(
            {
                "store_id": store_id,
                "gateway_id": gateway_id,
                "alert": alert.alert,
                "subject": str(json.loads(payload).get("subject") or ""),
                "severity": alert.severity,
                "state": alert.state,
                "detail": alert.detail,
                "at": iso(alert.at),
            }
        )
    if alert_rows:
        await conn.execute(alerts_table.insert(), alert_rows)


def _stamp(epoch: float | None) -> str | None:
    return None if epoch is None else iso(datetime.fromtimestamp(epoch, UTC))
