"""Prometheus metrics of the LAN API, in a registry of its own (one per running app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edge_http_requests_total",
            "LAN API requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edge_http_request_seconds",
            "LAN API request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.refunds = Counter(
            "edge_refunds_total",
            "Refunds recorded, by kind and whether HQ was reachable",
            ["kind", "offline"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "edge_refusals_total",
            "Requests refused with a problem document, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.pin_failures = Counter(
            "edge_manager_pin_failures_total",
            "Wrong manager PINs",
            registry=self.registry,
        )
