"""Prometheus metrics of a server process (`/metrics`), and who may read them.

The metrics name endpoints and labels, so they are not public: a scrape sends
``Authorization: Bearer <TAGLOOP_METRICS_TOKEN>`` (a token that opens nothing else), or an
admin API key. A server without authentication (development) serves them to anyone it
answers (its own machine).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class EndpointHealth(Protocol):
    """What the metrics read from the endpoint service when scraped (no database access)."""

    def failed(self) -> dict[str, str]: ...

    def load_failures(self) -> dict[str, int]: ...


class FailedEndpoints(Collector):
    """``tagloop_endpoint_failed{endpoint}`` (1 while this process finds the endpoint FAILED,
    e.g. its model file damaged; the reason is the endpoint's message) and
    ``tagloop_model_load_failures_total{endpoint}``."""

    def __init__(self, endpoints: EndpointHealth) -> None:
        self.endpoints = endpoints

    def collect(self) -> Iterator[Metric]:
        failed = GaugeMetricFamily(
            "tagloop_endpoint_failed",
            "1 for an endpoint this process found FAILED (its message says why; e.g. a model file that "
            "failed to load)",
            labels=["endpoint"],
        )
        for name in sorted(self.endpoints.failed()):
            failed.add_metric([name], 1)
        yield failed
        loads = CounterMetricFamily(
            "tagloop_model_load_failures",
            "Loads of an endpoint's model that failed in this process (file damaged or missing)",
            labels=["endpoint"],
        )
        for name, count in sorted(self.endpoints.load_failures().items()):
            loads.add_metric([name], count)
        yield loads


class MonitoredFigures(Protocol):
    """What the drift gauges read when scraped: the figures of the last monitoring run in this
    process (services/monitoring.py; no database access: a stale snapshot is refreshed in the
    background for the next scrape)."""

    def latest(self) -> dict[str, dict[str, Any]]: ...


class DriftGauges(Collector):
    """Per endpoint, the figures of its latest day with enough predictions (today, else
    yesterday): ``tagloop_drift_psi{endpoint,what,against}`` (what: labels or scores; against:
    training or previous, the day before), ``tagloop_drift_detected{endpoint}``,
    ``tagloop_monitored_predictions{endpoint}``, ``tagloop_routed_share{endpoint}`` and
    ``tagloop_review_agreement{endpoint}``. A figure that cannot be computed is left out."""

    def __init__(self, monitoring: MonitoredFigures) -> None:
        self.monitoring = monitoring

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering reads nothing (collect would start a refresh)

    def collect(self) -> Iterator[Metric]:
        figures = self.monitoring.latest()
        psi = GaugeMetricFamily(
            "tagloop_drift_psi",
            "Population stability index of an endpoint's predicted labels or best scores of its latest "
            "day with enough predictions, against the training data or the day before",
            labels=["endpoint", "what", "against"],
        )
        detected = GaugeMetricFamily(
            "tagloop_drift_detected",
            "1 when that day's PSI against the training data reaches TAGLOOP_DRIFT_PSI_THRESHOLD",
            labels=["endpoint"],
        )
        count = GaugeMetricFamily(
            "tagloop_monitored_predictions",
            "Predictions of the day the drift figures are of",
            labels=["endpoint"],
        )
        routed = GaugeMetricFamily(
            "tagloop_routed_share", "Share of that day's predictions routed to review", labels=["endpoint"]
        )
        agreement = GaugeMetricFamily(
            "tagloop_review_agreement",
            "Share of reviewers' answers on that day's predictions that kept the model's labels",
            labels=["endpoint"],
        )
        for name, found in sorted(figures.items()):
            for (against, what), value in sorted(found["psi"].items()):
                if value is not None:
                    psi.add_metric([name, what, against], value)
            detected.add_metric([name], 1 if found["drift"] else 0)
            count.add_metric([name], found["predictions"])
            if found["routed_share"] is not None:
                routed.add_metric([name], found["routed_share"])
            if found["agreement"] is not None:
                agreement.add_metric([name], found["agreement"])
        yield from (psi, detected, count, routed, agreement)


class ServerMetrics:
    def __init__(
        self, endpoints: EndpointHealth | None = None, monitoring: MonitoredFigures | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        if endpoints is not None:
            self.registry.register(FailedEndpoints(endpoints))
        if monitoring is not None:
            self.registry.register(DriftGauges(monitoring))
        self.requests = Counter(
            "tagloop_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tagloop_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.predictions = Counter(
            "tagloop_predictions",
            "Documents classified, by top label",
            ["endpoint", "label"],
            registry=self.registry,
        )
        self.scored_together = Histogram(
            "tagloop_scored_together_documents",
            "Documents scored in one model call (small requests of one event-loop turn share a call)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
            registry=self.registry,
        )
        self.models_loaded = Gauge(
            "tagloop_models_loaded", "Model versions loaded in this process", registry=self.registry
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """A labelled child, looked up once (``labels()`` costs microseconds on every call)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def predicted(self, endpoint: str, label: str) -> None:
        self._child(self.predictions, endpoint, label).inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.requests, method, route, str(status)).inc()
        self._child(self.latency, route).observe(seconds)


class DeliveryFigures(Protocol):
    """What the delivery gauge reads when scraped (services/notify.py: a snapshot, refreshed
    in the background; no database access on the scrape)."""

    def counts(self) -> dict[str, int]: ...


class DeliveryCounts(Collector):
    """``tagloop_notification_deliveries{status}``: notification deliveries in the delivery log
    by status (pending, sending, delivered, failed), every channel."""

    def __init__(self, notify: DeliveryFigures) -> None:
        self.notify = notify

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering reads nothing

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "tagloop_notification_deliveries",
            "Notification deliveries (webhook, e-mail, apprise) in the delivery log, by status",
            labels=["status"],
        )
        for status, count in sorted(self.notify.counts().items()):
            gauge.add_metric([status], count)
        yield gauge


class InboxFiles(Protocol):
    """What the inbox counters read when scraped: files per (inbox, state), from the database
    at most every few seconds (services/inbox.py), so every server process reports the files
    whichever worker processed them."""

    def file_counts(self) -> dict[tuple[str, str], int]: ...


class InboxCounters(Collector):
    """``tagloop_inbox_files_processed_total{inbox}``, ``tagloop_inbox_files_failed_total{inbox}``
    (files an inbox ended: moved to processed/ or failed/) and ``tagloop_inbox_files{inbox,state}``
    (files in each state now: seen, claimed, training, deploying)."""

    def __init__(self, inbox: InboxFiles) -> None:
        self.inbox = inbox

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering reads nothing

    def collect(self) -> Iterator[Metric]:
        counts = self.inbox.file_counts()
        inboxes = sorted({inbox for inbox, _ in counts})
        processed = CounterMetricFamily(
            "tagloop_inbox_files_processed",
            "Files an inbox trained and deployed by its policy",
            labels=["inbox"],
        )
        failed = CounterMetricFamily(
            "tagloop_inbox_files_failed",
            "Files an inbox refused (error report beside them)",
            labels=["inbox"],
        )
        waiting = GaugeMetricFamily(
            "tagloop_inbox_files", "Files of an inbox not ended yet, by state", labels=["inbox", "state"]
        )
        for inbox in inboxes:
            processed.add_metric([inbox], counts.get((inbox, "processed"), 0))
            failed.add_metric([inbox], counts.get((inbox, "failed"), 0))
            for state in ("seen", "claimed", "training", "deploying"):
                waiting.add_metric([inbox, state], counts.get((inbox, state), 0))
        yield from (processed, failed, waiting)
