"""Fan-out / fan-in with the sharded aggregation topology.

What it shows
-------------
* ``SharedTasksSharedStatusShardedAggregationTopology`` with ``shard_count=2``.
  Aggregation statuses go to the status exchange under ``agg.<shard>``, where
  the shard is a stable hash of ``meta.parent_task_id``: every event of one
  parent reaches the same aggregation queue, so one consumer sees all of them
  and may keep the per-parent state in memory.
* A parent task (``report``) fans out N child tasks (``report.part``) with
  ``meta.parent_task_id`` and publishes ``waiting``.
* Each child computes its part and reports it with
  ``ctx.publish_aggregation_status(status="completed", result=..., meta={"parent_task_id": ...})``.
  The status queue is bound with ``#``, so these events also reach the status
  hub: each child gets its ``completed`` in the store and is listed in
  ``StatusStore.children(parent)``.
* Two ``AggregationConsumer`` s, one per shard, each collect the parts per
  parent and, when all N children reported, publish the parent's
  ``completed`` status with the combined result.
* ``LifecycleStatuses(enabled=True, completed=None)``: the worker still
  publishes ``processing`` / ``retrying`` / ``failed``, but not
  ``completed``, because the parent is complete only when the aggregator says
  so, and a child's ``completed`` is its aggregation status.

Run it::

    python examples/sharded_aggregation.py [--backend trio] [--broker-url amqp://...] [--store-url redis://...]
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from _common import MEMORY, cli, follow_status, new_id

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.consumer import AggregationConsumer, LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import StatusEvent, TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusShardedAggregationTopology

TOPOLOGY = SharedTasksSharedStatusShardedAggregationTopology(
    tasks_exchange="examples.agg.tasks",
    tasks_queue="examples.agg.tasks",
    tasks_routing_key="task",
    status_exchange="examples.agg.status",
    status_queue="examples.agg.status",
    shard_count=2,
    aggregation_queue_template="examples.agg.shard.{shard}",
    aggregation_queue_name_prefix="examples.agg.shards",
    prefetch_count=16,
)


# -- the worker: parents fan out, children report to the aggregation shard ------------


async def handle(task: TaskEnvelope, ctx: TaskContext) -> None:
    if task.task_type == "report":
        await split(task, ctx)
    else:
        await sum_part(task, ctx)


async def split(task: TaskEnvelope, ctx: TaskContext) -> None:
    numbers: list[int] = task.payload["numbers"]
    n = int(task.payload["children"])
    chunks = [numbers[i::n] for i in range(n)]
    await ctx.client.publish_tasks(
        {
            "task_id": f"{task.task_id}-part{i}",
            "task_type": "report.part",
            "payload": {"numbers": chunk, "index": i, "of": n},
            "meta": {"parent_task_id": task.task_id},  # kept as an extra envelope field
        }
        for i, chunk in enumerate(chunks)
    )
    await ctx.publish_status(
        status="waiting", message=f"fanned out {n} children", meta={"children": n}
    )


async def sum_part(task: TaskEnvelope, ctx: TaskContext) -> None:
    parent = task.extra["meta"]["parent_task_id"]
    await anyio.sleep(0.01 * (task.payload["index"] + 1))  # children finish out of order
    await ctx.publish_aggregation_status(
        status="completed",
        result={"sum": sum(task.payload["numbers"])},
        meta={
            "parent_task_id": parent,
            "child_index": task.payload["index"],
            "child_count": task.payload["of"],
        },
    )


# -- the aggregator: one per shard, state per parent ------------------------------------


class SumAggregator:
    """Collects child results per parent; completes the parent when all reported.

    Keyed by child index, so a redelivered child event is harmless.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.parts: dict[str, dict[int, int]] = {}
        self.done: set[str] = set()

    async def __call__(self, event: StatusEvent, ctx: TaskContext) -> None:
        parent = event.meta["parent_task_id"]
        if parent in self.done or event.result is None:
            return
        parts = self.parts.setdefault(parent, {})
        parts[int(event.meta["child_index"])] = int(event.result["sum"])
        if len(parts) < int(event.meta["child_count"]):
            return
        await ctx.client.publish_status(  # ctx.publish_status would target the child
            {
                "task_id": parent,
                "status": "completed",
                "message": f"all {len(parts)} children reported",
                "result": {
                    "total": sum(parts.values()),
                    "parts": [parts[i] for i in sorted(parts)],
                },
                "meta": {
                    "aggregated_by": self.name,
                    "aggregation_shard": event.meta["aggregation_shard"],
                },
            }
        )
        self.done.add(parent)
        del self.parts[parent]


async def main(
    *,
    broker_url: str = MEMORY,
    store_url: str = MEMORY,
    parents: int = 3,
    children: int = 4,
    time_limit: float = 30.0,
) -> dict[str, dict[str, Any]]:
    """Run ``parents`` reports of ``children`` parts each; return per parent what happened."""
    config = RuntimeConfig(broker_url=broker_url, store_url=store_url, topology=TOPOLOGY)
    reports = {new_id("report"): list(range(1 + 10 * p, 11 + 10 * p)) for p in range(parents)}
    with anyio.fail_after(time_limit):
        async with open_relayna_runtime(config) as runtime:
            assert runtime.broker is not None
            worker = TaskConsumer(
                topology=TOPOLOGY,
                broker=runtime.broker,
                handler=handle,
                statuses=LifecycleStatuses(enabled=True, completed=None),
            )
            aggregators = [
                AggregationConsumer(
                    topology=TOPOLOGY,
                    broker=runtime.broker,
                    handler=SumAggregator(f"aggregator-{shard}"),
                    shards=[shard],  # declares examples.agg.shard.<shard>, bound to agg.<shard>
                    consumer_name=f"aggregator-{shard}",
                )
                for shard in range(TOPOLOGY.shard_count)
            ]
            async with anyio.create_task_group() as tg:
                for aggregator in aggregators:
                    await tg.start(aggregator.run)
                await tg.start(worker.run)
                async with open_relayna_client(TOPOLOGY, runtime.broker, declare=False) as client:
                    await client.publish_tasks(
                        {"task_id": pid, "task_type": "report",
                         "payload": {"numbers": numbers, "children": children}}
                        for pid, numbers in reports.items()
                    )  # fmt: skip
                outcome: dict[str, dict[str, Any]] = {}

                async def wait(parent: str) -> None:
                    events = await follow_status(runtime.status, parent)
                    # the hub writes different tasks concurrently: wait until each
                    # child's own `completed` is stored before listing the children
                    for i in range(children):
                        await follow_status(runtime.status, f"{parent}-part{i}")
                    outcome[parent] = {
                        "numbers": reports[parent],
                        "shard": TOPOLOGY.shard_for(parent),
                        "statuses": [e["status"] for e in events],
                        "final": events[-1],
                        "children": await runtime.status.children(parent),
                    }

                async with anyio.create_task_group() as waiters:
                    for parent in reports:
                        waiters.start_soon(wait, parent)
                tg.cancel_scope.cancel()
    for parent, seen in outcome.items():
        final = seen["final"]
        print(f"{parent} (shard {seen['shard']}): {' -> '.join(seen['statuses'])}")
        print(f"  result {final.get('result')} by {final['meta'].get('aggregated_by')}")
        print(f"  children in the store: {seen['children']}")
    return outcome


if __name__ == "__main__":
    sys.exit(cli(main, __doc__))
