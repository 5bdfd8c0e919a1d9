"""The OpenAPI declarations of the observability routes (graph, feed, worker
health, capabilities, metrics), next to their factories' shapes."""

from __future__ import annotations

from typing import Any

from relayna.api._openapi import Operation, Parameter, ResponseSpec, error_responses, json_content
from relayna.contracts import IDENTIFIER_SCHEMA
from relayna.observability import EDGE_KINDS, FEED_MAX_LIMIT, NODE_KINDS

__all__ = [
    "capabilities_operation",
    "feed_operation",
    "graph_operation",
    "health_operation",
    "metrics_operation",
]

_TAGS = ("observability",)
_STR_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_OBJECT: dict[str, Any] = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_NODE = _object(
    ["id", "kind", "task_id", "label", "timestamp", "annotations"],
    id={"type": "string"},
    kind={"enum": list(NODE_KINDS)},
    task_id={"type": "string"},
    label={"type": "string"},
    timestamp=_STR_OR_NULL,
    annotations=_OBJECT,
)
_EDGE = _object(
    ["source", "target", "kind", "timestamp", "annotations"],
    source={"type": "string"},
    target={"type": "string"},
    kind={"enum": list(EDGE_KINDS)},
    timestamp=_STR_OR_NULL,
    annotations=_OBJECT,
)
_SUMMARY = _object(
    ["status", "started_at", "ended_at", "duration_ms", "graph_completeness"],
    status=_STR_OR_NULL,
    started_at=_STR_OR_NULL,
    ended_at=_STR_OR_NULL,
    duration_ms={"type": ["integer", "null"]},
    graph_completeness={"enum": ["full", "partial"]},
)


def graph_operation(id_name: str, field: str) -> Operation:
    graph = _object(
        [field, "topology_kind", "summary", "nodes", "edges", "annotations", "related_task_ids"],
        **{field: {"type": "string"}},
        topology_kind={"type": "string"},
        summary=_ref("ExecutionGraphSummary"),
        nodes={"type": "array", "items": _ref("ExecutionGraphNode")},
        edges={"type": "array", "items": _ref("ExecutionGraphEdge")},
        annotations=_OBJECT,
        related_task_ids={"type": "array", "items": {"type": "string"}},
    )
    name = "ExecutionGraph" if field == "task_id" else f"ExecutionGraph.{field}"
    return Operation(
        summary="The execution graph of a task (what caused what)",
        description=(
            "404 only when no status, observation or DLQ record exists for the task."
            " `format=mermaid` answers a Mermaid `flowchart LR` as text/vnd.mermaid."
        ),
        parameters=[
            Parameter(id_name, "path", IDENTIFIER_SCHEMA, description="the task id"),
            Parameter(
                "format", "query", {"enum": ["json", "mermaid"]}, description="json (default)"
            ),
        ],
        responses={
            200: ResponseSpec(
                "The graph", {**json_content(_ref(name)), "text/vnd.mermaid": {"type": "string"}}
            ),
            **error_responses(404, 422, 503),
        },
        components={
            name: graph,
            "ExecutionGraphSummary": _SUMMARY,
            "ExecutionGraphNode": _NODE,
            "ExecutionGraphEdge": _EDGE,
        },
        tags=_TAGS,
        operation_id=f"execution_graph_{id_name}",
    )


_FEED_ITEM = _object(
    ["cursor", "task_id", "event_type", "source_kind", "event_id", "payload"],
    cursor={"type": "string"},
    task_id={"type": "string"},
    event_type={"type": ["string", "null"]},
    source_kind={"enum": ["status", "observation"]},
    component=_STR_OR_NULL,
    timestamp=_STR_OR_NULL,
    event_id={"type": "string"},
    correlation_id=_STR_OR_NULL,
    parent_task_id=_STR_OR_NULL,
    payload=_OBJECT,
)


