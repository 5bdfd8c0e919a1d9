"""Prometheus metrics (``prometheus-client``) with low-cardinality labels only.

Two kinds of metric, so that the hot path pays almost nothing:

* **Counters and gauges read at scrape time.** The runtimes already count
  what they do (``ConsumerStats``, ``HubStatistics``, ``StatusStreamStats``,
  the observation pump). :meth:`RelaynaMetrics.track_consumer` /
  :meth:`~RelaynaMetrics.track_hub` / :meth:`~RelaynaMetrics.track_streams`
  register them; a collector turns their numbers into ``relayna_*_total``
  counters and gauges when Prometheus scrapes. Nothing happens per message.
* **Histograms observed at event time**: handler duration (per delivery),
  publish-to-confirm latency (per publish of a consumer's client), status-hub
  write latency and lag (per written batch).

Labels: every label name must be in :data:`ALLOWED_LABELS` (checked in code
when a metric is defined, :func:`check_label_names`); names that carry
per-task values (``task_id``, ``correlation_id`` ...) are refused outright,
and label *values* come only from configuration (queue and consumer names,
the service name, fixed outcome/reason vocabularies), never from a message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST as _PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relayna.errors import ConfigurationError

__all__ = [
    "ALLOWED_LABELS",
    "CONTENT_TYPE_LATEST",
    "FORBIDDEN_LABELS",
    "RelaynaMetrics",
    "check_label_names",
]

CONTENT_TYPE_LATEST: str = _PROMETHEUS_CONTENT_TYPE
"""The ``Content-Type`` of the Prometheus text exposition served at ``/metrics``."""

#: The only label names a relayna metric may have.
ALLOWED_LABELS = frozenset(
    {"service", "queue", "consumer", "outcome", "topology_kind", "reason", "kind", "stage"}
)
#: Label names that would carry one value per task/message: always refused.
FORBIDDEN_LABELS = frozenset(
    {"task_id", "correlation_id", "request_id", "message_id", "event_id", "dlq_id",
     "trace_id", "span_id", "worker_id", "pod", "pod_name", "container", "parent_task_id"}
)  # fmt: skip

_HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


def check_label_names(names: Iterable[str]) -> tuple[str, ...]:
    """Return ``names`` when every one is allowed.

    Raises:
        ConfigurationError: a name outside :data:`ALLOWED_LABELS` (a
            high-cardinality name such as ``task_id`` is named as such).
    """
    out = tuple(names)
    for name in out:
        if name in FORBIDDEN_LABELS:
            raise ConfigurationError(
                f"metric label {name!r} would create one series per task: not allowed"
            )
        if name not in ALLOWED_LABELS:
            raise ConfigurationError(
                f"metric label {name!r} is not in the allowlist {sorted(ALLOWED_LABELS)}"
            )
    return out


class _ConsumerLike(Protocol):
    consumer_name: str

    @property
    def queue_name(self) -> str: ...
    @property
    def stats(self) -> Any: ...
    @property
    def inflight(self) -> int: ...
    @property
    def effective_prefetch(self) -> int: ...
    @property
    def observations_dropped(self) -> int: ...
    @property
    def observations_emitted(self) -> int: ...


class _HubLike(Protocol):
    @property
    def stats(self) -> Any: ...
    @property
    def config(self) -> Any: ...


_CONSUMER_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("tasks_received", "received", "Deliveries taken from the queue"),
    ("tasks_acked", "acked", "Deliveries acked (done, or a duplicate suppressed)"),
    ("tasks_retried", "retried", "Deliveries republished to the retry queue"),
    ("tasks_dead_lettered", "dead_lettered", "Deliveries published to the dead-letter queue"),
    ("tasks_rejected", "rejected", "Deliveries rejected without a retry policy"),
    ("tasks_requeued", "requeued", "Deliveries nacked back to the queue"),
    ("handler_failures", "handler_failures", "Handler calls that raised"),
    ("statuses_published", "statuses_published", "Lifecycle statuses published"),
    ("consumer_reconnects", "reconnects", "Broker sessions re-opened after a failure"),
    (
        "consumer_timeouts",
        "consumer_timeouts",
        "Consumer channels the broker closed because a delivery outlived its consumer timeout",
    ),
    ("consumer_settle_errors", "settle_errors", "Settlements that failed"),
)


class _Collector(Collector):
    """Reads the tracked runtimes' counters at scrape time."""

    def __init__(self, metrics: RelaynaMetrics) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # computed on collect: the names depend on what is tracked

    def collect(self) -> Iterator[Metric]:
        service = self._m.service
        labels = ["service", "queue", "consumer"]
        families = {
            name: CounterMetricFamily(f"relayna_{name}", doc, labels=labels)
            for name, _, doc in _CONSUMER_COUNTERS
        }
        poison = CounterMetricFamily(
            "relayna_messages_rejected", "Malformed deliveries dead-lettered, by reason",
            labels=[*labels, "reason"],
        )  # fmt: skip
        ended = {
            kind: CounterMetricFamily(
                f"relayna_tasks_{kind}", f"Tasks that ended {kind}, by phase (before_start, running)",
                labels=[*labels, "phase"],
            )
            for kind in ("cancelled", "expired")
        }  # fmt: skip
        drops = CounterMetricFamily(
            "relayna_observations_dropped", "Observations dropped by a full pump buffer",
            labels=labels,
        )  # fmt: skip
        emitted = CounterMetricFamily(
            "relayna_observations_emitted", "Observations handed to the observation sink",
            labels=labels,
        )  # fmt: skip
        inflight = GaugeMetricFamily(
            "relayna_consumer_in_flight", "Handlers running", labels=labels
        )
        prefetch = GaugeMetricFamily("relayna_consumer_prefetch", "Prefetch", labels=labels)
        for consumer in self._m.consumers:
            values = [service, consumer.queue_name, consumer.consumer_name]
            stats = consumer.stats
            for name, attr, _ in _CONSUMER_COUNTERS:
                families[name].add_metric(values, float(getattr(stats, attr)))
            for reason, count in sorted(stats.poison.items()):
                poison.add_metric([*values, str(reason)], float(count))
            for kind, family in ended.items():
                for phase, count in sorted(getattr(stats, kind, {}).items()):
                    family.add_metric([*values, str(phase)], float(count))
            drops.add_metric(values, float(consumer.observations_dropped))
            emitted.add_metric(values, float(consumer.observations_emitted))
            inflight.add_metric(values, float(consumer.inflight))
            prefetch.add_metric(values, float(consumer.effective_prefetch))
        if self._m.consumers:
            yield from families.values()
            yield from (poison, *ended.values(), drops, emitted, inflight, prefetch)
        yield from self._hub_families(service)
        yield from self._stream_families(service)

    def _hub_families(self, service: str) -> Iterator[Metric]:
        if not self._m.hubs:
            return
        labels = ["service", "queue"]
        fams = {
            "received": CounterMetricFamily("relayna_hub_events_received", "Status messages taken", labels=labels),
            "stored": CounterMetricFamily("relayna_hub_events_written", "Status events written to the store", labels=labels),
            "duplicates": CounterMetricFamily("relayna_hub_events_duplicate", "Status events dropped as duplicates", labels=labels),
            "store_failures": CounterMetricFamily("relayna_store_errors", "Store writes that failed", labels=[*labels, "kind"]),
            "consumer_restarts": CounterMetricFamily("relayna_hub_reconnects", "Status consumer re-opens", labels=labels),
        }  # fmt: skip
        malformed = CounterMetricFamily(
            "relayna_hub_events_malformed", "Malformed status messages acked, by reason",
            labels=[*labels, "reason"],
        )  # fmt: skip
        for hub in self._m.hubs:
            values = [service, str(hub.config.queue)]
            stats = hub.stats
            for attr, fam in fams.items():
                extra = ["status_hub"] if attr == "store_failures" else []
                fam.add_metric([*values, *extra], float(getattr(stats, attr, 0)))
            for reason, count in sorted(stats.malformed.items()):
                malformed.add_metric([*values, str(reason)], float(count))
        yield from fams.values()
        yield malformed

    def _stream_families(self, service: str) -> Iterator[Metric]:
        if not self._m.streams:
            return
        open_ = GaugeMetricFamily(
            "relayna_sse_connections", "Open SSE status streams", labels=["service"]
        )
        sent = CounterMetricFamily(
            "relayna_sse_events_sent", "SSE status events sent", labels=["service"]
        )
        slow = CounterMetricFamily(
            "relayna_sse_slow_client_disconnects", "SSE clients dropped for not reading", labels=["service"]
        )  # fmt: skip
        opened = sum(s.opened for s in self._m.streams)
        closed = sum(s.closed for s in self._m.streams)
        open_.add_metric([service], float(max(0, opened - closed)))
        sent.add_metric([service], float(sum(s.sent for s in self._m.streams)))
        slow.add_metric([service], float(sum(s.slow_disconnects for s in self._m.streams)))
        yield from (open_, sent, slow)


