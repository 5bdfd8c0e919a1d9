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
from relayna.consumer._dlq import DLQRecord, DLQRecorder, InMemoryDLQRecorder
from relayna.consumer._idempotency import IDEMPOTENCY_SCRIPT, Idempotency, default_idempotency_key
from relayna.consumer._settle import EXCEPTION_MESSAGE, ConsumerStats
from relayna.consumer._task import TaskConsumer

__all__ = [
    "EXCEPTION_MESSAGE",
    "IDEMPOTENCY_SCRIPT",
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
    "decide",
    "default_idempotency_key",
    "main_worker",
]
