"""Prometheus metrics of the LAN API, in a registry of its own (one per running app).

Besides the API's own counters, /metrics shows the gateway's failures that did not stop
it: supervised tasks restarted after a bug and event-bus subscribers that raised, read
from the counts their supervisors keep. The gauges that need the ledger, the HQ link or
the devices are read at each scrape (`edge.api.gauges`). Every metric is listed in
docs/monitoring.md.

No family carries `_created` samples: they double the series of every counter and
histogram for a start time Prometheus does not need (`process_start_time_seconds` has it).
prometheus-client's switch is process-wide, which both programs want.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from edge.api.problems import PROBLEM_SLUG

W = TypeVar("W", bound=MetricWrapperBase)

disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
# The operations counted by outcome: their route (POST) and what /metrics calls them.
OUTCOME_ROUTES = {"/v1/refunds": "refund", "/v1/sales": "sale"}
SUCCESS = "success"


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
            buckets=LATENCY_BUCKETS,
        )
        self.refund_seconds = Histogram(
            "edge_refund_processing_seconds",
            "Time a refund spends in the ledger: queued for the writer, checked, written and"
            " fsynced (its group commit)",
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.outcomes = {
            "refund": Counter(
                "edge_refund_requests_total",
                "POST /v1/refunds answers: success, or the problem type (slug) it was refused with",
                ["outcome"],
                registry=self.registry,
            ),
            "sale": Counter(
                "edge_sale_requests_total",
                "POST /v1/sales answers: success, or the problem type (slug) it was refused with",
                ["outcome"],
                registry=self.registry,
            ),
        }
        self.replays = Counter(
            "edge_idempotent_replays_total",
            "Requests answered with the stored response of an earlier identical one (a refund"
            " with the same Idempotency-Key and body, a sale sent again), by operation",
            ["operation"],
            registry=self.registry,
        )
        for operation, counter in self.outcomes.items():  # so rate() has a first point
            counter.labels(SUCCESS)
            self.replays.labels(operation)
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
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def outcome(self, method: str, route: str, response: web.StreamResponse) -> None:
        """Count a refund or sale request by how it ended (any other request: nothing)."""
        operation = OUTCOME_ROUTES.get(route)
        if operation is None or method != "POST":
            return
        if response.status >= 400:
            self.child(self.outcomes[operation], _problem_slug(response)).inc()
            return
        self.child(self.outcomes[operation], SUCCESS).inc()
        if response.headers.get("Idempotent-Replayed") == "true" or (
            operation == "sale" and response.status == 200
        ):
            self.child(self.replays, operation).inc()

    def child(self, metric: W, *values: str) -> W:
        """`metric.labels(*values)`, looked up once: prometheus-client checks the values and
        takes a lock on every `labels` call, and the API counts every request."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found  # type: ignore[return-value]


def _problem_slug(response: web.StreamResponse) -> str:
    """The problem type's slug of an error answer (every one is RFC 9457 JSON, made by
    `edge.api.problems`); `http-<status>` should one ever not be."""
    slug: str | None = response.get(PROBLEM_SLUG)
    if slug is not None:
        return slug
    fallback = f"http-{response.status}"
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        return fallback
    try:
        kind = json.loads(body).get("type")
    except (ValueError, AttributeError):
        return fallback
    return kind.rsplit("/", 1)[-1] if isinstance(kind, str) else fallback
