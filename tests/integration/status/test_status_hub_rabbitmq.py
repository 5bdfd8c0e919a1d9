"""StatusHub on real RabbitMQ (a fresh status stream) and real Redis."""

from __future__ import annotations

import anyio
import pytest

from relayna.contracts import StatusEvent, encode_status
from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
from relayna.topology import StatusTopologyBase
from relayna.transport import open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]


async def test_two_hubs_on_a_fresh_stream_store_each_event_once(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    total = 200
    with anyio.fail_after(40):
        async with open_broker(amqp_url) as broker, open_store(redis_url) as store:
            await topology.plan().apply(broker)
            status = StatusStore(store, StatusStoreConfig(prefix=f"hub-{unique}"))
            config = StatusHubConfig(queue=topology.status_queue, offset="first", prefetch=50)
            hubs = [StatusHub(broker, status, config) for _ in range(2)]
            try:
                async with anyio.create_task_group() as tg:
                    for hub in hubs:
                        await tg.start(hub.run)  # retries stream_not_found on a fresh stream
                    for n in range(total):
                        task = f"task{n % 4}"
                        event = StatusEvent(
                            task_id=task,
                            status="completed" if n >= total - 4 else "running",
                            event_id=f"{task}-{n}",
                            meta={"auth_token": "s3cret"},
                        )
                        await broker.publish(topology.status_exchange, task, encode_status(event))
                    while True:  # poll: the condition is another task's counter
                        if not (sum(h.stats.stored + h.stats.duplicates for h in hubs) < 2 * total):
                            break
                        await anyio.sleep(0.02)
                    tg.cancel_scope.cancel()
                assert sum(h.stats.stored for h in hubs) == total
                assert sum(h.stats.duplicates for h in hubs) == total
                for i in range(4):
                    history = await status.history(f"task{i}")
                    assert [e["event_id"] for e in history] == [
                        f"task{i}-{n}" for n in range(i, total, 4)
                    ][::-1][:50]
                    assert all("auth_token" not in e.get("meta", {}) for e in history)
            finally:
                with anyio.CancelScope(shield=True):
                    await broker.delete_queue(topology.status_queue)
