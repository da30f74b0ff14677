"""Prometheus metrics of a server process (`/metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.models_loaded = Gauge(
            "tagloop_models_loaded", "Model versions loaded in this process", registry=self.registry
        )
