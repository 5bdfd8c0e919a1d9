"""Status writes at load through the real hub while a Redis Cluster primary dies.

RabbitMQ (the shared single node, a fresh status stream) feeds a real
StatusHub writing to the 6-node Redis Cluster; status streams (what the SSE
route serves) follow every task. Mid-run the primary holding the tasks' slot
is SIGKILLed, its replica is promoted, and the killed node is restarted (it
rejoins as the new primary's replica, so ``WAIT 1`` can succeed again).

What must hold: every published event ends up in its task's history, in
order (the hub acked only what ``WAIT`` saw replicated, so the failover lost
nothing it acknowledged), and every stream saw every event (gap fill from
history after its pubsub connection moved). In the cluster key layout the
streams follow sharded channels, all on the killed primary: the store's
sharded reader must subscribe them again on the promoted replica, and every
stream gets the reconnect notice (a gap fill) without being reopened. The
stall is printed, not asserted.
With the status store's cluster key layout (``StatusStoreConfig(cluster=True)``)
the tasks are chosen among ids whose slots one primary serves; without it they
share one hash-tagged key prefix. Either way that primary is the one killed.
"""

from __future__ import annotations

import time
from itertools import count, islice

import anyio
import attrs
import pytest
from redis_cluster import RedisCluster

from relayna.contracts import StatusEvent, encode_status
from relayna.errors import StoreError
from relayna.status import (
    Emit,
    Ready,
    StatusHub,
    StatusHubConfig,
    StatusStore,
    StatusStoreConfig,
    StatusStreamStats,
    open_status_stream,
)
from relayna.topology import StatusTopologyBase
from relayna.transport import open_broker, open_store
from relayna.transport.resp import key_slot

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.slow_tier]

TASKS = 8
PER_TASK = 150


def _dedupe(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


async def test_primary_kill_loses_no_acked_status_event_and_streams_stay_gap_free(
    redis_cluster: RedisCluster, amqp_url: str, unique: str
) -> None:
    redis_cluster.wait_ok(timeout=60, replicas=True)
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    if "cluster" in attrs.fields_dict(StatusStoreConfig):
        config = StatusStoreConfig(prefix=f"rcf-{unique}", max_history=1000, cluster=True)  # type: ignore[call-arg]
        victim = redis_cluster.primary_of(f"{{t0-{unique}}}")
        ranges = next(n["slots"] for n in redis_cluster.nodes() if n["port"] == victim)
        assert isinstance(ranges, list)

        def served(task: str) -> bool:
            return any(lo <= key_slot(task) <= hi for lo, hi in ranges)

        tasks = list(islice((t for i in count() if served(t := f"t{i}-{unique}")), TASKS))
        slot_key = f"{{{tasks[0]}}}"
    else:
        slot_key = f"{{rcf-{unique}}}"
        config = StatusStoreConfig(prefix=slot_key, max_history=1000)
        tasks = [f"t{i}" for i in range(TASKS)]
    expected = {t: [f"{t}-{n}" for n in range(PER_TASK)] for t in tasks}
    received: dict[str, list[tuple[str, float]]] = {t: [] for t in tasks}
    stats = StatusStreamStats()
    following = {t: anyio.Event() for t in tasks}
    done = {t: anyio.Event() for t in tasks}
    killed = 0
    reopened = 0
    try:
        with anyio.fail_after(120):
            async with (
                open_broker(amqp_url) as broker,
                open_store(redis_cluster.url + "?failover_timeout=20") as store,
            ):
                await topology.plan().apply(broker)
                status = StatusStore(store, config)
                hub = StatusHub(
                    broker,
                    status,
                    StatusHubConfig(queue=topology.status_queue, offset="first", prefetch=100),
                )

                async def follow(task: str) -> None:
                    nonlocal reopened
                    got = received[task]
                    while True:
                        last = got[-1][0] if got else None
                        try:
                            async with open_status_stream(
                                status, task, last_event_id=last, stats=stats
                            ) as items:
                                async for item in items:
                                    if isinstance(item, Ready):
                                        following[task].set()
                                    if isinstance(item, Emit):
                                        got.append((item.event_id, time.monotonic()))
                                        if item.event.get("status") == "completed":
                                            done[task].set()
                                            return
                        except StoreError:
                            reopened += 1  # as an EventSource: reconnect with Last-Event-ID
                        await anyio.sleep(0.05)

                async def publish(n: int) -> None:
                    for task in tasks:
                        final = n == PER_TASK - 1
                        event = StatusEvent(
                            task_id=task,
                            status="completed" if final else "running",
                            event_id=f"{task}-{n}",
                        )
                        await broker.publish(topology.status_exchange, task, encode_status(event))

                async with anyio.create_task_group() as tg:
                    await tg.start(hub.run)
                    for task in tasks:
                        tg.start_soon(follow, task)
                    for ready in following.values():
                        await ready.wait()
                    for n in range(PER_TASK):
                        await publish(n)
                        if n == PER_TASK // 3:
                            killed, _ = await anyio.to_thread.run_sync(
                                redis_cluster.fail_primary, slot_key
                            )
                            await anyio.to_thread.run_sync(redis_cluster.restart, killed)
                        await anyio.sleep(0.005)
                    for event in done.values():
                        await event.wait()
                    tg.cancel_scope.cancel()

                for task in tasks:
                    history = [e["event_id"] for e in reversed(await status.history(task))]
                    assert history == expected[task], task
                    assert _dedupe([i for i, _ in received[task]]) == expected[task], task
                if config.cluster:
                    sharded = store._sharded  # type: ignore[attr-defined]
                    assert sharded.statistics()["reconnects"] >= TASKS
                    assert stats.gap_fills >= TASKS
                    assert reopened == 0
                stall = max(
                    b - a
                    for task in tasks
                    for (_, a), (_, b) in zip(received[task], received[task][1:], strict=False)
                )
                print(
                    f"\nkilled {killed}; hub store failures {hub.stats.store_failures}; "
                    f"gap fills {stats.gap_fills}; streams reopened {reopened}; longest pause between two events "
                    f"of a stream {stall:.2f}s"
                )
                with anyio.CancelScope(shield=True):
                    await broker.delete_queue(topology.status_queue)
    finally:
        for port in list(redis_cluster.killed):
            redis_cluster.restart(port)
        redis_cluster.wait_ok(timeout=60, replicas=True)
