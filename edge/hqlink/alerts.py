"""The gateway's open alerts: raised once, cleared once, sent on `alerts`, listed in health.

An alert raised while the broker is away is kept (bounded) and sent on the next connect;
the retained health message always lists the open ones, so a fleet operator who starts
watching later still sees them.
"""

from __future__ import annotations

import logging
from collections import deque

from edge.contract.payloads import ALERT_DETAIL_MAX, AlertMsg, Severity, encode
from edge.contract.timefmt import utcnow
from edge.errors import MqttLinkError
from edge.mqtt.client import MqttClient

log = logging.getLogger(__name__)

UNSENT_MAX = 200


class Alerts:
    def __init__(self, client: MqttClient, topic: str) -> None:
        self._client = client
        self._out_topic = topic
        self._open: dict[tuple[str, str], AlertMsg] = {}
        self._unsent: deque[AlertMsg] = deque(maxlen=UNSENT_MAX)
        self.raised = 0

    def raise_(self, alert: str, severity: Severity, detail: str, subject: str = "") -> None:
        """Open an alert (sent once); raising it again only refreshes its detail."""
        key = (alert, subject)
        shown = detail[:ALERT_DETAIL_MAX]  # what the contract admits; the log has it whole
        current = self._open.get(key)
        if current is not None and current.severity == severity:
            # health shows the latest; HQ was told once
            self._open[key] = current.model_copy(update={"detail": shown})
            return
        entry = AlertMsg(alert=alert, severity=severity, detail=shown, subject=subject, at=utcnow())
        self._open[key] = entry
        self.raised += 1
        log.warning("alert %s (%s): %s", alert, severity, detail)
        self._send(entry)

    def restore(self, alert: str, severity: Severity, detail: str, subject: str) -> None:
        """List an alert HQ was already sent before a restart (kept in the ledger), without
        sending it again: health shows it, and clearing it still tells HQ."""
        key = (alert, subject)
        if key not in self._open:
            self._open[key] = AlertMsg(
                alert=alert,
                severity=severity,
                detail=detail[:ALERT_DETAIL_MAX],
                subject=subject,
                at=utcnow(),
            )

    def clear(self, alert: str, subject: str = "") -> None:
        entry = self._open.pop((alert, subject), None)
        if entry is None:
            return
        log.info("alert %s cleared", alert)
        self._send(entry.model_copy(update={"at": utcnow(), "state": "cleared"}))

    def is_open(self, alert: str, subject: str = "") -> bool:
        return (alert, subject) in self._open

    def open(self) -> list[AlertMsg]:
        return list(self._open.values())

    def flush(self) -> None:
        """Send what was raised or cleared while the broker was away."""
        pending = list(self._unsent)
        self._unsent.clear()
        for entry in pending:
            self._send(entry)

    def _send(self, entry: AlertMsg) -> None:
        try:
            self._client.publish(self._out_topic, encode(entry), qos=1)
        except MqttLinkError:
            self._unsent.append(entry)


STORAGE_ALERT = "storage-unavailable"


def report_storage(alerts: Alerts, problem: str | None) -> None:
    """The ledger's disk as an alert: critical while it refuses writes (refunds get 503),
    cleared once a write or the storage probe succeeds (edge/ledger/storage.py)."""
    if problem is None:
        alerts.clear(STORAGE_ALERT)
    else:
        alerts.raise_(STORAGE_ALERT, "critical", problem)
