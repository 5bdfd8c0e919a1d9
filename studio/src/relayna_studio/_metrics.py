"""Studio's own Prometheus metrics (one registry per runtime; no process-wide state).

Labels are low-cardinality by construction: route ids and outcomes, job
names, ingest methods, never a service, task or token id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["StudioMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StudioMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.federation_requests = Counter(
            "relayna_studio_federation_requests",
            "Calls from Studio to registered services, by route id and outcome.",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.federation_latency = Histogram(
            "relayna_studio_federation_request_duration_seconds",
            "Latency of calls to registered services, by route id and outcome.",
            ["route", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingested_events = Counter(
            "relayna_studio_ingested_events",
            "Events offered to the event store, by ingest method and result.",
            ["method", "result"],
            registry=self.registry,
        )
        self.events_skipped = Counter(
            "relayna_studio_pull_events_skipped",
            "Feed events a pull sync could not fetch because the service's feed had trimmed them.",
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "relayna_studio_job_duration_seconds",
            "Duration of one background job run for one service, by job and outcome.",
            ["job", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "relayna_studio_http_requests",
            "Requests answered by Studio, by route template, method and status class.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.egress_denied = Counter(
            "relayna_studio_egress_denied",
            "Outbound requests or registrations refused by the egress policy, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.audit_entries = Counter(
            "relayna_studio_audit_entries",
            "Audit log entries written, by outcome.",
            ["outcome"],
            registry=self.registry,
        )

        self.provider_requests = Counter(
            "relayna_studio_provider_requests",
            "Calls to Loki, Prometheus and Tempo, by provider and outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.provider_latency = Histogram(
            "relayna_studio_provider_request_duration_seconds",
            "Latency of calls to Loki, Prometheus and Tempo, by provider and outcome.",
            ["provider", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.notifications = Counter(
            "relayna_studio_failed_task_notifications",
            "Failed-task notifications, by target (email, webhook) and outcome.",
            ["target", "outcome"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
