"""Client lifecycle on a broker adapter: declare a topology, publish with confirms."""

from relayna.rabbitmq._client import RelaynaClient, open_relayna_client
from relayna.rabbitmq._protocols import (
    AggregationTopology,
    StatusTopology,
    TaskTopology,
    WorkflowTopology,
)
from relayna.rabbitmq._task_ids import (
    CLAIM_TASK_SCRIPT,
    RELEASE_TASK_SCRIPT,
    IfExists,
    TaskIds,
    check_if_exists,
)
from relayna.rabbitmq._trace import (
    TraceContext,
    extract_trace,
    extract_trace_context,
    inject_trace_headers,
    parse_traceparent,
    parse_tracestate,
)

__all__ = [
    "CLAIM_TASK_SCRIPT",
    "RELEASE_TASK_SCRIPT",
    "AggregationTopology",
    "IfExists",
    "RelaynaClient",
    "StatusTopology",
    "TaskIds",
    "TaskTopology",
    "TraceContext",
    "WorkflowTopology",
    "check_if_exists",
    "extract_trace",
    "extract_trace_context",
    "inject_trace_headers",
    "open_relayna_client",
    "parse_traceparent",
    "parse_tracestate",
]
