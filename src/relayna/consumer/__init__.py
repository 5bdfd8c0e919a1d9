"""Worker runtimes: task and aggregation consumers with retry, DLQ and drain.

::

    async with anyio.create_task_group() as tg:
        await tg.start(TaskConsumer(topology=topo, broker=url, handler=handle,
                                    retry_policy=RetryPolicy(max_retries=2)).run)
"""

from relayna._deprecated import moved_names
from relayna.consumer._aggregation import AggregationConsumer
from relayna.consumer._base import ConsumerBase, HandlerT, Middleware
from relayna.consumer._cancel import InFlight, Running, StepBatcher
from relayna.consumer._cancellable import CancellableConsumer
from relayna.consumer._cli import main_worker
from relayna.consumer._context import (
    LifecycleStatuses,
    ManualRetryRequest,
    ManualRetryRequested,
    TaskCancelled,
    TaskContext,
)
from relayna.consumer._decide import (
    Ack,
    Cancelled,
    DeadLetter,
    Decision,
    Expired,
    ExpiryAction,
    Failed,
    FailureAction,
    Outcome,
    Poison,
    Reject,
    Requeue,
    Retry,
    RetryPolicy,
    Stop,
    Succeeded,
    decide,
    terminal_status,
)
from relayna.consumer._dlq import (
    DLQRecord,
    DLQRecorder,
    InMemoryDLQRecorder,
    compute_dlq_id,
    jsonable,
    jsonable_headers,
    make_dlq_record,
)
from relayna.consumer._group_commit import GroupCommit
from relayna.consumer._heartbeat import (
    HeartbeatSnapshot,
    WorkerHeartbeat,
    WorkerHeartbeats,
    list_worker_heartbeats,
)
from relayna.consumer._idempotency import Idempotency, default_idempotency_key
from relayna.consumer._inbound import InboundWorkflow, parse_workflow
from relayna.consumer._lease import (
    LeaseLost,
    LeasePolicy,
    LeaseStore,
    Renewable,
    call_with_lease,
)
from relayna.consumer._settle import EXCEPTION_MESSAGE, ConsumerStats, MessageInfo, Settler
from relayna.consumer._task import TaskConsumer

__all__ = [
    # building blocks of other runtimes (relayna.workflow)
    "CancellableConsumer",
    "ConsumerBase",
    "GroupCommit",
    "HandlerT",
    "InboundWorkflow",
    "LeaseLost",
    "MessageInfo",
    "Renewable",
    "Settler",
    "call_with_lease",
    "parse_workflow",
    # public API
    "EXCEPTION_MESSAGE",
    "Ack",
    "AggregationConsumer",
    "Cancelled",
    "ConsumerStats",
    "DLQRecord",
    "DLQRecorder",
    "DeadLetter",
    "Decision",
    "Expired",
    "ExpiryAction",
    "Failed",
    "FailureAction",
    "HeartbeatSnapshot",
    "Idempotency",
    "InFlight",
    "InMemoryDLQRecorder",
    "LeasePolicy",
    "LeaseStore",
    "LifecycleStatuses",
    "ManualRetryRequest",
    "ManualRetryRequested",
    "Middleware",
    "Outcome",
    "Poison",
    "Reject",
    "Requeue",
    "Retry",
    "RetryPolicy",
    "Running",
    "StepBatcher",
    "Stop",
    "Succeeded",
    "TaskCancelled",
    "TaskConsumer",
    "TaskContext",
    "WorkerHeartbeat",
    "WorkerHeartbeats",
    "compute_dlq_id",
    "decide",
    "default_idempotency_key",
    "jsonable",
    "jsonable_headers",
    "list_worker_heartbeats",
    "main_worker",
    "make_dlq_record",
    "terminal_status",
]

#: The store scripts behind leases, idempotency and heartbeats were exported
#: here; they are details of LeaseStore, Idempotency and WorkerHeartbeats.
__getattr__ = moved_names(
    __name__,
    {
        "IDEMPOTENCY_SCRIPT": (
            "relayna.consumer._idempotency:IDEMPOTENCY_SCRIPT",
            "use Idempotency",
        ),
        "LEASE_ACQUIRE_SCRIPT": ("relayna.consumer._lease:LEASE_ACQUIRE_SCRIPT", "use LeaseStore"),
        "LEASE_RELEASE_SCRIPT": ("relayna.consumer._lease:LEASE_RELEASE_SCRIPT", "use LeaseStore"),
        "LEASE_RENEW_SCRIPT": ("relayna.consumer._lease:LEASE_RENEW_SCRIPT", "use LeaseStore"),
        "WORKER_HEARTBEAT_SCRIPT": (
            "relayna.consumer._heartbeat:WORKER_HEARTBEAT_SCRIPT",
            "use WorkerHeartbeats",
        ),
    },
)
