"""The hub's replica wait (``replica_acks``): acks wait for ``wait_replicated``.

A memory store wrapped with a scripted ``wait_replicated`` (the method a
Redis Cluster store has): the real cluster path is in
tests/integration/cluster/test_redis_cluster_faults.py.
"""

from __future__ import annotations

import anyio
import attrs
import pytest

from _replica_store import WaitingStore
from relayna.contracts import StatusEvent, encode_status
from relayna.errors import ConfigurationError
from relayna.status import StatusHub, StatusHubConfig, StatusStore
from relayna.topology import StatusTopologyBase
from relayna.transport import open_broker, open_store

pytestmark = pytest.mark.anyio


async def test_a_batch_is_acked_only_after_its_replicas_and_rewritten_until_then(
    unique: str,
) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    with anyio.fail_after(10):
        async with open_broker("memory://") as broker, open_store("memory://") as raw:
            await topology.plan().apply(broker)
            store = WaitingStore(raw, answers=[0, 0])
            status = StatusStore(store)  # type: ignore[arg-type]
            config = StatusHubConfig(
                queue=topology.status_queue,
                offset="first",
                persist_offset=False,
                retry_initial=0.01,
                replica_wait=0.25,
            )
            hub = StatusHub(broker, status, config)
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                event = StatusEvent(task_id="t", status="running", event_id="t-1")
                await broker.publish(topology.status_exchange, "t", encode_status(event))
                while True:  # poll: the condition is another task's counter
                    if hub.stats.stored + hub.stats.duplicates >= 1:
                        break
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
            # Two WAITs answered 0: the batch was written again each time, and
            # the event counted (stored or duplicate) only after WAIT said 1.
            assert store.calls == [(1, 0.25)] * 3
            assert store.writes_before_wait == [1, 2, 3]
            assert hub.stats.store_failures == 2
            assert [e["event_id"] for e in await status.history("t")] == ["t-1"]


async def test_replica_acks_need_a_store_that_can_wait(unique: str) -> None:
    async with open_broker("memory://") as broker, open_store("memory://") as raw:
        with pytest.raises(ConfigurationError, match="replica"):
            StatusHub(
                broker,
                StatusStore(raw),
                StatusHubConfig(queue=f"sq.{unique}", replica_acks=1),
            )
        # The default asks nothing of a store that cannot wait.
        StatusHub(broker, StatusStore(raw), StatusHubConfig(queue=f"sq.{unique}"))


def test_replica_acks_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="replica_acks"):
        StatusHubConfig(queue="q", replica_acks=-1)


async def test_a_runtime_carries_the_knob_to_its_hub(unique: str) -> None:
    from relayna.api import RuntimeConfig, open_relayna_runtime

    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    config = RuntimeConfig(
        store_url="memory://", broker_url="memory://", topology=topology, replica_acks=1
    )
    with anyio.fail_after(10), pytest.raises(ConfigurationError, match="replica_acks=1"):
        async with open_relayna_runtime(config):
            pass
    async with open_relayna_runtime(attrs.evolve(config, replica_acks=0)) as runtime:
        assert runtime.hub is not None
