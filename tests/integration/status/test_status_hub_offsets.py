"""A status hub resumes from the offset it committed in the store.

The deploy scenario: a hub runs and stops; 1,000 statuses are published while
no hub runs, with browsers already following those tasks over SSE; a new hub
of the same name starts. Every status must reach the store and every waiting
stream, in order, to the terminal event. (Starting at ``last``, as hubs did
before the offset was kept, a new hub skipped all but the last chunk.)

Runs on the memory transports and on a real RabbitMQ stream + real Redis,
SSE over real loopback sockets, on both backends.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from _sse_clients import Client, follow, http_client
from _status_server import serve

from _transports import TRANSPORTS, open_transports
from relayna.api import RelaynaRuntime, RuntimeConfig
from relayna.contracts import StatusEvent, encode_status
from relayna.errors import ConfigurationError
from relayna.status import HubOffsets, StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
from relayna.topology import StatusTopologyBase
from relayna.transport import Broker, open_broker, open_store

pytestmark = pytest.mark.anyio


async def publish(broker: Broker, exchange: str, task: str, n: int, status: str) -> None:
    event = StatusEvent(task_id=task, status=status, event_id=f"{task}-{n}")
    await broker.publish(exchange, task, encode_status(event))


async def wait_for(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - polling another task's counter
        await anyio.sleep(0.01)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_statuses_published_while_no_hub_ran_reach_store_and_waiting_streams(
    kind: str, request: pytest.FixtureRequest, unique: str
) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    # The transports outlive the deadline: their reader tasks serve the
    # shielded cleanup after a timeout.
    async with open_transports(kind, request) as (broker, store):
        status = StatusStore(store, StatusStoreConfig(prefix=f"ho-{unique}", max_history=200))
        try:
            with anyio.fail_after(90):
                await topology.plan().apply(broker)
                await deploy_scenario(broker, status, topology)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await store.delete(f"ho-{unique}:hub:api:offset")
                if kind == "real":
                    await broker.delete_queue(topology.status_queue)


async def deploy_scenario(
    broker: Broker, status: StatusStore, topology: StatusTopologyBase
) -> None:
    tasks, per_task = 10, 100  # 1,000 statuses
    store = status.store
    config = StatusHubConfig(queue=topology.status_queue, name="api")  # offset "last"
    record = f"{status.config.prefix}:hub:api:offset"
    runtime = RelaynaRuntime(config=RuntimeConfig(store_url=store.url), store=store, status=status)

    # A hub runs, stores one status, and stops (a deploy).
    first = StatusHub(broker, status, config)
    async with anyio.create_task_group() as tg:
        await tg.start(first.run)
        await publish(broker, topology.status_exchange, "warm", 0, "completed")
        await wait_for(lambda: first.stats.stored == 1)
        tg.cancel_scope.cancel()
    assert await store.hget(record, "offset") is not None  # committed on the way out

    clients = [Client(task_id=f"t{i}") for i in range(tasks)]
    waiting = anyio.Event()
    ready = 0

    def on_ready() -> None:
        nonlocal ready
        ready += 1
        if ready == tasks:
            waiting.set()

    async def run_client(base: str, client: Client) -> None:
        async with http_client(base) as http:
            await follow(http, client, on_ready)

    async def publish_task(task: str) -> None:
        for n in range(per_task):
            final = "completed" if n == per_task - 1 else "running"
            await publish(broker, topology.status_exchange, task, n, final)

    second = StatusHub(broker, status, config)
    async with AsyncExitStack() as stack:
        hubs = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(hubs.cancel_scope.cancel)
        base = await stack.enter_async_context(serve(runtime))
        async with anyio.create_task_group() as followers:
            for client in clients:  # browsers follow the tasks; no hub runs
                followers.start_soon(run_client, base, client)
            await waiting.wait()
            async with anyio.create_task_group() as publishers:
                for client in clients:
                    publishers.start_soon(publish_task, client.task_id)
            await hubs.start(second.run)  # the new hub of the same name
        # every follower has its terminal event and saw its stream close
        await wait_for(lambda: second.stats.stored >= tasks * per_task)

    assert second.stats.resumed_from is not None
    for client in clients:
        expected = [f"{client.task_id}-{n}" for n in range(per_task)]
        assert client.received == expected
        assert client.after_terminal == 0
        history = await status.history(client.task_id)
        assert [e["event_id"] for e in history] == expected[::-1]
    assert second.stats.stored == tasks * per_task
    committed = int(await store.hget(record, "offset") or b"0")
    assert committed >= second.stats.resumed_from + tasks * per_task


STORES = [
    pytest.param("memory", id="memory"),
    pytest.param("real", id="redis", marks=[pytest.mark.redis]),
]


@pytest.mark.parametrize("kind", STORES)
async def test_offset_record_only_moves_forward_and_is_shared_by_name(
    kind: str, request: pytest.FixtureRequest, unique: str
) -> None:
    url = request.getfixturevalue("redis_url") if kind == "real" else "memory://"
    with anyio.fail_after(10):
        async with open_store(url) as store:
            api = HubOffsets(store, f"rec-{unique}", "api")
            replica = HubOffsets(store, f"rec-{unique}", "api")  # another hub, same name
            other = HubOffsets(store, f"rec-{unique}", "admin")
            try:
                assert await api.load() is None
                assert await api.commit(10, updated_at_ms=1)
                assert not await replica.commit(7, updated_at_ms=2)  # a lagging hub
                assert not await replica.commit(10, updated_at_ms=3)
                assert await replica.load() == 10
                assert await replica.commit(12, updated_at_ms=4)
                assert await api.load() == 12
                assert await other.load() is None  # records are per name
                assert await store.hgetall(api.key) == {b"offset": b"12", b"updated_at_ms": b"4"}
                await store.hset(api.key, {"offset": "twelve"})
                with pytest.raises(ConfigurationError, match="delete the key"):
                    await api.load()
            finally:
                with anyio.CancelScope(shield=True):
                    await store.delete(api.key)


@pytest.mark.redis
async def test_a_memory_brokers_offsets_are_not_kept_in_redis(redis_url: str, unique: str) -> None:
    # A memory broker's stream is gone with the process: an offset kept in
    # Redis would send the next run's hub past the end of its fresh stream.
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    with anyio.fail_after(10):
        async with open_broker("memory://") as broker, open_store(redis_url) as store:
            await topology.plan().apply(broker)
            status = StatusStore(store, StatusStoreConfig(prefix=f"mb-{unique}"))
            hub = StatusHub(broker, status, StatusHubConfig(queue=topology.status_queue))
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                await publish(broker, topology.status_exchange, "t", 0, "completed")
                await wait_for(lambda: hub.stats.stored == 1)
                tg.cancel_scope.cancel()
            assert hub.stats.offset_commits == 0
            assert await store.exists(f"mb-{unique}:hub:{topology.status_queue}:offset") is False
