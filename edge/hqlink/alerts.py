"""The gateway's open alerts: raised once, cleared once, sent on `alerts`, listed in health.

An alert raised while the broker is away is kept (bounded) and sent on the next connect;
the retained health message always lists the open ones, so a fleet operator who starts
watching later still sees them.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from edge.contract.payloads import Severity, dumps
from edge.contract.timefmt import iso, utcnow
from edge.errors import MqttLinkError
from edge.mqtt.client import MqttClient

log = logging.getLogger(__name__)

UNSENT_MAX = 200


class Alerts:
    def __init__(self, client: MqttClient, topic: str) -> None:
        self._client = client
        self._topic = topic
        self._open: dict[tuple[str, str], dict[str, Any]] = {}
        self._unsent: deque[dict[str, Any]] = deque(maxlen=UNSENT_MAX)
        self.raised = 0

    def raise_(self, alert: str, severity: Severity, detail: str, subject: str = "") -> None:
        """Open an alert (sent once); raising it again only refreshes its detail."""
        key = (alert, subject)
        current = self._open.get(key)
        if current is not None and current["severity"] == severity:
            current["detail"] = detail  # health shows the latest; HQ was told once
            return
        entry = {
            "alert": alert,
            "severity": severity,
            "detail": detail,
            "subject": subject,
            "at": iso(utcnow()),
            "state": "raised",
        }
        self._open[key] = entry
        self.raised += 1
        log.warning("alert %s (%s): %s", alert, severity, detail)
        self._send(entry)

    def clear(self, alert: str, subject: str = "") -> None:
        entry = self._open.pop((alert, subject), None)
        if entry is None:
            return
        log.info("alert %s cleared", alert)
        self._send({**entry, "at": iso(utcnow()), "state": "cleared"})

    def is_open(self, alert: str, subject: str = "") -> bool:
        return (alert, subject) in self._open

    def open(self) -> list[dict[str, Any]]:
        return list(self._open.values())

    def flush(self) -> None:
        """Send what was raised or cleared while the broker was away."""
        pending = list(self._unsent)
        self._unsent.clear()
        for entry in pending:
            self._send(entry)

    def _send(self, entry: dict[str, Any]) -> None:
        try:
            self._client.publish(self._topic, dumps(entry), qos=1)
        except MqttLinkError:
            self._unsent.append(entry)
