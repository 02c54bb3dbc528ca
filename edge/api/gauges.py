"""The gauges /metrics reads at each scrape: outbox, HQ link, devices, lanes, disk, ledger.

They come from one `Facts` gathered for the scrape (`edge.api.status_view`, depth
"metrics": index look-ups on the ledger's reader thread and one empty write job), so they
agree with the status page and cost nothing between scrapes. Series that do not apply are
left out rather than faked: no `edge_hq_link_up` without an HQ link, no outbox series while
the ledger cannot be read, no last-ack age before HQ's first ack. Every family is listed in
docs/monitoring.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.api.auth import FAILURE_REASONS
from edge.api.status_view import Facts, oldest_age
from edge.contract.payloads import Severity
from edge.devices.sink import DeviceKind

DEVICE_KINDS: tuple[str, ...] = get_args(DeviceKind)
SEVERITIES: tuple[str, ...] = get_args(Severity)


class Scrape:
    """One scrape: the registry's own metrics followed by the gauges of `facts`."""

    def __init__(self, registry: Collector, facts: Facts) -> None:
        self._registry = registry
        self._facts = facts

    def collect(self) -> Iterable[Metric]:
        yield from self._registry.collect()
        yield from gateway_families(self._facts)


def gateway_families(facts: Facts) -> Iterable[Metric]:
    yield from _health(facts)
    yield from _outbox(facts)
    yield from _link(facts)
    yield from _devices(facts)
    yield from _lanes(facts)
    yield from _security(facts)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _health(facts: Facts) -> Iterable[Metric]:
    info = GaugeMetricFamily(
        "edge_gateway_info",
        "The gateway's identity and software version (always 1)",
        labels=["store", "gateway", "version"],
    )
    info.add_metric([facts.store_id, facts.gateway_id, facts.version], 1)
    yield info
    yield _gauge(
        "edge_ready",
        "1 while the gateway is ready: the ledger can write and every readiness check passes",
        1 if facts.ready else 0,
    )
    yield _gauge(
        "edge_ledger_writable",
        "1 while the ledger can take a write (0: refunds are refused with 503)",
        1 if facts.writable else 0,
    )
    yield _gauge(
        "edge_disk_free_bytes",
        "Free bytes on the filesystem of the data directory (for the gateway's user)",
        facts.disk.free,
    )
    yield _gauge(
        "edge_disk_size_bytes", "Size of the filesystem of the data directory", facts.disk.total
    )
    yield _gauge(
        "edge_ledger_size_bytes",
        "Size of the ledger database and its write-ahead log",
        facts.disk.ledger_bytes,
    )


def _outbox(facts: Facts) -> Iterable[Metric]:
    if facts.high_water is not None:
        yield _gauge(
            "edge_outbox_high_water",
            "The outbox's high-water mark (hq.outbox_high_water): above it an alert is raised",
            facts.high_water,
        )
    outbox = facts.outbox
    if outbox is None:
        return
    yield _gauge("edge_outbox_depth", "Events in the outbox waiting for HQ's ack", outbox.pending)
    yield _gauge(
        "edge_outbox_refunds_queued",
        "Refunds whose event waits in the outbox for HQ's ack",
        outbox.refunds_queued,
    )
    yield _gauge(
        "edge_outbox_oldest_pending_age_seconds",
        "How long the oldest event in the outbox has waited for HQ (0 when it is empty)",
        round(oldest_age(facts) or 0.0, 3),
    )


def _link(facts: Facts) -> Iterable[Metric]:
    link = facts.link
    if not link.configured:
        return
    yield _gauge(
        "edge_hq_link_up",
        "1 while the HQ link is online: broker connected and HQ acking (the offline flag of"
        " refunds follows it)",
        1 if link.online else 0,
    )
    if link.since is not None:
        yield _gauge(
            "edge_hq_link_state_since_timestamp_seconds",
            "When the HQ link last went online or offline, Unix time",
            link.since.timestamp(),
        )
    if link.last_ack_at is not None:
        yield _gauge(
            "edge_hq_last_ack_age_seconds",
            "Seconds since HQ last acknowledged an event (absent before the first ack)",
            round(max(0.0, (facts.now - link.last_ack_at).total_seconds()), 3),
        )


def _devices(facts: Facts) -> Iterable[Metric]:
    up = GaugeMetricFamily(
        "edge_devices_up", "Configured devices that are connected, by kind", labels=["kind"]
    )
    configured = GaugeMetricFamily(
        "edge_devices_configured", "Devices in the configuration, by kind", labels=["kind"]
    )
    device = GaugeMetricFamily(
        "edge_device_up",
        "1 while the configured device is connected",
        labels=["device", "kind", "lane"],
    )
    for kind in DEVICE_KINDS:
        of_kind = [d for d in facts.devices if d.kind == kind]
        up.add_metric([kind], sum(1 for d in of_kind if d.up))
        configured.add_metric([kind], len(of_kind))
    for d in facts.devices:
        device.add_metric([d.id, d.kind, d.lane], 1 if d.up else 0)
    yield from (up, configured, device)


def _lanes(facts: Facts) -> Iterable[Metric]:
    scans = CounterMetricFamily(
        "edge_lane_scans",
        "Scans and tag reads routed to the lane since the gateway started (repeats inside"
        " the duplicate window not counted)",
        labels=["lane"],
    )
    last = GaugeMetricFamily(
        "edge_lane_last_scan_timestamp_seconds",
        "When the lane last had a scan, Unix time (absent before its first)",
        labels=["lane"],
    )
    for lane in facts.lanes:
        scans.add_metric([lane.lane], lane.scans)
        if lane.last_scan_at is not None:
            last.add_metric([lane.lane], lane.last_scan_at.timestamp())
    yield from (scans, last)


def _security(facts: Facts) -> Iterable[Metric]:
    failures = CounterMetricFamily(
        "edge_auth_failures",
        "Requests refused authentication: bad client credentials at /oauth/token, or a"
        " missing, invalid or expired token, or a revoked client's",
        labels=["reason"],
    )
    counts = {reason: 0 for reason in FAILURE_REASONS} | facts.auth_failures
    for reason, n in sorted(counts.items()):
        failures.add_metric([reason], n)
    alerts = GaugeMetricFamily(
        "edge_alerts_open",
        "Alerts the gateway has open (sent to HQ), by severity",
        labels=["severity"],
    )
    for severity in SEVERITIES:
        alerts.add_metric([severity], sum(1 for a in facts.alerts if a.severity == severity))
    yield from (failures, alerts)
