"""Faults on a real 3-node RabbitMQ cluster (slow tier; one cluster per session,
the ``rabbit_cluster`` fixture).

* 10,000 tasks published with confirms into a quorum task queue while the
  node the publisher and the worker are connected to is SIGKILLed, then (once
  it is back) the node leading the task queue: no confirmed task is lost,
  every task completes, and a task runs twice only as a broker redelivery
  (``redelivered=True``) or as the producer's own republish of a publish whose
  confirm it never got; the task's effect (SET NX on the real Redis) is applied
  once. A task whose run's completion was never recorded (its connection died
  before its completed status was confirmed, so relayna's idempotency mark was
  not written) runs again on redelivery: that is the at-least-once contract,
  and the effect's own idempotency absorbs the rerun (counted, not refused).
* A stream consumer resumes from its stored offset through another node after
  its node is killed: no message skipped, none read twice.
* The API runtime's status hub fails over: the node its connection is on is
  SIGKILLed while statuses flow; the hub reconnects through the next node,
  resumes from the offset it persisted in Redis, and SSE clients following the
  tasks receive every status once, in order (no gap after the resume).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.consumer import Idempotency, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.errors import BrokerError
from relayna.rabbitmq import open_relayna_client
from relayna.status import StatusStoreConfig
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Backoff, QueueSpec, Script, open_broker, open_store
from relayna.transport.amqp._hosts import FAILURE_MEMORY

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from rabbitmq_cluster import RabbitCluster  # type: ignore[import-not-found]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "status"))
from _sse_clients import Client, follow, http_client  # type: ignore[import-not-found]
from _status_server import serve  # type: ignore[import-not-found]

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow_tier]

N_TASKS = 10_000

# The task's effect, once per task; a later run of a task whose effect was
# already applied is absorbed and counted.
_EFFECT = Script(
    name="tests.cluster.effect",
    lua="""
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', 600000) then
  redis.call('INCR', KEYS[2])
  return 1
