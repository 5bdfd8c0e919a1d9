"""Broker-delayed retries, then the dead-letter queue.

What it shows
-------------
* ``RetryPolicy(max_retries=2, delay_ms=...)``: a handler that raises is
  retried through ``<queue>.retry`` (a queue whose TTL dead-letters the copy
  back to the work queue after ``delay_ms``), at most twice: three attempts.
  ``ctx.attempt`` counts from 0.
* A *flaky* task fails its first attempt and succeeds on the retry:
  ``processing, retrying, processing, completed``.
* A *broken* task fails every attempt: after the last one the consumer copies
  it to ``<queue>.dlq`` (with ``relayna-failure-reason``,
  ``relayna-exception-*``, ``relayna-retry-attempt`` headers), hands a
  ``DLQRecord`` to the ``InMemoryDLQRecorder`` (the Redis DLQ store implements
  the same ``add(record)``), publishes ``failed`` and acks.
* The example then reads the dead-lettered copy back from ``<queue>.dlq``.

On a real RabbitMQ the retry queue's TTL is part of its declaration: run the
example with the same ``delay_ms`` each time (or delete
``examples.retry.tasks.retry`` first), or the redeclaration is refused.

Run it::

    python examples/retry_dlq.py [--backend trio] [--broker-url amqp://...] [--store-url redis://...]
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from _common import MEMORY, cli, follow_status, new_id, print_events

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.consumer import (
    InMemoryDLQRecorder,
    LifecycleStatuses,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
)
from relayna.contracts import TaskEnvelope, loads
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Broker

TOPOLOGY = SharedTasksSharedStatusTopology(
    tasks_exchange="examples.retry.tasks",
    tasks_queue="examples.retry.tasks",
    tasks_routing_key="task",
    status_exchange="examples.retry.status",
    status_queue="examples.retry.status",
    prefetch_count=4,
)


class UpstreamUnavailable(Exception):
    pass


async def handle(task: TaskEnvelope, ctx: TaskContext) -> None:
    mode = task.payload["mode"]
    await ctx.publish_status(status="running", message=f"attempt {ctx.attempt + 1}")
    if mode == "broken" or (mode == "flaky" and ctx.attempt == 0):
        raise UpstreamUnavailable(f"upstream said 503 (attempt {ctx.attempt + 1})")


async def read_dead_letter(broker: Broker, queue: str, task_id: str) -> dict[str, Any]:
    """Take ``task_id``'s copy out of the DLQ (older copies from earlier runs are dropped)."""
    async with broker.consume(queue, prefetch=10) as deliveries:
        async for delivery in deliveries:
            await delivery.ack()
            if loads(delivery.body).get("task_id") == task_id:
                return dict(delivery.properties.headers)
    raise RuntimeError(f"{task_id} not found in {queue}")


async def main(
    *,
    broker_url: str = MEMORY,
    store_url: str = MEMORY,
    delay_ms: int = 300,
    time_limit: float = 30.0,
) -> dict[str, Any]:
    """Publish a flaky and a broken task; return their statuses and the DLQ evidence."""
    policy = RetryPolicy(max_retries=2, delay_ms=delay_ms)
    recorder = InMemoryDLQRecorder()
    config = RuntimeConfig(broker_url=broker_url, store_url=store_url, topology=TOPOLOGY)
    flaky, broken = new_id("flaky"), new_id("broken")
    with anyio.fail_after(time_limit):
        async with open_relayna_runtime(config) as runtime:
            assert runtime.broker is not None
            consumer = TaskConsumer(
                topology=TOPOLOGY,
                broker=runtime.broker,
                handler=handle,
                retry_policy=policy,  # declares <queue>.retry and <queue>.dlq
                dlq_recorder=recorder,
                statuses=LifecycleStatuses(enabled=True),
            )
            async with anyio.create_task_group() as workers:
                await workers.start(consumer.run)
                async with open_relayna_client(TOPOLOGY, runtime.broker, declare=False) as client:
                    await client.publish_tasks(
                        [
                            {"task_id": flaky, "payload": {"mode": "flaky"}},
                            {"task_id": broken, "payload": {"mode": "broken"}},
                        ]
                    )
                statuses = {
                    task_id: await follow_status(runtime.status, task_id)
                    for task_id in (flaky, broken)
                }
                workers.cancel_scope.cancel()
            dlq = policy.dead_letter_queue(TOPOLOGY.tasks_queue)
            dlq_headers = await read_dead_letter(runtime.broker, dlq, broken)
    for task_id, events in statuses.items():
        print_events(f"statuses of {task_id}:", events)
    record = recorder.records[-1]
    print(f"DLQ record: task {record.task_id} reason={record.reason} "
          f"attempt={record.retry_attempt}/{record.max_retries} "
          f"{record.exception_type}: {record.exception_message}")  # fmt: skip
    print(f"copy in {dlq}: " + ", ".join(
        f"{k}={v}" for k, v in sorted(dlq_headers.items()) if k.startswith("relayna-")
    ))  # fmt: skip
    stats = consumer.stats
    print(
        f"worker: acked={stats.acked} retried={stats.retried} dead_lettered={stats.dead_lettered}"
    )
    return {
        "statuses": statuses,
        "flaky": flaky,
        "broken": broken,
        "dlq_queue": dlq,
        "dlq_records": list(recorder.records),
        "dlq_headers": dlq_headers,
        "stats": stats,
    }


if __name__ == "__main__":
    sys.exit(cli(main, __doc__))
