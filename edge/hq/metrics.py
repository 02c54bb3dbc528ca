"""Prometheus metrics of the HQ service: the fleet as HQ sees it, and the service's counters.

One collector reads the `FleetView` and the service's counters at scrape time, so a fleet
of 10,000 gateways costs nothing between scrapes (no gauge children kept current on every
health message). Families carry no `_created` samples.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge.hq.fleet import SEVERITIES, FleetView

GATEWAY = ["store", "gateway"]

# service counters (HqService.counters) named `{prefix}{value}` -> (family, help, label)
_LABELLED = (
    ("events_", "edge_hq_events_received", "Gateway events received, new or duplicate", "outcome"),
    ("acks_", "edge_hq_acks_sent", "Acks published to gateways, by status", "status"),
    ("refunds_", "edge_hq_refunds_decided", "Refund outcomes recorded, by status", "status"),
    ("lookups_", "edge_hq_lookups", "Order look-ups answered (or lost), by result", "result"),
    ("dropped_", "edge_hq_dropped_messages", "Messages dropped on a full queue, by leaf", "leaf"),
    (
        "recon_reports_",
        "edge_hq_recon_reports",
        "Reconciliation reports received, new or a copy already held",
        "outcome",
    ),
    (
        "recon_digests_",
        "edge_hq_recon_digests",
        "Reconciliation digests published (or lost with the broker link)",
        "outcome",
    ),
)
_PLAIN = {
    "malformed_messages": "Malformed events, look-ups and fleet messages (logged, dropped)",
    "storage_errors": "HQ store operations that failed (retried or sent again)",
    "processor_unavailable": "Refunds the processor could not take now (retried)",
    "processor_errors": "Processor or ERP plug-in failures (retried)",
    "foreign_messages": "Messages on topics the service does not read",
}
# always exported, so rate() has a first point before the first event
_SEEDED = {
    "edge_hq_events_received": ("new", "duplicate"),
    "edge_hq_acks_sent": ("accepted", "settled", "declined", "rejected", "lost"),
    "edge_hq_refunds_decided": ("settled", "declined"),
    "edge_hq_lookups": ("found", "not_found", "lost"),
    "edge_hq_recon_reports": ("new", "duplicate"),
    "edge_hq_recon_digests": ("sent", "lost"),
}


@dataclass(frozen=True)
class HqStats:
    """What the web endpoints read from a running service (read only)."""

    fleet: FleetView
    counters: Mapping[str, int] = field(default_factory=dict)
    restarts: Mapping[str, int] = field(default_factory=dict)
    connected: Callable[[], bool] = lambda: False
    instance: str = ""
    clock: Callable[[], float] = time.time
    # the fleet-wide reconciliation view, read from the HQ store (None: not served)
    recon: Callable[[], Awaitable[dict[str, Any]]] | None = None


class FleetCollector:
    """A prometheus-client collector over HqStats; every sample is computed per scrape."""

    def __init__(self, stats: HqStats) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        yield from self._gateways()
        yield from self._service()

    def _gateways(self) -> Iterable[Metric]:
        now = self._stats.clock()
        online = GaugeMetricFamily(
            "edge_hq_gateway_online",
            "1 while the gateway's retained state is online",
            labels=GATEWAY,
        )
        depth = GaugeMetricFamily(
            "edge_hq_gateway_outbox_depth",
            "Events in the gateway's outbox not yet acked by HQ (last health report)",
            labels=GATEWAY,
        )
        oldest = GaugeMetricFamily(
            "edge_hq_gateway_oldest_pending_age_seconds",
            "Age of the oldest unacked event now: the reported age plus the time since that"
            " report (0 with an empty outbox)",
            labels=GATEWAY,
        )
        alerts = GaugeMetricFamily(
            "edge_hq_gateway_open_alerts",
            "Alerts the gateway has open, by severity",
            labels=[*GATEWAY, "severity"],
        )
        health_age = GaugeMetricFamily(
            "edge_hq_gateway_last_health_age_seconds",
            "Seconds since HQ received the gateway's last health report",
            labels=GATEWAY,
        )
        since = GaugeMetricFamily(
            "edge_hq_gateway_state_since_timestamp_seconds",
            "When HQ saw the gateway's state (or its session) change, Unix time",
            labels=GATEWAY,
        )
        info = GaugeMetricFamily(
            "edge_hq_gateway_info", "The gateway's software version", labels=[*GATEWAY, "version"]
        )
        states = dict.fromkeys(("online", "offline", "unknown"), 0)
        open_total = dict.fromkeys(SEVERITIES, 0)
        depth_total = 0
        for view in self._stats.fleet.views():
            labels = [view.store_id, view.gateway_id]
            states[view.state if view.state in states else "unknown"] += 1
            online.add_metric(labels, 1.0 if view.state == "online" else 0.0)
            if view.outbox_depth is not None:
                depth.add_metric(labels, view.outbox_depth)
                depth_total += view.outbox_depth
            age = view.oldest_pending_now(now)
            if age is not None:
                oldest.add_metric(labels, age)
            for severity, count in view.open_by_severity().items():
                alerts.add_metric([*labels, severity], count)
                open_total[severity] += count
            if view.health_seen is not None:
                health_age.add_metric(labels, round(max(0.0, now - view.health_seen), 3))
            if view.state_since is not None:
                since.add_metric(labels, view.state_since)
            version = view.version or (view.health or {}).get("version")
            info.add_metric([*labels, str(version or "")], 1.0)
        yield from (online, depth, oldest, alerts, health_age, since, info)
        fleet = GaugeMetricFamily(
            "edge_hq_fleet_gateways", "Gateways HQ knows of, by state", labels=["state"]
        )
        for state, count in states.items():
            fleet.add_metric([state], count)
        fleet_alerts = GaugeMetricFamily(
            "edge_hq_fleet_open_alerts",
            "Open alerts over the fleet, by severity",
            labels=["severity"],
        )
        for severity, count in open_total.items():
            fleet_alerts.add_metric([severity], count)
        yield fleet
        yield fleet_alerts
        yield GaugeMetricFamily(
            "edge_hq_fleet_outbox_depth",
            "Events waiting in all gateways' outboxes (last health reports)",
            value=depth_total,
        )
        yield CounterMetricFamily(
            "edge_hq_fleet_updates",
            "State, health and alert messages applied to the fleet view",
            value=self._stats.fleet.updates,
        )

    def _service(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "edge_hq_mqtt_connected",
            "1 while the service is connected to the broker",
            value=1.0 if self._stats.connected() else 0.0,
        )
        counters = dict(self._stats.counters)
        for prefix, name, documentation, label in _LABELLED:
            family = CounterMetricFamily(name, documentation, labels=[label])
            values = dict.fromkeys(_SEEDED.get(name, ()), 0)
            for key in [k for k in counters if k.startswith(prefix)]:
                values[key.removeprefix(prefix)] = counters.pop(key)
            for value_label, value in sorted(values.items()):
                family.add_metric([value_label], value)
            yield family
        for key, documentation in _PLAIN.items():
            yield CounterMetricFamily(f"edge_hq_{key}", documentation, value=counters.pop(key, 0))
        other = CounterMetricFamily(
            "edge_hq_other_events", "Other service counters, by name", labels=["counter"]
        )
        for key, value in sorted(counters.items()):
            other.add_metric([key], value)
        yield other
        restarts = CounterMetricFamily(
            "edge_hq_loop_restarts", "Service loops restarted after a failure", labels=["loop"]
        )
        for loop, count in sorted(self._stats.restarts.items()):
            restarts.add_metric([loop], count)
        yield restarts


def hq_registry(stats: HqStats) -> CollectorRegistry:
    """A registry of its own: the fleet collector plus the process and Python collectors."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(stats))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class _Collected:
    """Families already collected, so formatting them can leave the event loop."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(registry: CollectorRegistry) -> CollectorRegistry:
    """Read every value now (on the loop that owns the fleet view) into a registry that
    only replays them; formatting that (the larger cost) may then run in a thread."""
    families = list(registry.collect())
    frozen = CollectorRegistry()
    frozen.register(_Collected(families))
    return frozen
