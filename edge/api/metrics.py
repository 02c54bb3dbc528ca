"""Prometheus metrics of the LAN API, in a registry of its own (one per running app).

Besides the API's own counters, /metrics shows the gateway's failures that did not stop
it: supervised tasks restarted after a bug and event-bus subscribers that raised, read
from the counts their supervisors keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

W = TypeVar("W", bound=MetricWrapperBase)


class _Tally:
    """A counter whose values a supervisor keeps by name (one label)."""

    def __init__(
        self, name: str, documentation: str, label: str, counts: Mapping[str, int]
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._label = label
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for key, value in sorted(self._counts.items()):
            family.add_metric([key], value)
        yield family


class ApiMetrics:
    def __init__(
        self,
        *,
        task_restarts: Mapping[str, int] | None = None,
        subscriber_failures: Mapping[str, int] | None = None,
        collectors: Sequence[Collector] = (),
    ) -> None:
        """`collectors`: figures other components keep (e.g. the HQ link's reconciliation),
        read at each scrape."""
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}
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
        self.internal_errors = Counter(
            "edge_http_internal_errors_total",
            "Requests that failed on an unexpected exception (answered 500 internal-error)",
            ["route"],
            registry=self.registry,
        )
        self.pin_failures = Counter(
            "edge_manager_pin_failures_total",
            "Wrong manager PINs",
            registry=self.registry,
        )
        self.registry.register(
            _Tally(
                "edge_task_restarts_total",
                "Long-lived tasks restarted after an unexpected exception, by task",
                "task",
                task_restarts if task_restarts is not None else {},
            )
        )
        self.registry.register(
            _Tally(
                "edge_bus_subscriber_failures_total",
                "Event-bus subscribers that raised (isolated, the others still served), by event",
                "event",
                subscriber_failures if subscriber_failures is not None else {},
            )
        )
        for collector in collectors:
            self.registry.register(collector)

    def child(self, metric: W, *values: str) -> W:
        """`metric.labels(*values)`, looked up once: prometheus-client checks the values and
        takes a lock on every `labels` call, and the API counts every request."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found  # type: ignore[return-value]
