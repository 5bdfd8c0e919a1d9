"""Workflow stage runtime: contracts enforced, durable dedup, fan-in joins,
run state, lineage, replay and diagnostics.

::

    runtime = WorkflowWorkerRuntime(
        topology=topology, broker="amqp://...", store=store,
        handlers={"planner": plan, "docsearch": search},
    )
    async with anyio.create_task_group() as tg:
        await tg.start(runtime.run)

See ``docs/workflow.md``.
"""

from relayna._deprecated import moved_names
from relayna.workflow import _scripts
from relayna.workflow._consumer import WorkflowConsumer, effective_retry_policy
from relayna.workflow._context import JoinedMessage, WorkflowContext, derive_message_id
from relayna.workflow._dedup import dedup_signature
from relayna.workflow._diagnose import StallReason, WorkflowDiagnosis, explain_stall
from relayna.workflow._join import branch_of, join_message_id
from relayna.workflow._lineage import LineageEdge, build_lineage
from relayna.workflow._runs import ReplayResult, WorkflowRuns, cancel_run
from relayna.workflow._runtime import WorkflowWorkerRuntime
from relayna.workflow._state import (
    ACTIVE_STATUSES,
    FAILED_STATUSES,
    FanInProgress,
    LineageMessage,
    WorkflowRunState,
    WorkflowStageState,
)
from relayna.workflow._store import (
    Arrival,
    Entry,
    Guard,
    Handoff,
    WorkflowKeys,
    WorkflowStore,
    WorkflowStoreConfig,
    lineage_of,
    now_ms,
)

__all__ = [
    "ACTIVE_STATUSES",
    "FAILED_STATUSES",
    "Arrival",
    "Entry",
    "FanInProgress",
    "Guard",
    "Handoff",
    "JoinedMessage",
    "LineageEdge",
    "LineageMessage",
    "ReplayResult",
    "StallReason",
    "WorkflowConsumer",
    "WorkflowContext",
    "WorkflowDiagnosis",
    "WorkflowKeys",
    "WorkflowRunState",
    "WorkflowRuns",
    "WorkflowStageState",
    "WorkflowStore",
    "WorkflowStoreConfig",
    "WorkflowWorkerRuntime",
    "branch_of",
    "build_lineage",
    "cancel_run",
    "dedup_signature",
    "derive_message_id",
    "effective_retry_policy",
    "explain_stall",
    "join_message_id",
    "lineage_of",
    "now_ms",
]

#: The store scripts behind run state, guards, joins and replay were exported
#: here; they are details of WorkflowStore (and WorkflowRuns), which run them.
#: (STAGE_STEPS_SCRIPT came later and never was.)
__getattr__ = moved_names(
    __name__,
    {
        name: (f"relayna.workflow._scripts:{name}", "use WorkflowStore")
        for name in _scripts.__all__
        if name != "STAGE_STEPS_SCRIPT"
    },
)