def feed_operation() -> Operation:
    page = _object(
        ["count", "items", "next_cursor", "reset", "has_more"],
        count={"type": "integer", "minimum": 0},
        items={"type": "array", "items": _ref("ServiceEvent")},
        next_cursor=_STR_OR_NULL,
        reset={"type": "boolean"},
        has_more={"type": "boolean"},
        skipped={"type": ["integer", "null"], "minimum": 0},
    )
    return Operation(
        summary="Service events after a cursor, oldest first",
        description=(
            "`reset: true`: the cursor fell off the retained window (or the feed was"
            " recreated); the page starts at the oldest retained event and `skipped`"
            " counts the events missed when known."
        ),
        parameters=[
            Parameter(
                "after",
                "query",
                {"type": "string", "pattern": r"^([0-9a-f]{16}-[0-9]{1,18})?$"},
                description="the next_cursor of the previous page (empty or absent: the oldest)",
            ),
            Parameter(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": FEED_MAX_LIMIT, "default": 100},
            ),
        ],
        responses={
            200: ResponseSpec("A page of events", json_content(_ref("FeedPage"))),
            **error_responses(404, 422, 503),
        },
        components={"FeedPage": page, "ServiceEvent": _FEED_ITEM},
        tags=_TAGS,
        operation_id="events_feed",
    )


def health_operation() -> Operation:
    worker = _object(
        ["worker_name", "worker_id", "running", "state", "last_heartbeat_at",
         "last_heartbeat_age_seconds", "stale", "in_flight", "queue_name", "active_leases"],
        worker_name={"type": "string"},
        worker_id={"type": "string"},
        running={"type": "boolean"},
        state={"type": "string"},
        last_heartbeat_at={"type": "string"},
        last_heartbeat_age_seconds={"type": "number", "minimum": 0},
        stale={"type": "boolean"},
        in_flight={"type": "integer"},
        processed={"type": "integer"},
        queue_name={"type": "string"},
        pid={"type": "integer"},
        host={"type": "string"},
        started_at={"type": "string"},
        active_leases={"type": "array"},
    )  # fmt: skip
    body = _object(
        ["reported_at", "stale_after_seconds", "workers"],
        reported_at={"type": "string"},
        stale_after_seconds={"type": "number"},
        workers={"type": "array", "items": _ref("WorkerHealth")},
    )
    return Operation(
        summary="Live worker heartbeats",
        responses={
            200: ResponseSpec("The workers", json_content(body)),
            **error_responses(503),
        },
        components={"WorkerHealth": worker},
        tags=_TAGS,
        operation_id="health_workers",
    )


def capabilities_operation() -> Operation:
    body = _object(
        ["relayna_version", "topology_kind", "alias_config_summary", "supported_routes",
         "feature_flags", "service_metadata"],
        relayna_version={"type": "string"},
        topology_kind={"type": "string"},
        topology_summary={"type": ["object", "null"]},
        alias_config_summary=_object(
            ["aliasing_enabled", "payload_aliases", "http_aliases"],
            aliasing_enabled={"type": "boolean"},
            payload_aliases=_OBJECT,
            http_aliases=_OBJECT,
        ),
        supported_routes={"type": "array", "items": {"type": "string"}},
        feature_flags=_OBJECT,
        service_metadata=_object(
            ["service_title", "capability_path", "discovery_source", "compatibility"],
            service_title={"type": "string"},
            capability_path={"type": "string"},
            discovery_source={"type": "string"},
            compatibility={"type": "string"},
        ),
    )  # fmt: skip
    return Operation(
        summary="What this service offers (capabilities_v1)",
        description="`supported_routes` lists the route ids of the routes mounted in the app.",
        responses={200: ResponseSpec("The capability document", json_content(body))},
        tags=_TAGS,
        operation_id="capabilities",
    )


def metrics_operation() -> Operation:
    return Operation(
        summary="Prometheus metrics (text exposition format)",
        responses={
            200: ResponseSpec("The metrics", {"text/plain": {"type": "string"}}),
            **error_responses(503),
        },
        tags=_TAGS,
        operation_id="metrics",
    )
