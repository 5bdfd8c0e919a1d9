"""Consumer timeout (issue 26, RELIABILITY T5) on a private RabbitMQ node.

RabbitMQ 3.10 ignores ``x-consumer-timeout`` as a queue argument, so the node
itself is configured (``consumer_timeout = 2000`` ms, checked every 100 ms:
the ``private_rabbit`` fixture). A task's handler holds its delivery until
the broker has taken it back (closed the consumer's channel with
PRECONDITION_FAILED and requeued the message), then finishes. The worker:

* logs why, once, at WARNING, and counts it (``consumer_timeouts``, exported
  as ``relayna_consumer_timeouts_total``);
* reconnects by itself and gets the delivery again (``redelivered``), which
  its idempotency key (durable, in Redis) acks without a second handler call:
  one execution, one effect, one ``completed`` status;
* goes on consuming: a later task is handled normally.

Both backends; the native AMQP client (the aiormq adapter maps the same
close to the same error: ``tests/unit/amqp/test_channel_errors.py``).
"""

from __future__ import annotations

import logging
from collections import Counter

import anyio
import orjson
import pytest
from services import Services

from relayna.consumer import Idempotency, LifecycleStatuses, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.observability import RelaynaMetrics
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]


async def test_timed_out_delivery_is_redelivered_and_handled_once(
    private_rabbit: Services, redis_url: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"ct-{unique}",
        tasks_queue=f"ct-{unique}",
        tasks_routing_key="task",
        status_exchange=f"cts-{unique}",
        status_queue=f"cts-{unique}",
        status_use_streams=False,
    )
    executions: list[tuple[str, bool]] = []
    effects: Counter[str] = Counter()
    statuses: Counter[tuple[str, str]] = Counter()
    metrics = RelaynaMetrics(service="ct")
    caplog.set_level(logging.INFO, logger="relayna.consumer")
    url = private_rabbit.amqp_url

    with anyio.fail_after(60):
        async with (
            open_broker(url) as admin,
            open_relayna_client(topology, admin) as producer,
            open_store(redis_url) as store,
        ):

            async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
                executions.append((task.task_id, ctx.redelivered))
                if task.payload.get("slow"):
                    # Hold the delivery (unacked) until the broker took it back.
                    while (await admin.inspect_queue(topology.tasks_queue)).message_count == 0:  # noqa: ASYNC110 - the broker's queue
                        await anyio.sleep(0.05)
                effects[task.task_id] += 1

            consumer = TaskConsumer(
                topology=topology,
                broker=url,
                handler=handler,
                prefetch=1,
                statuses=LifecycleStatuses(enabled=True),
                idempotency=Idempotency(store=store, prefix=f"ct:{unique}", ttl_seconds=300),
                metrics=metrics,
            )
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                await producer.publish_task({"task_id": "slow", "payload": {"slow": True}})
                while consumer.stats.duplicates_suppressed < 1:  # noqa: ASYNC110 - the consumer's counter
                    await anyio.sleep(0.05)
                await producer.publish_task({"task_id": "after"})
                while effects["after"] < 1 or consumer.stats.acked < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()

            async with admin.consume(topology.status_queue, prefetch=10) as status_messages:
                async for delivery in status_messages:
                    event = orjson.loads(delivery.body)
                    statuses[(event["task_id"], event["status"])] += 1
                    await delivery.ack()
                    if statuses[("after", "completed")]:
                        break
            depth = (await admin.inspect_queue(topology.tasks_queue)).message_count
            for queue in (
                topology.tasks_queue,
                topology.tasks_queue + ".dlq",
                topology.status_queue,
            ):
                await admin.delete_queue(queue)

    print(f"\nconsumer timeout: {consumer.stats}")
    # one execution and one effect for the timed-out task; a redelivery was acked unhandled
    assert executions == [("slow", False), ("after", False)]
    assert effects == {"slow": 1, "after": 1}
    assert consumer.stats.duplicates_suppressed == 1
    assert statuses == {
        ("slow", "processing"): 1,
        ("slow", "completed"): 1,
        ("after", "processing"): 1,
        ("after", "completed"): 1,
    }
    assert depth == 0
    # the broker closed the channel once; the worker reconnected once and said why
    assert consumer.stats.consumer_timeouts == 1
    assert consumer.stats.reconnects == 1
    reasons = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "consumer timeout" in r.getMessage()
    ]
    assert len(reasons) == 1, reasons
    timeout_ms = int(private_rabbit.rabbitmq_conf.partition("=")[2])  # consumer_timeout = N
    assert f"Timeout value used: {timeout_ms} ms" in reasons[0]
    assert "redelivered" in reasons[0]
    exposed = [
        line
        for line in metrics.exposition().splitlines()
        if line.startswith(b"relayna_consumer_timeouts_total")
    ]
    assert len(exposed) == 1
    assert exposed[0].endswith(b" 1.0"), exposed
