"""PromQL for a service's or a task's metrics (pure: config + request → queries, answers → series).

**Kubernetes groups** (cAdvisor and kube-state-metrics series) are scoped to
the pods the service owns through ``kube_pod_labels``: for every selector
label ``k=v`` a pod matches when ``label_<k>`` *or* one of
kube-state-metrics' collision names ``label_<k>_conflict1`` …
``_conflict9`` equals ``v`` (all keys must match). That filter is reduced
to one series per (namespace, pod) — ``max by`` for range queries,
``topk by (…) (1, …)`` for the pod list — so duplicate ownership series
can never make the ``* on(namespace, pod) group_left()`` join
many-to-many (the original's 1.4.29 fix, kept).

**relayna runtime groups** select ``service="<runtime_service_label_value
| selector label 'service' | service_id>"`` over the metrics relayna
exports (``docs/metrics.md``); the original's metric names are mapped to
relayna's (``tasks_started_rate`` reads ``relayna_tasks_received_total``,
``worker_heartbeat`` is the newest scrape time of a worker's consumer
gauge, …), see :data:`GROUPS`.

Every label value is a Go string literal, so no value can change a query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from relayna.errors import ContractError
from relayna_studio._querylang import format_ns, quote

__all__ = [
    "GROUPS",
    "KUBERNETES_GROUPS",
    "MAX_POINTS",
    "RUNTIME_GROUPS",
    "MetricsRequest",
    "group_query",
    "ownership_filter",
    "parse_matrix",
    "pod_queries",
    "pods_from",
    "runtime_service",
    "sanitize_label",
    "window_problem",
]

#: Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS = 11_000
CONFLICT_SUFFIXES = 9
_NON_LABEL = re.compile(r"[^a-zA-Z0-9_]")


@attrs.frozen
class Group:
    """One chart: ``expr`` is a template over ``{sel}`` (the metric selector's
    matchers) and ``{rng}`` (the rate window); ``kind`` ``k8s`` or ``runtime``."""

    name: str
    unit: str
    kind: str
    expr: str
    by: tuple[str, ...] = ()


GROUPS: dict[str, Group] = {
    g.name: g
    for g in (
        Group("cpu_usage", "cores", "k8s", "rate(container_cpu_usage_seconds_total{sel}[{rng}])"),
        Group("memory_usage", "bytes", "k8s", "container_memory_working_set_bytes{sel}"),
        Group("cpu_requests", "cores", "k8s", 'kube_pod_container_resource_requests{sel,resource="cpu"}'),
        Group("cpu_limits", "cores", "k8s", 'kube_pod_container_resource_limits{sel,resource="cpu"}'),
        Group("memory_requests", "bytes", "k8s", 'kube_pod_container_resource_requests{sel,resource="memory"}'),
        Group("memory_limits", "bytes", "k8s", 'kube_pod_container_resource_limits{sel,resource="memory"}'),
        Group("restarts", "count", "k8s", "increase(kube_pod_container_status_restarts_total{sel}[{rng}])"),
        Group(
            "oom_killed", "count", "k8s",
            'max_over_time(kube_pod_container_status_last_terminated_reason{sel,reason="OOMKilled"}[{rng}])',
        ),
        Group("pod_phase", "state", "k8s", "kube_pod_status_phase{sel}", by=("phase",)),
        Group("readiness", "state", "k8s", 'kube_pod_status_ready{sel,condition="true"}'),
        Group("network_receive", "bytes_per_second", "k8s", "rate(container_network_receive_bytes_total{sel}[{rng}])"),
        Group("network_transmit", "bytes_per_second", "k8s", "rate(container_network_transmit_bytes_total{sel}[{rng}])"),
        Group("tasks_started_rate", "per_second", "runtime", "rate(relayna_tasks_received_total{sel}[{rng}])"),
        Group("tasks_failed_rate", "per_second", "runtime", "rate(relayna_handler_failures_total{sel}[{rng}])"),
        Group("tasks_retried_rate", "per_second", "runtime", "rate(relayna_tasks_retried_total{sel}[{rng}])"),
        Group("tasks_dlq_rate", "per_second", "runtime", "rate(relayna_tasks_dead_lettered_total{sel}[{rng}])"),
        Group("task_duration_p95", "seconds", "runtime", "relayna_handler_duration_seconds_bucket{sel}"),
        Group("active_tasks", "count", "runtime", "relayna_consumer_in_flight{sel}"),
        Group("worker_heartbeat", "unix_seconds", "runtime", "timestamp(relayna_consumer_prefetch{sel})"),
        Group(
            "queue_publish_rate", "per_second", "runtime",
            "rate(relayna_publish_confirm_duration_seconds_count{sel}[{rng}])",
        ),
        Group("status_events_rate", "per_second", "runtime", "rate(relayna_statuses_published_total{sel}[{rng}])"),
        Group(
            "observation_events_rate", "per_second", "runtime",
            "rate(relayna_observations_emitted_total{sel}[{rng}])",
        ),
    )
}  # fmt: skip
KUBERNETES_GROUPS = tuple(n for n, g in GROUPS.items() if g.kind == "k8s")
RUNTIME_GROUPS = tuple(n for n, g in GROUPS.items() if g.kind == "runtime")
#: Containers that are real containers (cAdvisor also reports the pod cgroup
#: and the pause container).
_CADVISOR = frozenset({"cpu_usage", "memory_usage"})


@attrs.frozen
class MetricsRequest:
    """``[start, end]`` in seconds, ``step`` seconds; ``pod`` narrows, ``split_by_pod`` splits."""

    start: float
    end: float
    step: int
    groups: tuple[str, ...]
    pod: str | None = None
    split_by_pod: bool = False


def _matchers(pairs: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name}{op}{quote(value)}" for name, op, value in pairs)


def sanitize_label(name: str) -> str:
    """kube-state-metrics' label-name sanitising: anything outside ``[a-zA-Z0-9_]`` → ``_``."""
    return _NON_LABEL.sub("_", name)


