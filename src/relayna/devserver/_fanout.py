"""The demo's aggregation fan-out, on relayna's sharded aggregation.

A ``fanout`` task publishes one aggregation event per child on the status
exchange (``agg.<shard>`` of the parent, ``meta.parent_task_id`` naming it)
and returns at once: it never holds a prefetch slot while its children run.
An :class:`~relayna.consumer.AggregationConsumer` owning every shard runs
each child (its statuses carry ``meta.parent_task_id``, so the parent's
execution graph gains ``aggregation_child`` nodes with their attempts) and
records the child's result with one store script; the call that records the
last expected child — exactly one, through redeliveries and duplicates —
publishes the parent's ``completed`` status with every child's result.
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson

from relayna.consumer import TaskContext
from relayna.contracts import StatusEvent, TaskEnvelope
from relayna.transport import Script, Store

__all__ = [
    "AGGREGATE_CHILD_SCRIPT",
    "FanoutResults",
    "aggregate_child",
    "fan_out",
]

#: How long a fan-out's partial results live in the store (a day).
RESULTS_TTL_MS = 86_400_000
_DONE = "~done"  # not a valid task id: cannot collide with a child's field

_AGGREGATE_LUA = """
-- KEYS: the parent's results hash   ARGV: child id, result JSON, expected, ttl_ms
-- Reply: {children recorded, 1 when this call completes the parent else 0}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local n = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '~done')
if n >= tonumber(ARGV[3]) and redis.call('HSETNX', KEYS[1], '~done', '1') == 1 then
  return {n, 1}
end
return {n, 0}
"""
AGGREGATE_CHILD_SCRIPT = Script(name="relayna.dev.aggregate_child", lua=_AGGREGATE_LUA)


class FanoutResults:
    """The children's results of each fan-out parent, in ``{prefix}:dev:fanout:{parent}``."""

    def __init__(self, store: Store, *, prefix: str = "relayna") -> None:
        self.store = store
        self.prefix = prefix

    def key(self, parent_task_id: str) -> str:
        return f"{self.prefix}:dev:fanout:{parent_task_id}"

    async def record(
        self, parent_task_id: str, child_task_id: str, result: Any, expected: int
    ) -> tuple[int, bool]:
        """Record one child's result: ``(children recorded, whether this call completed
        the parent)``. Recording a child again changes nothing; only one call ever
        completes a parent."""
        reply = await self.store.run_script(
            AGGREGATE_CHILD_SCRIPT,
            [self.key(parent_task_id)],
            [child_task_id, orjson.dumps(result), expected, RESULTS_TTL_MS],
        )
        return int(reply[0]), int(reply[1]) == 1

    async def results(self, parent_task_id: str) -> dict[str, Any]:
        raw = await self.store.hgetall(self.key(parent_task_id))
        return {k.decode(): orjson.loads(v) for k, v in sorted(raw.items()) if k.decode() != _DONE}


async def fan_out(task: TaskEnvelope, ctx: TaskContext, count: int) -> list[str]:
    """Publish ``count`` children (ids ``{task_id}.{n}``) to the parent's aggregation
    shard; the aggregation consumer runs them (see the module docs)."""
    children = [f"{task.task_id}.{n}" for n in range(1, count + 1)]
    for n, child in enumerate(children, 1):
        await ctx.client.publish_aggregation_status(
            {
                "task_id": child,
                "correlation_id": task.task_id,
                "status": "queued",
                "message": f"part {n} of {task.task_id}",
                "meta": {"parent_task_id": task.task_id, "expected": count, "part": n},
            }
        )
    await ctx.publish_status(
        status="running",
        message=f"fan-out: {count} children queued for aggregation",
        meta={"progress": 0.1, "children": children},
    )
    return children


async def aggregate_child(
    event: StatusEvent,
    ctx: TaskContext,
    *,
    results: FanoutResults,
    step_seconds: float,
    steps: int = 2,
) -> None:
    """Run one fan-out child from its aggregation event, then record its result;
    the last child completes the parent."""
    parent = str(event.meta["parent_task_id"])
    expected = event.meta.get("expected")
    if type(expected) is not int or expected < 1:
        raise ValueError(f"aggregation event of {event.task_id} has no valid meta.expected")
    link = {"parent_task_id": parent}
    for step in range(1, steps + 1):
        await anyio.sleep(step_seconds)
        await ctx.publish_status(
            status="running",
            message=f"child: step {step}/{steps}",
            meta={"progress": step / steps, **link},
        )
    result = {"part": event.meta.get("part"), "steps": steps}
    await ctx.publish_status(status="completed", result=result, meta=link)
    done, completes = await results.record(parent, event.task_id, result, expected)
    if completes:  # only here: a parent status from every child could land after this one
        await ctx.client.publish_status(
            {
                "task_id": parent,
                "status": "completed",
                "message": f"fan-out: all {done} children completed",
                "result": {"children": await results.results(parent)},
            }
        )
