"""open_relayna_runtime can share already-open transports with a worker."""

from __future__ import annotations

import anyio
import pytest

from relayna.api import RuntimeConfig, open_relayna_runtime
from relayna.rabbitmq import open_relayna_client
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import open_broker, open_store

pytestmark = pytest.mark.anyio


async def test_runtime_uses_the_given_broker_and_store_and_leaves_them_open(unique: str) -> None:
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"t-{unique}",
        tasks_queue=f"t-{unique}.q",
        tasks_routing_key="t",
        status_exchange=f"s-{unique}",
        status_queue=f"s-{unique}.q",
        status_use_streams=False,
    )
    config = RuntimeConfig(store_url="memory://", broker_url="memory://", topology=topology)
    with anyio.fail_after(10):
        async with open_broker("memory://") as broker, open_store("memory://") as store:
            async with open_relayna_runtime(config, broker=broker, store=store) as runtime:
                assert runtime.broker is broker
                assert runtime.store is store
                async with open_relayna_client(topology, broker, declare=False) as client:
                    await client.publish_status({"task_id": "shared-1", "status": "completed"})
                while await runtime.status.latest("shared-1") is None:  # noqa: ASYNC110 - poll the store
                    await anyio.sleep(0.01)
            # still usable: the runtime did not close what it did not open
            await store.set("after", "1")
            assert (await broker.inspect_queue(topology.status_queue)).name == topology.status_queue
