"""The routes that publish through the runtime's broker fail over on a real
3-node RabbitMQ cluster (slow tier; the session's ``rabbit_cluster``).

An API runtime (an :class:`relayna.App` with its worker, served over HTTP)
reaches the cluster through a multi-node URL. The URL names one fault proxy per
node, so that the test can also make *every* node unreachable without
stopping the Erlang nodes (a proxy forwards to its node as it is: a SIGKILLed
node closes the connection through it and refuses new ones).

The node the runtime's one connection is on is SIGKILLed. Without a process
restart, a task published afterwards runs, ``POST /tasks/{id}/cancel`` cancels
it (it ends ``cancelled``), and ``POST /dlq/messages/{id}/replay`` republishes
a task dead-lettered before the kill, which the worker then completes. With
every node unreachable the cancel route answers 503 (``{"detail": ...}``)
within the runtime broker's bound. Both backends.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

import relayna
from _fault_proxy import FaultProxy, open_fault_proxy  # tests/ is on sys.path
from relayna.api import serving
from relayna.app import TaskHandle
from relayna.consumer import RetryPolicy, TaskContext
from relayna.errors import PublishNacked
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import FailoverBroker, open_broker
from relayna.transport.amqp._hosts import FAILURE_MEMORY

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from rabbitmq_cluster import RabbitCluster  # type: ignore[import-not-found]

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow_tier]

BOUND = 5.0  # the runtime broker's default unavailable_timeout


def _topology(unique: str) -> SharedTasksSharedStatusTopology:
    # quorum task/DLQ queues and a stream on every node: they outlive any one node
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"clr.tasks.{unique}",
        tasks_queue=f"clr.tasks.{unique}",
        tasks_routing_key="t",
        status_exchange=f"clr.status.{unique}",
        status_queue=f"clr.status.{unique}",
        dead_letter_exchange=f"clr.dlx.{unique}",
        work_queue_type="quorum",
        status_stream_initial_cluster_size=3,
    )


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args))


async def _poll(what: str, check: Any, seconds: float = 60.0) -> Any:
    """``await check()`` until it returns something truthy (bounded)."""
    with anyio.fail_after(seconds):
        while True:
            found = await check()
            if found:
                return found
            await anyio.sleep(0.1)


async def _publish(app: relayna.App, task_type: str) -> TaskHandle:
    """Publish; a nack is RabbitMQ saying it did not take the message (a quorum
    queue electing a new leader after the kill does that), so publish again."""
    with anyio.fail_after(60):
        while True:
            try:
                return await app.publish(task_type)
            except PublishNacked:
                await anyio.sleep(0.2)


@asynccontextmanager
async def _proxied(cluster: RabbitCluster) -> AsyncIterator[tuple[list[FaultProxy], str]]:
    async with AsyncExitStack() as stack:
        proxies = [
            await stack.enter_async_context(open_fault_proxy(node.amqp_port))
            for node in cluster.nodes
        ]
        hosts = ",".join(f"127.0.0.1:{proxy.port}" for proxy in proxies)
        yield proxies, f"amqp://guest:guest@{hosts}/?connection_timeout=2&heartbeat=5"


@asynccontextmanager
async def _served(app: relayna.App) -> AsyncIterator[httpx.AsyncClient]:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"relayna": app.runtime}

    web = Starlette(routes=app.routes(dlq=True), lifespan=lifespan)
    async with (
        serving(web, graceful_timeout=1.0) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        yield http


async def test_cancel_and_dlq_replay_routes_publish_through_another_node(
    anyio_backend: str, rabbit_cluster: RabbitCluster, redis_url: str, unique: str
) -> None:
    cluster = rabbit_cluster
    FAILURE_MEMORY.clear()  # earlier tests killed nodes: start from the URL's order
    topology = _topology(unique)
    attempts: dict[str, int] = {}
    slow_started = anyio.Event()
    killed = False
    try:
        async with _proxied(cluster) as (proxies, url):
            app = relayna.App(
                topology,
                broker=url,
                store=redis_url,
                name=f"clr{unique}",
                drain_timeout=2.0,
                # no retries; the retry plan declares the .dlq queue as a quorum queue
                retry=RetryPolicy(max_retries=0, delay_ms=100),
            )

            @app.task("flaky")
            async def flaky(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
                attempts[ctx.task_id] = attempts.get(ctx.task_id, 0) + 1
                if attempts[ctx.task_id] == 1:
                    raise ValueError("first run fails: dead-lettered")
                return {"runs": attempts[ctx.task_id]}

            @app.task("slow")
            async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
                slow_started.set()
                await anyio.sleep(120)

            with anyio.fail_after(240):
                async with app.open(worker=True), _served(app) as http:
                    broker = app.runtime.broker
                    assert isinstance(broker, FailoverBroker)
                    failed = await app.publish("flaky")
                    assert (await failed.wait())["status"] != "completed"

                    async def dead_letter() -> list[dict[str, Any]]:
                        page = (await http.get("/dlq/messages")).json()
                        return [i for i in page["items"] if i["task_id"] == failed.task_id]

                    dlq_id = (await _poll("the DLQ record", dead_letter))[0]["dlq_id"]

                    # SIGKILL the node the runtime's connection is on (the URL's first)
                    assert [p.stats.accepted for p in proxies[1:]] == [0, 0]
                    await _in_thread(cluster.kill, 0)
                    killed = True

                    async def reconnected() -> bool:
                        return broker.reconnects >= 1

                    await _poll("the runtime broker's reconnect", reconnected)
                    assert proxies[1].stats.accepted >= 1  # the next node of the URL

                    # The worker consumes again, through the runtime's new connection.
                    task = await _publish(app, "slow")
                    with anyio.fail_after(60):
                        await slow_started.wait()
                    answer = await http.post(
                        f"/tasks/{task.task_id}/cancel", json={"reason": "after failover"}
                    )
                    assert answer.status_code == 202, answer.text
                    assert answer.json()["state"] == "requested"
                    with anyio.fail_after(60):
                        ended = await task.wait()
                    assert ended["status"] == "cancelled"

                    replayed = await http.post(
                        f"/dlq/messages/{dlq_id}/replay", params={"direct": "true"}
                    )
                    assert replayed.status_code == 200, replayed.text
                    assert replayed.json()["state"] == "replayed"

                    async def completed() -> bool:
                        latest = await failed.status()
                        return latest is not None and latest["status"] == "completed"

                    await _poll("the replayed task's completion", completed)
                    assert attempts[failed.task_id] == 2  # the replayed message was consumed

                    # Every node unreachable: the route answers 503 within the bound.
                    other = await _publish(app, "slow")
                    for proxy in proxies:
                        proxy.down()

                    async def lost() -> bool:
                        return broker.current is None

                    await _poll("the lost connection", lost)
                    started = anyio.current_time()
                    with anyio.fail_after(BOUND + 10):
                        refused = await http.post(f"/tasks/{other.task_id}/cancel")
                    waited = anyio.current_time() - started
                    assert refused.status_code == 503, refused.text
                    assert "no broker node answered" in refused.json()["detail"]
                    assert waited >= BOUND  # it waited for a node, then gave up
                    for proxy in proxies:
                        proxy.up()
    finally:
        if killed:
            await _in_thread(cluster.restart, 0)
        FAILURE_MEMORY.clear()
        async with open_broker(cluster.amqp_url) as admin:
            plan = topology.plan()
            for name in plan.queue_names:
                await admin.delete_queue(name)
            for name in plan.exchange_names:
                await admin.delete_exchange(name)
