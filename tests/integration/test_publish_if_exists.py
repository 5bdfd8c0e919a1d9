"""``publish_task(if_exists=...)``: a task id that exists runs again, is skipped, or is refused.

The check and the claim are one script in the store, so of many producers
publishing one id at once exactly one publishes. On the memory transports
and on real RabbitMQ + Redis (the Lua scripts), both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from _transports import TRANSPORTS, open_transports
from relayna.errors import ConfigurationError, DuplicateTaskError, UnroutableError
from relayna.rabbitmq import RelaynaClient, TaskIds, open_relayna_client
from relayna.status import StatusStore, StatusStoreConfig
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Broker, Store

pytestmark = pytest.mark.anyio


def _topology(unique: str) -> SharedTasksSharedStatusTopology:
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"tx.{unique}",
        tasks_queue=f"tq.{unique}",
        tasks_routing_key="task",
        status_exchange=f"sx.{unique}",
        status_queue=f"sq.{unique}",
        status_use_streams=False,
    )


Env = tuple[RelaynaClient, Broker, Store, SharedTasksSharedStatusTopology]


@pytest.fixture(params=TRANSPORTS)
async def env(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[Env]:
    """A client with ``TaskIds`` on the memory transports, then on the real ones."""
    topology = _topology(unique)
    async with open_transports(request.param, request) as (broker, store):
        ids = TaskIds(store, prefix=f"ie-{unique}", ttl_seconds=60)
        try:
            async with open_relayna_client(topology, broker, task_ids=ids) as client:
                yield client, broker, store, topology
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                for queue in (topology.tasks_queue, topology.status_queue):
                    await broker.delete_queue(queue)


async def depth(broker: Broker, queue: str) -> int:
    return (await broker.inspect_queue(queue)).message_count


async def test_if_exists_run_skip_error(env: Env) -> None:
    client, broker, _store, topo = env
    with anyio.fail_after(20):
        task = {"task_id": "dup-1", "payload": {"n": 1}}
        await client.publish_task(task, if_exists="error")  # new: published
        with pytest.raises(DuplicateTaskError, match="dup-1") as caught:
            await client.publish_task(task, if_exists="error")
        assert caught.value.task_id == "dup-1"
        skipped = await client.publish_task(task, if_exists="skip")
        assert skipped.task_id == "dup-1"
        assert await depth(broker, topo.tasks_queue) == 1
        await client.publish_task(task)  # "run", the default: runs again
        assert await depth(broker, topo.tasks_queue) == 2


async def test_a_task_with_statuses_exists_even_if_another_producer_published_it(env: Env) -> None:
    client, broker, store, topo = env
    assert client.task_ids is not None
    with anyio.fail_after(20):
        prefix = client.task_ids.prefix
        status = StatusStore(store, StatusStoreConfig(prefix=prefix, ttl_seconds=60))
        await status.write({"task_id": "elsewhere", "event_id": "e1", "status": "running"})
        with pytest.raises(DuplicateTaskError):
            await client.publish_task({"task_id": "elsewhere"}, if_exists="error")
        assert await depth(broker, topo.tasks_queue) == 0
        assert client.task_ids.history_key("x") == status.history_key("x")  # one key format


async def test_of_many_concurrent_publishes_of_one_id_exactly_one_goes_out(env: Env) -> None:
    client, broker, _store, topo = env
    outcomes: list[str] = []

    async def publish(client: RelaynaClient) -> None:
        try:
            await client.publish_task({"task_id": "race"}, if_exists="error")
        except DuplicateTaskError:
            outcomes.append("duplicate")
        else:
            outcomes.append("published")

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(publish, client)
        assert sorted(outcomes) == ["duplicate"] * 19 + ["published"]
        assert await depth(broker, topo.tasks_queue) == 1


async def test_a_failed_publish_releases_its_claim(env: Env) -> None:
    client, broker, store, topo = env
    with anyio.fail_after(20):
        await broker.delete_queue(topo.tasks_queue)  # nothing takes the task now
        with pytest.raises(UnroutableError):
            await client.publish_task({"task_id": "retry-me"}, if_exists="error")
        assert client.task_ids is not None
        assert not await store.exists(client.task_ids.key("retry-me"))
        await topo.plan().apply(broker)
        await client.publish_task({"task_id": "retry-me"}, if_exists="error")  # not a duplicate
        assert await depth(broker, topo.tasks_queue) == 1


async def test_skip_and_error_need_a_store_and_the_value_is_checked(unique: str) -> None:
    topology = _topology(unique)
    with anyio.fail_after(10):
        async with open_relayna_client(topology, "memory://") as client:
            for mode in ("skip", "error"):
                with pytest.raises(ConfigurationError, match="task_ids=TaskIds"):
                    await client.publish_task({"task_id": "a"}, if_exists=mode)  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError, match="run, skip, error"):
                await client.publish_task({"task_id": "a"}, if_exists="maybe")  # type: ignore[arg-type]
            await client.publish_task({"task_id": "a"})
            await client.publish_task({"task_id": "a"})  # no store: runs again, as ever
            assert (await client.broker.inspect_queue(topology.tasks_queue)).message_count == 2