def ownership_filter(config: Mapping[str, Any]) -> str:
    """``kube_pod_labels`` series of the service's pods (one or more per pod)."""
    ns_label = config.get("namespace_label") or "namespace"
    base: list[tuple[str, str, str]] = []
    if config.get("namespace"):
        base.append((ns_label, "=", config["namespace"]))
    on = f"on({ns_label}, {config.get('pod_label') or 'pod'})"
    parts = []
    for key, value in sorted(config["service_selector_labels"].items()):
        name = "label_" + sanitize_label(key)
        names = [name] + [f"{name}_conflict{i}" for i in range(1, CONFLICT_SUFFIXES + 1)]
        alternatives = [f"kube_pod_labels{{{_matchers([*base, (n, '=', value)])}}}" for n in names]
        parts.append("(" + " or ".join(alternatives) + ")")
    return f" and {on} ".join(parts)


def runtime_service(config: Mapping[str, Any], service_id: str) -> str:
    value = config.get("runtime_service_label_value") or config["service_selector_labels"].get(
        "service"
    )
    return str(value or service_id)


def group_query(
    config: Mapping[str, Any], service_id: str, group: str, request: MetricsRequest
) -> str:
    """The PromQL of one group.

    Raises:
        ContractError: an unknown group name.
    """
    spec = GROUPS.get(group)
    if spec is None:
        raise ContractError(
            f"unknown metrics group {group!r}", errors=[("group", f"one of {', '.join(GROUPS)}")]
        )
    ns_label = config.get("namespace_label") or "namespace"
    pod_label = config.get("pod_label") or "pod"
    pairs: list[tuple[str, str, str]] = []
    if spec.kind == "runtime":
        pairs.append(("service", "=", runtime_service(config, service_id)))
    elif config.get("namespace"):
        pairs.append((ns_label, "=", config["namespace"]))
    if request.pod is not None:
        pairs.append((pod_label, "=", request.pod))
    if group in _CADVISOR:
        container = config.get("container_label") or "container"
        pairs += [(container, "!=", ""), (container, "!=", "POD"), ("image", "!=", "")]
    sel = _matchers(pairs)
    rng = f"{int(config.get('rate_window_seconds') or 300)}s"
    inner = spec.expr.replace("{rng}", rng)
    inner = inner.replace("{sel,", "{" + sel + ", " if sel else "{").replace(
        "{sel}", "{" + sel + "}"
    )
    by = list(spec.by)
    if request.pod is not None or request.split_by_pod:
        by.append(pod_label)
    grouping = f" by ({', '.join(by)})" if by else ""
    if spec.kind == "k8s":
        owned = f"max by ({ns_label}, {pod_label}) ({ownership_filter(config)})"
        inner = f"{inner} * on({ns_label}, {pod_label}) group_left() {owned}"
        return f"sum{grouping} ({inner})"
    if group == "task_duration_p95":
        le_by = ", ".join([*by, "le"])
        return f"histogram_quantile(0.95, sum by ({le_by}) (rate({inner}[{rng}])))"
    if group == "worker_heartbeat":
        return f"max{grouping} ({inner})"
    return f"sum{grouping} ({inner})"


