"""Route ids: the names the route factories give their routes.

The capability document lists the ids of the routes that are *mounted* in
the app (found by walking the app's routes at request time), so it can never
advertise a route the service does not serve. Ids are the original's wire
names (``execution.graph``, ``status.history`` ...), which a control plane
gates its calls on. Two routes are also advertised under a second id
(:data:`ROUTE_ID_ALIASES`): ``history.list`` next to ``status.history`` and
``executions.graph`` next to ``execution.graph``, the names relayna's own
issue gave them, so a control plane written against either spelling finds
the route. The route's name stays the original id.
"""

from __future__ import annotations

__all__ = [
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
    "EVENTS_FEED",
    "EXECUTIONS_GRAPH",
    "EXECUTION_GRAPH",
    "HISTORY_LIST",
    "HEALTH_WORKERS",
    "KNOWN_ROUTE_IDS",
    "METRICS",
    "ROUTE_ID_ALIASES",
    "STATUS_EVENTS",
    "STATUS_HISTORY",
    "STATUS_LATEST",
    "TASK_CANCEL",
    "WORKFLOW_CANCEL",
    "WORKFLOW_CAPABILITY_ROUTE_IDS",
    "WORKFLOW_REPLAY",
    "WORKFLOW_RUNS",
    "WORKFLOW_STAGES",
    "WORKFLOW_TOPOLOGY",
]

STATUS_LATEST = "status.latest"
STATUS_EVENTS = "status.events"
STATUS_HISTORY = "status.history"
EXECUTION_GRAPH = "execution.graph"
EVENTS_FEED = "events.feed"
#: Second ids of ``status.history`` / ``execution.graph`` (see the module doc).
HISTORY_LIST = "history.list"
EXECUTIONS_GRAPH = "executions.graph"
HEALTH_WORKERS = "health.workers"
METRICS = "metrics"
# Cancellation (relayna.api.cancel_routes)
TASK_CANCEL = "tasks.cancel"
# DLQ and failed tasks (relayna.api.dlq_routes)
DLQ_QUEUES_ROUTE_ID = "dlq.queues"
DLQ_MESSAGES_ROUTE_ID = "dlq.messages"
DLQ_MESSAGE_DETAIL_ROUTE_ID = "dlq.message_detail"
DLQ_REPLAY_ROUTE_ID = "dlq.replay"
BROKER_DLQ_MESSAGES_ROUTE_ID = "broker.dlq.messages"
#: ``POST /broker/dlq/messages/import``: relayna's addition (indexes broker-only
#: DLQ messages, as ``relayna dlq import`` does).
BROKER_DLQ_IMPORT_ROUTE_ID = "broker.dlq.import"
#: ``/broker/dlq/queues``: the original advertised no id for it; it is not in
#: :data:`KNOWN_ROUTE_IDS`, so the capability document does not list it.
BROKER_DLQ_QUEUES_ROUTE_ID = "broker.dlq.queues"
FAILED_TASKS_LIST_ROUTE_ID = "failed_tasks.list"
FAILED_TASKS_DETAIL_ROUTE_ID = "failed_tasks.detail"
FAILED_TASKS_INVESTIGATE_ROUTE_ID = "failed_tasks.investigate"
FAILED_TASKS_UNINVESTIGATE_ROUTE_ID = "failed_tasks.uninvestigate"
FAILED_TASKS_RETRY_ROUTE_ID = "failed_tasks.retry"
FAILED_TASKS_DELETE_ROUTE_ID = "failed_tasks.delete"
# Workflow (relayna.api.workflow_routes); the original advertised the first two,
# ``workflow.replay`` tells a control plane that replay is mounted.
WORKFLOW_TOPOLOGY = "workflow.topology"
WORKFLOW_STAGES = "workflow.stages"
WORKFLOW_RUNS = "workflow.runs"
WORKFLOW_REPLAY = "workflow.replay"
WORKFLOW_CANCEL = "workflow.cancel"

DLQ_CAPABILITY_ROUTE_IDS = (
    DLQ_QUEUES_ROUTE_ID,
    DLQ_MESSAGES_ROUTE_ID,
    DLQ_MESSAGE_DETAIL_ROUTE_ID,
    DLQ_REPLAY_ROUTE_ID,
    BROKER_DLQ_MESSAGES_ROUTE_ID,
    BROKER_DLQ_IMPORT_ROUTE_ID,
)
FAILED_TASKS_CAPABILITY_ROUTE_IDS = (
    FAILED_TASKS_LIST_ROUTE_ID,
    FAILED_TASKS_DETAIL_ROUTE_ID,
    FAILED_TASKS_INVESTIGATE_ROUTE_ID,
    FAILED_TASKS_UNINVESTIGATE_ROUTE_ID,
    FAILED_TASKS_RETRY_ROUTE_ID,
    FAILED_TASKS_DELETE_ROUTE_ID,
)
WORKFLOW_CAPABILITY_ROUTE_IDS = (
    WORKFLOW_TOPOLOGY,
    WORKFLOW_STAGES,
    WORKFLOW_RUNS,
    WORKFLOW_REPLAY,
    WORKFLOW_CANCEL,
)

#: A mounted route's id → the further ids it is advertised under.
ROUTE_ID_ALIASES: dict[str, tuple[str, ...]] = {
    STATUS_HISTORY: (HISTORY_LIST,),
    EXECUTION_GRAPH: (EXECUTIONS_GRAPH,),
}

#: Every route id relayna's factories advertise (other packages add theirs).
KNOWN_ROUTE_IDS: frozenset[str] = frozenset(
    {
        STATUS_LATEST,
        STATUS_EVENTS,
        STATUS_HISTORY,
        EXECUTION_GRAPH,
        EVENTS_FEED,
        HEALTH_WORKERS,
        METRICS,
        TASK_CANCEL,
        *DLQ_CAPABILITY_ROUTE_IDS,
        *FAILED_TASKS_CAPABILITY_ROUTE_IDS,
        *WORKFLOW_CAPABILITY_ROUTE_IDS,
    }
)
