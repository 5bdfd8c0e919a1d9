"""Client lifecycle on a broker adapter: declare a topology, publish with confirms."""

from relayna._deprecated import moved_names
from relayna.rabbitmq._cancel import (
    CANCEL_SCRIPT,
    CancelResult,
    CancelStore,
    ControlMessage,
    GateResult,
    Step,
    cancel_task,
    declare_control,
)
from relayna.rabbitmq._client import RelaynaClient, open_relayna_client, with_deadline
from relayna.rabbitmq._protocols import (
    AggregationTopology,
    StatusTopology,
    TaskTopology,
    WorkflowTopology,
)
from relayna.rabbitmq._task_ids import IfExists, TaskIds, check_if_exists

__all__ = [
    "CANCEL_SCRIPT",
    "AggregationTopology",
    "CancelResult",
    "CancelStore",
    "ControlMessage",
    "GateResult",
    "Step",
    "IfExists",
    "RelaynaClient",
    "StatusTopology",
    "TaskIds",
    "TaskTopology",
    "WorkflowTopology",
    "cancel_task",
    "check_if_exists",
    "declare_control",
    "open_relayna_client",
    "with_deadline",
]

_TRACE_HELPERS = (
    "TraceContext",
    "extract_trace",
    "extract_trace_context",
    "inject_trace_headers",
    "parse_traceparent",
    "parse_tracestate",
)

#: The W3C trace context helpers were re-exported here; they belong to
#: relayna.observability, the layer that owns tracing. The task id scripts
#: are details of TaskIds.
__getattr__ = moved_names(
    __name__,
    {
        **{
            name: (f"relayna.observability:{name}", "import it from relayna.observability")
            for name in _TRACE_HELPERS
        },
        "CLAIM_TASK_SCRIPT": ("relayna.rabbitmq._task_ids:CLAIM_TASK_SCRIPT", "use TaskIds"),
        "RELEASE_TASK_SCRIPT": ("relayna.rabbitmq._task_ids:RELEASE_TASK_SCRIPT", "use TaskIds"),
    },
)