def pod_queries(config: Mapping[str, Any]) -> tuple[str, str]:
    """(labels of each owned pod, phase of each owned pod): two instant queries."""
    ns_label = config.get("namespace_label") or "namespace"
    pod_label = config.get("pod_label") or "pod"
    owned = ownership_filter(config)
    labels = f"topk by ({ns_label}, {pod_label}) (1, {owned})"
    base = _matchers([(ns_label, "=", config["namespace"])]) if config.get("namespace") else ""
    phase = (
        f"kube_pod_status_phase{{{base}}} == 1 and on({ns_label}, {pod_label}) "
        f"max by ({ns_label}, {pod_label}) ({owned})"
    )
    return labels, phase


def _value(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _shape(what: str) -> ContractError:
    return ContractError(
        "Prometheus answered with an unexpected shape", errors=[("prometheus", what)]
    )


def _result(body: object, kind: str) -> list[Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != kind:
        raise _shape(f"expected a {kind} result")
    result = data.get("result")
    if not isinstance(result, list):
        raise _shape("result is not a list")
    return result


def parse_matrix(body: object, group: str, *, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Series of a range query: ``{metric, unit, labels, points[{timestamp, value}]}``;
    NaN and ±Inf become ``null``.

    Raises:
        ContractError: not a ``matrix`` answer.
    """
    out: list[dict[str, Any]] = []
    for series in _result(body, "matrix"):
        metric = series.get("metric") if isinstance(series, dict) else None
        values = series.get("values") if isinstance(series, dict) else None
        if not isinstance(metric, dict) or not isinstance(values, list):
            raise _shape("series without metric/values")
        points = []
        for pair in values:
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], int | float):
                raise _shape("a point is not [time, value]")
            points.append({"timestamp": format_ns(round(pair[0] * 1e9)), "value": _value(pair[1])})
        labels = {str(k): str(v) for k, v in metric.items() if k not in drop}
        out.append(
            {"metric": group, "unit": GROUPS[group].unit, "labels": labels, "points": points}
        )
    out.sort(key=lambda s: sorted(dict(s["labels"]).items()))
    return out


def pods_from(
    config: Mapping[str, Any], labels_body: object, phase_body: object
) -> list[dict[str, Any]]:
    """``[{name, namespace, phase, labels}]`` from the two :func:`pod_queries` answers.

    The ``labels`` of a pod are its ``label_*`` series labels with the prefix
    removed (a ``_conflictN`` suffix is kept: it is a different Kubernetes key).

    Raises:
        ContractError: not ``vector`` answers.
    """
    ns_label = config.get("namespace_label") or "namespace"
    pod_label = config.get("pod_label") or "pod"
    phases: dict[tuple[str, str], str] = {}
    for sample in _result(phase_body, "vector"):
        metric = sample.get("metric") if isinstance(sample, dict) else None
        if isinstance(metric, dict) and metric.get(pod_label):
            phases[(str(metric.get(ns_label, "")), str(metric[pod_label]))] = str(
                metric.get("phase", "")
            )
    pods = []
    for sample in _result(labels_body, "vector"):
        metric = sample.get("metric") if isinstance(sample, dict) else None
        if not isinstance(metric, dict) or not metric.get(pod_label):
            continue
        namespace = str(metric.get(ns_label, "")) or None
        name = str(metric[pod_label])
        pods.append(
            {
                "name": name,
                "namespace": namespace,
                "phase": phases.get((namespace or "", name)),
                "labels": {
                    str(k)[len("label_") :]: str(v)
                    for k, v in sorted(metric.items())
                    if str(k).startswith("label_")
                },
            }
        )
    pods.sort(key=lambda p: (p["namespace"] or "", p["name"]))
    return pods


def window_problem(start: float, end: float, step: int, max_seconds: float) -> ContractError | None:
    """Why a window cannot be asked for, or ``None``."""
    if start > end:
        return ContractError("from is after to", errors=[("from", "must not be after to")])
    if end - start > max_seconds:
        return ContractError(
            "window too large",
            errors=[("to", f"the window is at most {int(max_seconds)} seconds")],
        )
    if (end - start) / step + 1 > MAX_POINTS:
        return ContractError(
            "too many points",
            errors=[("step", f"(to - from) / step must stay under {MAX_POINTS} points")],
        )
    return None
