"""Worker runtimes: task and aggregation consumers with retry, DLQ and drain.

::

    async with anyio.create_task_group() as tg:
        await tg.start(TaskConsumer(topology=topo, broker=url, handler=handle,
                                    retry_policy=RetryPolicy(max_retries=2)).run)
"""

from relayna.consumer._aggregation import AggregationConsumer
from relayna.consumer._base import Middleware
from relayna.consumer._cli import main_worker
from relayna.consumer._context import (
    LifecycleStatuses,
    ManualRetryRequest,
    ManualRetryRequested,
    TaskContext,
)
from relayna.consumer._decide import (
    Ack,
    DeadLetter,
    Decision,
    Failed,
    FailureAction,
    Outcome,
    Poison,
    Reject,
    Requeue,
    Retry,
    RetryPolicy,
    Succeeded,
    decide,
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
from relayna.consumer._heartbeat import (
    WORKER_HEARTBEAT_SCRIPT,
    WorkerHeartbeat,
    WorkerHeartbeats,
    list_worker_heartbeats,
)
from relayna.consumer._idempotency import IDEMPOTENCY_SCRIPT, Idempotency, default_idempotency_key
from relayna.consumer._lease import (
    LEASE_ACQUIRE_SCRIPT,
    LEASE_RELEASE_SCRIPT,
    LEASE_RENEW_SCRIPT,
    LeasePolicy,
    LeaseStore,
)
from relayna.consumer._settle import EXCEPTION_MESSAGE, ConsumerStats
from relayna.consumer._task import TaskConsumer

__all__ = [
    "EXCEPTION_MESSAGE",
    "IDEMPOTENCY_SCRIPT",
    "LEASE_ACQUIRE_SCRIPT",
    "LEASE_RELEASE_SCRIPT",
    "LEASE_RENEW_SCRIPT",
    "Ack",
    "AggregationConsumer",
    "ConsumerStats",
    "DLQRecord",
    "DLQRecorder",
    "DeadLetter",
    "Decision",
    "Failed",
    "FailureAction",
    "Idempotency",
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
    "Succeeded",
    "TaskConsumer",
    "TaskContext",
    "WORKER_HEARTBEAT_SCRIPT",
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
]