end
redis.call('INCR', KEYS[3])
return 0
""",
)


def _topology(unique: str) -> SharedTasksSharedStatusTopology:
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"cl.tasks.{unique}",
        tasks_queue=f"cl.tasks.{unique}",
        tasks_routing_key="t",
        status_exchange=f"cl.status.{unique}",
        status_queue=f"cl.status.{unique}",
        dead_letter_exchange=f"cl.dlx.{unique}",
        work_queue_type="quorum",
        delivery_limit=50,
        prefetch_count=200,
    )


def _url_starting_at(cluster: RabbitCluster, first: int) -> str:
    order = [first] + [i for i in range(len(cluster.nodes)) if i != first]
    hosts = ",".join(f"127.0.0.1:{cluster.nodes[i].amqp_port}" for i in order)
    return f"amqp://guest:guest@{hosts}/"


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args))


@pytest.mark.timeout(600)
async def test_no_confirmed_task_lost_when_the_client_node_then_the_leader_dies(
    rabbit_cluster: RabbitCluster, redis_url: str, unique: str
) -> None:
    cluster = rabbit_cluster
    topology = _topology(unique)
    queue = topology.tasks_queue
    # Earlier tests killed nodes: start from the URL's order again.
    FAILURE_MEMORY.clear()
    async with open_broker(_url_starting_at(cluster, 1)) as admin:
        await topology.plan().apply(admin)
    # The publisher and the worker connect first to a node that does not lead
    # the task queue, so the two kills hit two different nodes.
    leader = await _in_thread(cluster.queue_leader, queue)
    client_node = (leader + 1) % len(cluster.nodes)
    client_url = _url_starting_at(cluster, client_node)

    executions: list[tuple[str, bool]] = []
    prefix = f"cl:{unique}"
    ids = [f"t{i:05d}" for i in range(N_TASKS)]
    attempted: set[str] = set()
    confirmed: set[str] = set()
    republished: set[str] = set()
    killed: list[str] = []

    async with open_store(redis_url) as store:
        idempotency = Idempotency(store=store, ttl_seconds=900, prefix=f"{prefix}:idem")

        async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
            executions.append((task.task_id, ctx.redelivered))
            await store.run_script(
                _EFFECT,
                [f"{prefix}:effect:{task.task_id}", f"{prefix}:effects", f"{prefix}:dups"],
                [],
            )

        consumer = TaskConsumer(
            topology=topology,
            broker=client_url,
            handler=handler,
            prefetch=200,
            idempotency=idempotency,
            consumer_name="cluster-fault-worker",
            backoff=Backoff(initial=0.1, maximum=1.0),
        )

        async def publish_all() -> None:
            """Publish with confirms; a publish whose confirm never came is
            published again on a new connection (what a producer does)."""
            pending = list(ids)
            limiter = anyio.Semaphore(64)
            while pending:
                try:
                    async with open_relayna_client(topology, client_url, declare=False) as client:
                        async with anyio.create_task_group() as tg:

                            async def one(task_id: str) -> None:
                                async with limiter:
                                    attempted.add(task_id)
                                    try:
                                        await client.publish_task(
                                            {"task_id": task_id, "payload": {"n": task_id}}
                                        )
                                    except BrokerError:
                                        # the connection is gone: end this round; the
                                        # unconfirmed ones are published again below
                                        tg.cancel_scope.cancel()
                                        return
                                    confirmed.add(task_id)

                            for task_id in pending:
                                tg.start_soon(one, task_id)
                except BrokerError:
                    pass  # the connection went down: everything unconfirmed is retried
                pending = [t for t in pending if t not in confirmed]
                # sent without a confirm: it may be queued already, and is sent again
                republished.update(t for t in pending if t in attempted)
                if pending:
                    await anyio.sleep(0.2)  # backoff before reconnecting, not a sync point

        async def faults() -> None:
            async def published(n: int) -> None:
                while len(confirmed) < n:  # noqa: ASYNC110 - polling a plain set
                    await anyio.sleep(0.05)

            await published(N_TASKS // 5)
            await _in_thread(cluster.kill, client_node)  # the publisher's and the worker's
            killed.append(f"client node {client_node + 1}")
            await published(N_TASKS // 2)
            await _in_thread(cluster.restart, client_node)
            now_leading = await _in_thread(cluster.queue_leader, queue)
            await _in_thread(cluster.kill, now_leading)  # the task queue's leader
            killed.append(f"leader node {now_leading + 1}")
            await published(N_TASKS * 4 // 5)
            await _in_thread(cluster.restart, now_leading)

        with anyio.fail_after(540):
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                async with anyio.create_task_group() as work:
                    work.start_soon(faults)
                    work.start_soon(publish_all)
                while int(await store.get(f"{prefix}:effects") or 0) < N_TASKS:  # noqa: ASYNC110
                    await anyio.sleep(0.2)  # the effects counter lives in Redis
                tg.cancel_scope.cancel()
        effects = int(await store.get(f"{prefix}:effects") or 0)
        dups = int(await store.get(f"{prefix}:dups") or 0)

    async with open_broker(client_url) as admin:
        depth = (await admin.inspect_queue(queue)).message_count
        plan = topology.plan()
        for name in plan.queue_names:
            await admin.delete_queue(name)
        for name in plan.exchange_names:
            await admin.delete_exchange(name)

    runs = Counter(task_id for task_id, _ in executions)
    first_runs: set[str] = set()
    unexplained: list[tuple[str, bool]] = []
    for task_id, redelivered in executions:
        if task_id in first_runs and not redelivered and task_id not in republished:
            unexplained.append((task_id, redelivered))
        first_runs.add(task_id)
    report = {
        "killed": killed,
        "confirmed": len(confirmed),
        "republished": len(republished),
        "executions": len(executions),
        "ran_twice": sum(1 for n in runs.values() if n > 1),
        "reruns_absorbed_by_the_effect": dups,
        "reconnects": consumer.stats.reconnects,
        "duplicates_suppressed": consumer.stats.duplicates_suppressed,
    }
    print(f"\n[rabbitmq cluster faults] {report}")
    assert len(killed) == 2
    assert confirmed == set(ids)
    # effects counts task ids whose effect was applied (once each, SET NX): all of
    # them, so 0 confirmed tasks were lost and every task completed
    assert effects == N_TASKS
    # A second run is a redelivery or the producer's republish, never a second
    # dispatch of a delivery (the reruns the effect absorbed are among these).
    assert unexplained == []
    assert consumer.stats.reconnects >= 1
    assert depth == 0


async def test_a_stream_consumer_resumes_from_its_offset_on_another_node(
    rabbit_cluster: RabbitCluster, unique: str
) -> None:
    cluster = rabbit_cluster
    stream = f"cl.stream.{unique}"
    FAILURE_MEMORY.clear()
    async with open_broker(_url_starting_at(cluster, 0)) as admin:
        await admin.declare_queue(
            QueueSpec(
                stream,
                durable=True,
                arguments={"x-queue-type": "stream", "x-initial-cluster-size": 3},
            )
        )
        for i in range(200):
            await admin.publish("", stream, f"m{i}".encode())
    leader = await _in_thread(cluster.queue_leader, stream)
    reader_node = next(i for i in range(len(cluster.nodes)) if i != leader)
    seen: list[str] = []
    stored_offset = 0
    with anyio.fail_after(120):
        async with open_broker(_url_starting_at(cluster, reader_node)) as broker:
            port = broker.connection.params.port  # type: ignore[attr-defined]
            assert port == cluster.nodes[reader_node].amqp_port
            async with broker.consume(stream, prefetch=50, offset=0) as consumer:
                async for delivery in consumer:
                    seen.append(delivery.body.decode())
                    stored_offset = int(delivery.properties.headers["x-stream-offset"]) + 1
                    await delivery.ack()
                    if len(seen) == 120:
                        break
        await _in_thread(cluster.kill, reader_node)
        try:
            async with open_broker(_url_starting_at(cluster, reader_node)) as broker:
                port = broker.connection.params.port  # type: ignore[attr-defined]
                assert port != cluster.nodes[reader_node].amqp_port
                async with broker.consume(stream, prefetch=50, offset=stored_offset) as consumer:
                    async for delivery in consumer:
                        seen.append(delivery.body.decode())
                        await delivery.ack()
                        if len(seen) == 200:
                            break
                await broker.delete_queue(stream)
        finally:
            await _in_thread(cluster.restart, reader_node)
    assert seen == [f"m{i}" for i in range(200)]


HUB_TASKS = 4
HUB_STATUSES = 150  # per task; the last one is "completed"


async def test_the_status_hub_fails_over_and_sse_clients_see_every_status(
    rabbit_cluster: RabbitCluster, redis_url: str, unique: str
) -> None:
    cluster = rabbit_cluster
    FAILURE_MEMORY.clear()
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"clh.tasks.{unique}",
        tasks_queue=f"clh.tasks.{unique}",
        tasks_routing_key="t",
        status_exchange=f"clh.status.{unique}",
        status_queue=f"clh.status.{unique}",
        status_stream_initial_cluster_size=3,  # the stream outlives any one node
    )
    hub_node, publisher_node = 0, 1
    tasks = [f"h{i}" for i in range(HUB_TASKS)]
    store_config = StatusStoreConfig(prefix=f"clh-{unique}", max_history=HUB_STATUSES + 10)
    config = RuntimeConfig(
        store_url=redis_url,
        broker_url=_url_starting_at(cluster, hub_node),
        topology=topology,
        store=store_config,
    )
    clients = [Client(task_id) for task_id in tasks]
    killed = False
    try:
        with anyio.fail_after(180):
            async with open_relayna_runtime(config) as runtime, serve(runtime) as base:
                hub = runtime.hub
                assert hub is not None
                async with (
                    open_relayna_client(
                        topology, _url_starting_at(cluster, publisher_node)
                    ) as publisher,
                    anyio.create_task_group() as tg,
                ):
                    ready = anyio.Event()
                    waiting = len(clients)

                    def one_ready() -> None:
                        nonlocal waiting
                        waiting -= 1
                        if waiting == 0:
                            ready.set()

                    async def run(client: Client) -> None:
                        async with http_client(base) as http:
                            await follow(http, client, one_ready)

                    for client in clients:
                        tg.start_soon(run, client)
                    await ready.wait()

                    async def publish(seq: int) -> None:
                        for task_id in tasks:
                            last = seq == HUB_STATUSES - 1
                            await publisher.publish_status(
                                {
                                    "task_id": task_id,
                                    "status": "completed" if last else "running",
                                    "meta": {"seq": seq},
                                }
                            )

                    half = HUB_STATUSES // 2
                    for seq in range(half):
                        await publish(seq)
                    # the hub has stored some of it: kill the node its connection is on
                    while hub.stats.stored < HUB_TASKS * 10:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                    restarts_before = hub.stats.consumer_restarts
                    await _in_thread(cluster.kill, hub_node)
                    killed = True
                    for seq in range(half, HUB_STATUSES):
                        await publish(seq)
                # every client has read its terminal event (follow returned)
                assert hub.stats.consumer_restarts > restarts_before
                for client in clients:
                    history = await runtime.status.history(client.task_id)
                    stored = [event["event_id"] for event in reversed(history)]
                    assert len(stored) == HUB_STATUSES, client.task_id
                    assert client.received == stored, client.task_id  # every status, in order
                    assert client.duplicates == 0
                    assert client.after_terminal == 0
    finally:
        if killed:
            await _in_thread(cluster.restart, hub_node)
        async with open_broker(_url_starting_at(cluster, publisher_node)) as admin:
            plan = topology.plan()
            for name in plan.queue_names:
                await admin.delete_queue(name)
            for name in plan.exchange_names:
                await admin.delete_exchange(name)
