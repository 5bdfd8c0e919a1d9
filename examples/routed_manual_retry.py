"""Routed tasks with a manual hand-off from one task type to another.

What it shows
-------------
* ``RoutedTasksSharedStatusTopology``: one tasks queue, bound once per task
  type (the routing key is the ``task_type``); the ``TaskConsumer`` takes a
  mapping ``task_type -> handler``.
* ``ctx.manual_retry(task_type=..., payload_merge=..., reason=...)``: the
  ``document.extract`` handler finds the text layer unusable and hands the
  *same task* (same ``task_id``) to ``document.ocr``. The handler ends there;
  the consumer publishes the status ``manual_retrying`` with the lineage in
  ``meta.manual_retry`` (``count``, ``source_consumer``,
  ``previous_task_type``, ``target_task_type``, ``reason``), republishes the
  task through the tasks exchange, and acks.
* The second handler sees the lineage on its context
  (``ctx.manual_retry_count``, ``ctx.manual_retry_previous_task_type``...)
  and the merged payload; statuses it publishes through ``ctx.publish_status``
  carry ``meta.manual_retry`` automatically (the consumer's own lifecycle
  ``processing`` / ``completed`` statuses do not).
* Waiting for the end of a task without HTTP: ``open_status_stream`` on the
  runtime's status store (history, then live, until a terminal status).

Run it::

    python examples/routed_manual_retry.py [--backend trio] [--broker-url amqp://...] [--store-url redis://...]
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from _common import MEMORY, cli, follow_status, new_id, print_events

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.consumer import LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.topology import RoutedTasksSharedStatusTopology

EXTRACT = "document.extract"
OCR = "document.ocr"

TOPOLOGY = RoutedTasksSharedStatusTopology(
    tasks_exchange="examples.routed.tasks",
    tasks_queue="examples.routed.tasks",
    task_types=(EXTRACT, OCR),
    status_exchange="examples.routed.status",
    status_queue="examples.routed.status",
    prefetch_count=4,
)


async def extract(task: TaskEnvelope, ctx: TaskContext) -> None:
    """The cheap path: read the PDF's text layer; hand off to OCR when it is unusable."""
    await ctx.publish_status(status="running", message="reading the text layer")
    if not task.payload.get("has_text_layer", False):
        ctx.manual_retry(  # raises: nothing after this line runs
            task_type=OCR,
            payload_merge={"dpi": 300},
            reason="no text layer",
            message="handing off to OCR",
        )
    await ctx.publish_status(status="running", message="text layer extracted")


async def ocr(task: TaskEnvelope, ctx: TaskContext) -> None:
    """The expensive path; it knows where the task came from."""
    await ctx.publish_status(
        status="running",
        message=f"OCR at {task.payload['dpi']} dpi "
        f"(hand-off #{ctx.manual_retry_count} from {ctx.manual_retry_previous_task_type})",
    )  # meta.manual_retry is added to this event automatically
    await anyio.sleep(0.05)


async def main(
    *, broker_url: str = MEMORY, store_url: str = MEMORY, time_limit: float = 30.0
) -> list[dict[str, Any]]:
    """Publish one ``document.extract`` task that needs OCR; return its statuses."""
    config = RuntimeConfig(broker_url=broker_url, store_url=store_url, topology=TOPOLOGY)
    with anyio.fail_after(time_limit):
        async with open_relayna_runtime(config) as runtime:
            assert runtime.broker is not None
            consumer = TaskConsumer(
                topology=TOPOLOGY,
                broker=runtime.broker,
                handler={EXTRACT: extract, OCR: ocr},
                consumer_name="examples-documents",
                statuses=LifecycleStatuses(enabled=True),
            )
            async with anyio.create_task_group() as workers:
                await workers.start(consumer.run)
                async with open_relayna_client(TOPOLOGY, runtime.broker, declare=False) as client:
                    task = await client.publish_task(
                        {
                            "task_id": new_id("doc"),
                            "task_type": EXTRACT,
                            "payload": {"file": "scan.pdf", "has_text_layer": False},
                        }
                    )
                events = await follow_status(runtime.status, task.task_id)
                workers.cancel_scope.cancel()
    print_events(f"statuses of {task.task_id} (one task_id, two task types):", events)
    return events


if __name__ == "__main__":
    sys.exit(cli(main, __doc__))
