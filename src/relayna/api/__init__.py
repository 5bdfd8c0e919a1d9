"""Starlette integration: the runtime lifespan and the route factories (status, health, DLQ, observability, workflow).

``app = Starlette(routes=status_routes(), lifespan=relayna_lifespan(RuntimeConfig(...)))``
"""

from relayna.api._body import BodyError, read_json_body
from relayna.api._cancel_routes import cancel_routes
from relayna.api._dlq_common import (
    Authorize,
)
from relayna.api._dlq_routes import dlq_routes
from relayna.api._health import health_routes
from relayna.api._history import MAX_LIMIT, MAX_SCAN, MAX_SECONDS, HistoryParams
from relayna.api._lifespan import (
    RelaynaRuntime,
    RuntimeConfig,
    open_relayna_runtime,
    relayna_lifespan,
)
from relayna.api._observe_routes import (
    CAPABILITY_PATH,
    capabilities_routes,
    execution_routes,
    feed_routes,
    metrics_routes,
    mounted_route_ids,
    serve_metrics,
    worker_health_document,
    worker_health_routes,
)
from relayna.api._openapi import (
    ERROR_SCHEMA,
    OPENAPI_VERSION,
    Link,
    Operation,
    Parameter,
    ResponseSpec,
    document,
    error_responses,
    json_content,
    openapi_document,
    openapi_route,
    operations_of,
    undocumented_routes,
)
from relayna.api._route_ids import (
    BROKER_DLQ_IMPORT_ROUTE_ID,
    BROKER_DLQ_MESSAGES_ROUTE_ID,
    BROKER_DLQ_QUEUES_ROUTE_ID,
    DLQ_CAPABILITY_ROUTE_IDS,
    DLQ_MESSAGE_DETAIL_ROUTE_ID,
    DLQ_MESSAGES_ROUTE_ID,
    DLQ_QUEUES_ROUTE_ID,
    DLQ_REPLAY_ROUTE_ID,
    EVENTS_FEED,
    EXECUTION_GRAPH,
    EXECUTIONS_GRAPH,
    FAILED_TASKS_CAPABILITY_ROUTE_IDS,
    FAILED_TASKS_DELETE_ROUTE_ID,
    FAILED_TASKS_DETAIL_ROUTE_ID,
    FAILED_TASKS_INVESTIGATE_ROUTE_ID,
    FAILED_TASKS_LIST_ROUTE_ID,
    FAILED_TASKS_RETRY_ROUTE_ID,
    FAILED_TASKS_UNINVESTIGATE_ROUTE_ID,
    HEALTH_WORKERS,
    HISTORY_LIST,
    KNOWN_ROUTE_IDS,
    METRICS,
    ROUTE_ID_ALIASES,
    STATUS_EVENTS,
    STATUS_HISTORY,
    STATUS_LATEST,
    TASK_CANCEL,
    WORKFLOW_CANCEL,
    WORKFLOW_CAPABILITY_ROUTE_IDS,
    WORKFLOW_REPLAY,
    WORKFLOW_RUNS,
    WORKFLOW_STAGES,
    WORKFLOW_TOPOLOGY,
)
from relayna.api._routes import JSONResponse as ORJSONResponse
from relayna.api._routes import error_response, status_routes
from relayna.api._serve import serve_asgi, serving
from relayna.api._sse import SSE_HEADERS, StatusEventStreamResponse, encode_item
from relayna.api._workflow_routes import workflow_routes

__all__ = [
    "BodyError",
    "read_json_body",
    "ERROR_SCHEMA",
    "OPENAPI_VERSION",
    "Operation",
    "Link",
    "Parameter",
    "ResponseSpec",
    "document",
    "error_responses",
    "json_content",
    "openapi_document",
    "openapi_route",
    "operations_of",
    "undocumented_routes",
    "CAPABILITY_PATH",
    "EVENTS_FEED",
    "EXECUTION_GRAPH",
    "EXECUTIONS_GRAPH",
    "HEALTH_WORKERS",
    "HISTORY_LIST",
    "KNOWN_ROUTE_IDS",
    "METRICS",
    "ROUTE_ID_ALIASES",
    "STATUS_EVENTS",
    "STATUS_HISTORY",
    "STATUS_LATEST",
    "TASK_CANCEL",
    "cancel_routes",
    "WORKFLOW_CANCEL",
    "WORKFLOW_CAPABILITY_ROUTE_IDS",
    "WORKFLOW_REPLAY",
    "WORKFLOW_RUNS",
    "WORKFLOW_STAGES",
    "WORKFLOW_TOPOLOGY",
    "capabilities_routes",
    "execution_routes",
    "feed_routes",
    "metrics_routes",
    "mounted_route_ids",
    "serve_metrics",
    "worker_health_document",
    "worker_health_routes",
    "BROKER_DLQ_IMPORT_ROUTE_ID",
    "BROKER_DLQ_MESSAGES_ROUTE_ID",
    "BROKER_DLQ_QUEUES_ROUTE_ID",
    "DLQ_CAPABILITY_ROUTE_IDS",
    "DLQ_MESSAGES_ROUTE_ID",
    "DLQ_MESSAGE_DETAIL_ROUTE_ID",
    "DLQ_QUEUES_ROUTE_ID",
    "DLQ_REPLAY_ROUTE_ID",
    "FAILED_TASKS_CAPABILITY_ROUTE_IDS",
    "FAILED_TASKS_DELETE_ROUTE_ID",
    "FAILED_TASKS_DETAIL_ROUTE_ID",
    "FAILED_TASKS_INVESTIGATE_ROUTE_ID",
    "FAILED_TASKS_LIST_ROUTE_ID",
    "FAILED_TASKS_RETRY_ROUTE_ID",
    "FAILED_TASKS_UNINVESTIGATE_ROUTE_ID",
    "Authorize",
    "MAX_LIMIT",
    "MAX_SCAN",
    "MAX_SECONDS",
    "SSE_HEADERS",
    "HistoryParams",
    "ORJSONResponse",
    "RelaynaRuntime",
    "RuntimeConfig",
    "StatusEventStreamResponse",
    "encode_item",
    "dlq_routes",
    "error_response",
    "health_routes",
    "open_relayna_runtime",
    "relayna_lifespan",
    "serve_asgi",
    "serving",
    "status_routes",
    "workflow_routes",
]


def __getattr__(name: str) -> object:
    if name == "JSONResponse":  # it shadowed starlette.responses.JSONResponse
        import warnings

        warnings.warn(
            "relayna.api.JSONResponse is deprecated: use relayna.api.ORJSONResponse "
            "(the same orjson-encoded response)",
            DeprecationWarning,
            stacklevel=2,
        )
        return ORJSONResponse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
