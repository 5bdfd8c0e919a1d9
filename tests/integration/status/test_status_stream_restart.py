"""A Redis restart in the middle of status streams (T7, restart part).

Runs on a PRIVATE redis-server (AOF on, fsync always) so that restarting it
does not disturb other sessions using the shared Redis. The store's pubsub
multiplexer reconnects and emits ``PubSubReconnected``; the stream re-reads
the history (gap fill). A stream that ends with a store error is resumed by
the client with ``Last-Event-ID``, as an EventSource would.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from _private_redis import PrivateRedis

from relayna.errors import StoreError
from relayna.status import (
    Emit,
    Ready,
    StatusStore,
    StatusStoreConfig,
    StatusStreamStats,
    open_status_stream,
)
from relayna.transport import open_store

pytestmark = pytest.mark.anyio


def ev(n: int, task: str, status: str = "running") -> dict[str, Any]:
    return {"task_id": task, "event_id": f"{task}-{n}", "status": status}


def dedupe(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


# redis-py runs on asyncio only: that combination is not generated (never skipped).
@pytest.mark.parametrize(
    ("adapter", "anyio_backend"),
    [
        ("native", "asyncio"),
        ("native", "trio"),
        ("coredis", "asyncio"),
        ("coredis", "trio"),
        ("redis-py", "asyncio"),
    ],
)
async def test_redis_restart_mid_stream_resumes_without_gaps(
    private_redis: PrivateRedis, adapter: Any, anyio_backend: str
) -> None:
    total, clients = 200, 8
    with anyio.fail_after(45):
        async with open_store(private_redis.url, adapter=adapter) as store:
            status = StatusStore(store, StatusStoreConfig(prefix="rs", max_history=1000))
            stats = StatusStreamStats()
            received: dict[int, list[str]] = {i: [] for i in range(clients)}
            terminal: dict[int, bool] = {}
            reconnects = 0
            following = {i: anyio.Event() for i in range(clients)}

            async def follow(index: int) -> None:
                nonlocal reconnects
                got = received[index]
                while True:
                    last = got[-1] if got else None
                    try:
                        async with open_status_stream(
                            status, "t", last_event_id=last, stats=stats
                        ) as items:
                            async for item in items:
                                if isinstance(item, Ready):  # subscribed: live from here
                                    following[index].set()
                                if isinstance(item, Emit):
                                    got.append(item.event_id)
                                    if item.event.get("status") == "completed":
                                        terminal[index] = True
                        if terminal.get(index):
                            return  # the stream closed after the terminal event
                    except StoreError:
                        pass  # Redis was down: reconnect with Last-Event-ID
                    reconnects += 1
                    await anyio.sleep(0.05)

            async def write(n: int) -> None:
                event = ev(n, "t", "completed" if n == total - 1 else "running")
                while True:
                    try:
                        await status.write(event)
                        return
                    except StoreError:
                        await anyio.sleep(0.02)  # the hub's retry, in short

            async with anyio.create_task_group() as tg:
                for index in range(clients):
                    tg.start_soon(follow, index)
                for ready in following.values():
                    await ready.wait()
                for n in range(total):
                    await write(n)
                    if n == total // 2:
                        await anyio.to_thread.run_sync(private_redis.restart)
                    await anyio.sleep(0.002)

            history = [e["event_id"] for e in reversed(await status.history("t"))]
            assert history == [f"t-{n}" for n in range(total)]  # AOF kept everything
            for index in range(clients):
                assert terminal.get(index), f"client {index} missed the terminal event"
                assert dedupe(received[index]) == history, f"client {index}"
            print(f"gap fills {stats.gap_fills}, client reconnects {reconnects}")
            assert stats.gap_fills >= 1  # the pubsub reconnect triggered a history re-read
            assert stats.closed == stats.opened
