"""The DLQ loop on the real stack: a worker on RabbitMQ dead-letters, the Redis
DLQStore indexes it, the HTTP routes (hypercorn) find it and replay it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from relayna.api import RuntimeConfig, dlq_routes, relayna_lifespan, serving, status_routes
from relayna.consumer import LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.contracts import headers as h
from relayna.dlq import DLQStore, DLQStoreConfig
from relayna.rabbitmq import open_relayna_client
from relayna.status import StatusStore, StatusStoreConfig
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Broker, Store, open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]

RETRY = RetryPolicy(max_retries=1, delay_ms=200)


@asynccontextmanager
async def stack(
    amqp_url: str, redis_url: str, unique: str
) -> AsyncIterator[
    tuple[SharedTasksSharedStatusTopology, Broker, Store, DLQStore, httpx.AsyncClient]
]:
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"dlq-tasks-{unique}",
        tasks_queue=f"dlq-tasks-{unique}",
        tasks_routing_key="task",
        status_exchange=f"dlq-status-{unique}",
        status_queue=f"dlq-status-{unique}",
        status_use_streams=False,
    )
    store_config = DLQStoreConfig(prefix=f"dlq-it:{unique}")
    status_config = StatusStoreConfig(prefix=f"dlq-it-status:{unique}")
    async with open_broker(amqp_url) as broker, open_store(redis_url) as store:
        config = RuntimeConfig(
            store_url=redis_url, broker_url=amqp_url, topology=topology, store=status_config
        )
        app = Starlette(
            routes=[*status_routes(), *dlq_routes(store_config=store_config)],
            lifespan=relayna_lifespan(config),
        )
        try:
            async with (
                serving(app, graceful_timeout=1.0) as base,
                httpx.AsyncClient(base_url=base, timeout=15) as client,
            ):
                yield topology, broker, store, DLQStore(store, store_config), client
        finally:
            with anyio.CancelScope(shield=True):
                for name in ("", ".retry", ".dlq"):
                    await broker.delete_queue(topology.tasks_queue + name)
                await broker.delete_queue(topology.status_queue)
                await broker.delete_exchange(topology.tasks_exchange)
                await broker.delete_exchange(topology.status_exchange)


def worker(
    topology: Any, broker: Broker, dlq: DLQStore, handler: Callable[..., Any]
) -> TaskConsumer:
    return TaskConsumer(
        topology=topology,
        broker=broker,
        handler=handler,
        retry_policy=RETRY,
        statuses=LifecycleStatuses(enabled=True),
        dlq_recorder=dlq,
        drain_timeout=2.0,
    )


async def wait_status(store: Store, unique: str, task_id: str, status: str) -> None:
    statuses = StatusStore(store, StatusStoreConfig(prefix=f"dlq-it-status:{unique}"))
    while True:  # polling another process's effect; the test's fail_after bounds it
        latest = await statuses.latest(task_id)
        if latest is not None and latest["status"] == status:
            return
        await anyio.sleep(0.05)


async def test_dead_letter_find_replay_on_the_real_stack(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    attempts: list[int] = []
    handled: list[str] = []

    async def failing(task: TaskEnvelope, ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("downstream is down")

    twice = anyio.Event()

    async def succeeding(task: TaskEnvelope, ctx: TaskContext) -> dict[str, str]:
        handled.append(task.task_id)
        if len(handled) == 2:
            twice.set()
        return {"ok": "yes"}

    with anyio.fail_after(60):
        async with stack(amqp_url, redis_url, unique) as (topology, broker, store, dlq, http):
            async with anyio.create_task_group() as tg:
                consumer = worker(topology, broker, dlq, failing)
                await tg.start(consumer.run)
                async with open_relayna_client(topology, broker, declare=False) as client:
                    await client.publish_task({"task_id": "job-1", "correlation_id": "corr-1"})
                await wait_status(store, unique, "job-1", "failed")
                tg.cancel_scope.cancel()
            assert attempts == [0, 1]
            dlq_queue = topology.tasks_queue + ".dlq"
            [copy] = await broker.peek(dlq_queue, limit=10)  # type: ignore[attr-defined]
            assert copy.properties.correlation_id == "corr-1"
            for name in (h.RETRY_ATTEMPT, h.MAX_RETRIES, h.SOURCE_QUEUE, h.FAILURE_REASON,
                         h.EXCEPTION_TYPE):  # fmt: skip
                assert name in copy.properties.headers, name
            assert (await broker.inspect_queue(dlq_queue)).message_count == 1  # peek left it

            listing = (await http.get("/dlq/messages", params={"task_id": "job-1"})).json()
            [item] = listing["items"]
            assert (item["reason"], item["retry_attempt"], item["state"]) == (
                "handler_error",
                1,
                "dead_lettered",
            )
            assert item["correlation_id"] == "corr-1"
            dlq_id = item["dlq_id"]
            detail = (await http.get(f"/dlq/messages/{dlq_id}")).json()
            assert detail["latest_status"]["status"] == "failed"
            assert detail["body"]["task_id"] == "job-1"
            queues = (await http.get("/dlq/queues")).json()["queues"]
            assert [(q["queue_name"], q["indexed_count"], q["exists"], q["message_count"])
                    for q in queues] == [(dlq_queue, 1, True, 1)]  # fmt: skip

            async with anyio.create_task_group() as tg:
                await tg.start(worker(topology, broker, dlq, succeeding).run)
                replay = await http.post(f"/dlq/messages/{dlq_id}/replay")
                assert replay.status_code == 200, replay.text
                assert replay.json()["target_queue_name"] == topology.tasks_queue + ".retry"
                await wait_status(store, unique, "job-1", "completed")
                assert handled == ["job-1"]
                record = await dlq.get(dlq_id)
                assert record is not None
                assert record.state == "replayed"
                again = await http.post(f"/dlq/messages/{dlq_id}/replay")
                assert again.status_code == 409
                forced = await http.post(f"/dlq/messages/{dlq_id}/replay", params={"force": "true"})
                assert forced.status_code == 200
                assert forced.json()["replay_count"] == 2
                await twice.wait()  # the forced replay runs the task again
                tg.cancel_scope.cancel()
            assert handled == ["job-1", "job-1"]


async def test_ten_concurrent_replays_handle_the_task_once(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    handled: list[str] = []

    async def succeeding(task: TaskEnvelope, ctx: TaskContext) -> None:
        handled.append(task.task_id)

    async def failing(task: TaskEnvelope, ctx: TaskContext) -> None:
        raise RuntimeError("no")

    with anyio.fail_after(60):
        async with stack(amqp_url, redis_url, unique) as (topology, broker, store, dlq, http):
            async with anyio.create_task_group() as tg:
                await tg.start(worker(topology, broker, dlq, failing).run)
                async with open_relayna_client(topology, broker, declare=False) as client:
                    await client.publish_task({"task_id": "job-2"})
                await wait_status(store, unique, "job-2", "failed")
                tg.cancel_scope.cancel()
            [record] = (await dlq.list_records()).records
            codes: list[int] = []

            async def replay() -> None:
                response = await http.post(f"/dlq/messages/{record.dlq_id}/replay")
                codes.append(response.status_code)

            async with anyio.create_task_group() as tg:
                await tg.start(worker(topology, broker, dlq, succeeding).run)
                async with anyio.create_task_group() as callers:
                    for _ in range(10):
                        callers.start_soon(replay)
                await wait_status(store, unique, "job-2", "completed")
                # nothing else is queued: the only copy was handled
                for name in ("", ".retry"):
                    info = await broker.inspect_queue(topology.tasks_queue + name)
                    assert info.message_count == 0
                tg.cancel_scope.cancel()
            assert sorted(codes) == [200] + [409] * 9
            assert handled == ["job-2"]