class RelaynaMetrics:
    """The metrics of one process, in their own registry.

    Args:
        service: the ``service`` label value of every series.
        registry: defaults to a new ``CollectorRegistry`` (never the global one,
            so two runtimes in one process, or tests, do not collide).
    """

    def __init__(self, service: str = "relayna", registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        self.consumers: list[_ConsumerLike] = []
        self.hubs: list[_HubLike] = []
        self.streams: list[Any] = []
        self.handler_seconds = self.histogram(
            "relayna_handler_duration_seconds", "Handler run time per delivery",
            ("service", "queue", "consumer", "outcome"), _HANDLER_BUCKETS,
        )  # fmt: skip
        self.hub_write_seconds = self.histogram(
            "relayna_hub_write_duration_seconds", "Status hub store round trip per batch",
            ("service", "queue"), _STORE_BUCKETS,
        )  # fmt: skip
        self.hub_lag_seconds = self.histogram(
            "relayna_hub_lag_seconds", "Status event age when the hub stored it",
            ("service", "queue"), _HANDLER_BUCKETS,
        )  # fmt: skip
        self.publish_seconds = self.histogram(
            "relayna_publish_confirm_duration_seconds",
            "Publish until the broker confirm, by kind (publish_task, publish_status, publish_raw, ...)",
            ("service", "kind"),
            _STORE_BUCKETS,
        )
        self.registry.register(_Collector(self))
        self._handler_children: dict[tuple[str, str, str], Any] = {}
        self._publish_children: dict[str, Any] = {}

    def histogram(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> Histogram:
        """Define a histogram in this registry; label names are checked."""
        return Histogram(name, documentation, check_label_names(labels),
                         registry=self.registry, buckets=buckets)  # fmt: skip

    # -- registration -----------------------------------------------------------

    def track_consumer(self, consumer: _ConsumerLike) -> None:
        """Export a consumer's counters (scraped; nothing per message)."""
        if consumer not in self.consumers:
            self.consumers.append(consumer)

    def track_hub(self, hub: _HubLike) -> None:
        if hub not in self.hubs:
            self.hubs.append(hub)

    def track_streams(self, stats: Any) -> None:
        """Export a runtime's ``StatusStreamStats`` (SSE connections and events)."""
        if stats not in self.streams:
            self.streams.append(stats)

    # -- event time ----------------------------------------------------------------

    def observe_handler(self, queue: str, consumer: str, outcome: str, seconds: float) -> None:
        """One handler run: ``outcome`` is ``succeeded``, ``failed`` or ``manual_retry``."""
        key = (queue, consumer, outcome)
        child = self._handler_children.get(key)
        if child is None:
            child = self._handler_children[key] = self.handler_seconds.labels(
                self.service, queue, consumer, outcome
            )
        child.observe(seconds)

    def observe_publish(self, kind: str, seconds: float) -> None:
        """One confirmed publish (``kind`` is the client operation, a fixed vocabulary)."""
        child = self._publish_children.get(kind)
        if child is None:
            child = self._publish_children[kind] = self.publish_seconds.labels(self.service, kind)
        child.observe(seconds)

    def observe_hub_write(self, queue: str, seconds: float, newest_event_at: float | None) -> None:
        """One hub write round trip; ``newest_event_at`` (epoch s) gives the lag."""
        self.hub_write_seconds.labels(self.service, queue).observe(seconds)
        if newest_event_at is not None:
            self.hub_lag_seconds.labels(self.service, queue).observe(
                max(0.0, time.time() - newest_event_at)
            )

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric in the registry."""
        return bytes(generate_latest(self.registry))
