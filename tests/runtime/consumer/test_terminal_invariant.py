"""Every task a worker receives ends with a terminal status (issue 26, class 3).

A property over outcomes x result sizes x retry policies: whatever the handler
does (returns a small result, a result whose ``completed`` event lands just
over the envelope limit, raises, returns something unserialisable) and
whatever the message is (a poison body that names its task, one that does
not), each task that names itself ends with ``completed`` or ``failed`` as its
last status, exactly one delivery settles it for good, and a message that
names no task is visible in the dead-letter queue with a reason.

The reported defect: a result just under the limit passed the handler-side
check, the ``completed`` event (which adds task id, timestamps, ids) was over
it, and the task was dead-lettered without a task id and without any
``failed`` status. Memory broker, both backends.
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayna.consumer import (
    FailureAction,
    LifecycleStatuses,
    RetryPolicy,
    TaskConsumer,
    TaskContext,
)
from relayna.contracts import Limits, TaskEnvelope
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusShardedAggregationTopology
from relayna.transport import Properties, open_broker

pytestmark = pytest.mark.anyio

LIMIT = 4096  # small, so that "just under the limit" is cheap to build
LIMITS = Limits(max_body_bytes=LIMIT)
KINDS = ("ok", "near_limit", "raises", "unserialisable", "poison_named", "poison_anonymous")
TERMINAL = {"completed", "failed"}

policies = st.sampled_from(
    [None, RetryPolicy(max_retries=0, delay_ms=1), RetryPolicy(max_retries=1, delay_ms=1)]
)
cases = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 700)), min_size=1, max_size=6)


def _handler(plan: dict[str, tuple[str, int]]) -> Any:
    async def handler(task: TaskEnvelope, ctx: TaskContext) -> Any:
        kind, margin = plan[task.task_id]
        if kind == "raises":
            raise ValueError("handler failure")
        if kind == "unserialisable":
            return {"value": object()}
        if kind == "near_limit":
            # The result alone is under the limit by `margin` bytes; the
            # completed event around it may or may not fit.
            return {"blob": "x" * (LIMIT - margin - len('{"blob":""}'))}
        return {"ok": True}

    return handler


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(policy=policies, case=cases)
async def test_every_received_task_ends_with_a_terminal_status(
    unique: str, policy: RetryPolicy | None, case: list[tuple[str, int]]
) -> None:
    suffix = f"{unique}.{abs(hash((policy, tuple(case))))}"
    topology = SharedTasksSharedStatusShardedAggregationTopology(
        tasks_exchange=f"tasks-{suffix}",
        tasks_queue=f"tasks-{suffix}.q",
        tasks_routing_key="task",
        status_exchange=f"status-{suffix}",
        status_queue=f"status-{suffix}.q",
        status_use_streams=False,
        shard_count=1,
    )
    plan = {f"t{i}": item for i, item in enumerate(case)}
    consumer = TaskConsumer(
        topology=topology,
        broker="memory://",
        handler=_handler(plan),
        retry_policy=policy,
        failure_action=FailureAction.REJECT,
        statuses=LifecycleStatuses(enabled=True),
        limits=LIMITS,
    )
    queue = topology.tasks_queue
    with anyio.fail_after(20):
        async with open_broker("memory://") as broker:
            consumer.broker = broker
            async with open_relayna_client(topology, broker) as client:
                async with anyio.create_task_group() as tg:
                    await tg.start(consumer.run)
                    for task_id, (kind, _) in plan.items():
                        if kind == "poison_named":
                            body = orjson.dumps({"task_id": task_id, "created_at": "nonsense"})
                            await broker.publish("", queue, body, Properties())
                        elif kind == "poison_anonymous":
                            await broker.publish("", queue, b'{"payload": 1', Properties())
                        else:
                            await client.publish_task({"task_id": task_id})
                    stats = consumer.stats
                    while stats.acked + stats.rejected + stats.dead_lettered < len(plan):  # noqa: ASYNC110 - polling the consumer's counters
                        await anyio.sleep(0.005)
                    tg.cancel_scope.cancel()
                final = {}
                depth = (await broker.inspect_queue(topology.status_queue)).message_count
                async with broker.consume(topology.status_queue, prefetch=max(depth, 1)) as c:
                    for _ in range(depth):
                        delivery = await c.__anext__()
                        event = orjson.loads(delivery.body)
                        final[event["task_id"]] = event["status"]
                        await delivery.ack()
                dlq = (await broker.inspect_queue(queue + ".dlq")).message_count
                left = (await broker.inspect_queue(queue)).message_count
    named = {t for t, (kind, _) in plan.items() if kind != "poison_anonymous"}
    anonymous = len(plan) - len(named)
    not_ended = {t: final.get(t) for t in named if final.get(t) not in TERMINAL}
    assert not not_ended, f"tasks without a terminal status: {not_ended}"
    assert set(final) == named  # nothing published for a task that was not sent
    for task_id in named:
        kind, _margin = plan[task_id]
        if kind == "ok":
            assert final[task_id] == "completed"
        elif kind != "near_limit":
            assert final[task_id] == "failed"
    assert left == 0
    assert dlq >= anonymous  # the anonymous ones are visible in the DLQ, with a reason
    assert stats.acked + stats.rejected + stats.dead_lettered == len(plan)
