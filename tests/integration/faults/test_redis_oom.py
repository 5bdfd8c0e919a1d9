"""Redis out of memory under the status hub (issue 26): typed failures, no ack, nothing lost.

A private redis-server with ``maxmemory-policy noeviction`` is squeezed to a
``maxmemory`` below what it already uses, so every write answers ``-OOM``.
While it is, a status write fails with a typed :class:`StoreError`, the hub
keeps the deliveries unacked and retries with backoff, and a client following
the task keeps its stream open. Once memory is raised, every event is stored
exactly once, in order, and the client receives them all up to the terminal
event. Status queue on the memory broker (the fault is Redis); both backends.
"""

from __future__ import annotations

import anyio
import pytest
from services import free_port

from _redis_server import admin, redis_server  # tests/ is on sys.path (rootdir conftest)
from relayna.contracts import StatusEvent, encode_status
from relayna.errors import StoreError
from relayna.status import (
    Emit,
    StatusHub,
    StatusHubConfig,
    StatusStore,
    decode_status_body,
    open_status_stream,
)
from relayna.topology import StatusTopologyBase
from relayna.transport import open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

EVENTS = 20


async def test_oom_fails_typed_holds_acks_and_loses_nothing(unique: str) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    events = [
        StatusEvent(task_id="t", status="completed" if n == EVENTS - 1 else "running",
                    event_id=f"e{n}", message="x" * 200)
        for n in range(EVENTS)
    ]  # fmt: skip
    probe = StatusEvent(task_id="probe", status="running")
    received: list[str] = []
    with redis_server("--maxmemory-policy", "noeviction", port=port), anyio.fail_after(60):
        async with open_broker("memory://") as broker, open_store(url) as raw:
            await topology.plan().apply(broker)
            store = StatusStore(raw)
            hub = StatusHub(
                broker,
                store,
                StatusHubConfig(
                    queue=topology.status_queue, offset="first", retry_initial=0.05, retry_max=0.2
                ),
            )
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                await admin(url, "CONFIG", "SET", "maxmemory", "1")  # below what Redis uses
                with pytest.raises(StoreError, match="OOM"):
                    await store.write(decode_status_body(encode_status(probe)))

                async def follow() -> None:
                    async with open_status_stream(store, "t", keepalive=0.2) as items:
                        async for item in items:
                            if isinstance(item, Emit):
                                received.append(item.event_id)

                tg.start_soon(follow)
                for event in events:
                    await broker.publish("", topology.status_queue, encode_status(event))
                while hub.stats.store_failures < 3:  # noqa: ASYNC110 - polling the hub
                    await anyio.sleep(0.01)
                assert hub.stats.stored == 0
                assert broker.unacked_count(topology.status_queue) == EVENTS  # nothing acked
                await admin(url, "CONFIG", "SET", "maxmemory", "0")  # memory raised
                while len(received) < EVENTS:  # noqa: ASYNC110 - the follower's list
                    await anyio.sleep(0.01)
                history = await store.history("t")
                tg.cancel_scope.cancel()
    assert received == [f"e{n}" for n in range(EVENTS)]
    assert [e["event_id"] for e in reversed(history)] == received
    assert hub.stats.stored == EVENTS
    assert hub.stats.duplicates == 0
    print(f"redis oom: store_failures={hub.stats.store_failures} stored={hub.stats.stored}")
