"""One message, many tasks: ``publish_batch`` and the worker's fan-out.

What it shows
-------------
* ``client.publish_batch(tasks, batch_id=...)`` sends **one**
  ``BatchTaskEnvelope`` message (one confirm) holding every task. (A batch's
  ``meta=`` stays on the batch envelope: it is not passed on to the tasks.)
* The ``TaskConsumer`` recognises the batch, republishes each task as its own
  message on the same queue (headers ``batch_id``, ``batch_index``,
  ``batch_size``; ``batch_publish_concurrency`` confirms in flight), acks the
  batch and counts it in ``consumer.stats.batches_fanned_out``.
* Each task is then handled on its own, with retries, statuses and DLQ as
  usual; its ``TaskContext`` carries ``batch_id``, ``batch_index`` and
  ``batch_size``, which the handler reports in its status.

Run it::

    python examples/batch_envelopes.py [--backend trio] [--broker-url amqp://...] [--store-url redis://...]
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from _common import MEMORY, cli, follow_status, new_id

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.consumer import LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology

TOPOLOGY = SharedTasksSharedStatusTopology(
    tasks_exchange="examples.batch.tasks",
    tasks_queue="examples.batch.tasks",
    tasks_routing_key="task",
    status_exchange="examples.batch.status",
    status_queue="examples.batch.status",
    prefetch_count=8,
)


async def resize(task: TaskEnvelope, ctx: TaskContext) -> None:
    """Handle one image of the batch; say where it sits in the batch."""
    await anyio.sleep(0.01)
    await ctx.publish_status(
        status="resized",
        message=f"{task.payload['image']} is item {ctx.batch_index + 1} of {ctx.batch_size}"
        if ctx.batch_index is not None and ctx.batch_size is not None
        else f"{task.payload['image']} (not part of a batch)",
        meta={
            "batch_id": ctx.batch_id,
            "batch_index": ctx.batch_index,
            "batch_size": ctx.batch_size,
        },
    )


async def main(
    *, broker_url: str = MEMORY, store_url: str = MEMORY, size: int = 5, time_limit: float = 30.0
) -> dict[str, Any]:
    """Publish one batch of ``size`` tasks; return what each task's handler saw."""
    config = RuntimeConfig(broker_url=broker_url, store_url=store_url, topology=TOPOLOGY)
    batch_id = new_id("batch")
    tasks = [
        {"task_id": f"{batch_id}-img{i}", "payload": {"image": f"photo-{i}.jpg", "width": 640}}
        for i in range(size)
    ]
    with anyio.fail_after(time_limit):
        async with open_relayna_runtime(config) as runtime:
            assert runtime.broker is not None
            consumer = TaskConsumer(
                topology=TOPOLOGY,
                broker=runtime.broker,
                handler=resize,
                statuses=LifecycleStatuses(enabled=True),
            )
            async with anyio.create_task_group() as workers:
                await workers.start(consumer.run)
                async with open_relayna_client(TOPOLOGY, runtime.broker, declare=False) as client:
                    batch = await client.publish_batch(tasks, batch_id=batch_id)
                    published = client.published  # 1: the whole batch is one message
                resized: dict[str, dict[str, Any]] = {}
                finals: dict[str, str] = {}
                for task in batch.tasks:
                    events = await follow_status(runtime.status, task.task_id)
                    resized[task.task_id] = next(e for e in events if e["status"] == "resized")
                    finals[task.task_id] = events[-1]["status"]
                workers.cancel_scope.cancel()
    print(f"published {published} message for batch {batch_id} of {len(batch.tasks)} tasks; "
          f"the worker fanned out {consumer.stats.batches_fanned_out} batch")  # fmt: skip
    for task_id, event in resized.items():
        print(f"  {task_id}: {event['message']} -> {finals[task_id]}  meta={event['meta']}")
    return {
        "batch_id": batch_id,
        "published_messages": published,
        "resized": resized,
        "finals": finals,
        "batches_fanned_out": consumer.stats.batches_fanned_out,
    }


if __name__ == "__main__":
    sys.exit(cli(main, __doc__))
