"""Status streams on real Redis: the pubsub seam, reconnects, gap fill (T7)."""

from __future__ import annotations

import os
import random
from typing import Any

import anyio
import pytest

from relayna.status import (
    Emit,
    Ready,
    Resync,
    StatusStore,
    StatusStoreConfig,
    StatusStreamStats,
    open_status_stream,
)
from relayna.transport import open_store

pytestmark = pytest.mark.anyio


def ev(n: int, task: str, status: str = "running") -> dict[str, Any]:
    return {"task_id": task, "event_id": f"{task}-{n}", "status": status}


async def _redis_cli(*args: str) -> str:
    port = os.environ.get("RELAYNA_TEST_REDIS_PORT", "6379")
    result = await anyio.run_process(["redis-cli", "-p", port, *args], check=True)
    return result.stdout.decode()


async def pubsub_client_ids() -> set[str]:
    listing = await _redis_cli("CLIENT", "LIST", "TYPE", "pubsub")
    return {
        field[3:]
        for line in listing.splitlines()
        for field in line.split()
        if field.startswith("id=")
    }


async def kill_pubsub_clients(foreign: set[str]) -> int:
    """CLIENT KILL TYPE pubsub, limited to this test's connections: the Redis is
    shared with other test sessions, whose pubsub connections are left alone."""
    killed = 0
    for client_id in await pubsub_client_ids() - foreign:
        out = await _redis_cli("CLIENT", "KILL", "ID", client_id, "TYPE", "pubsub")
        killed += int(out.strip() or 0)
    return killed


@pytest.mark.parametrize("cluster", [False, True], ids=["classic", "sharded"])
async def test_client_kill_mid_stream_leaves_no_gap(
    redis_url: str, unique: str, cluster: bool
) -> None:
    """Also in the cluster key layout, where the stream follows a sharded channel
    (SSUBSCRIBE on a connection of its own, found by the same CLIENT KILL)."""
    total = 300
    with anyio.fail_after(30):
        async with open_store(redis_url) as store:
            status = StatusStore(
                store,
                StatusStoreConfig(prefix=f"kill-{unique}", max_history=1000, cluster=cluster),
            )
            received: list[str] = []
            resyncs = 0

            stats = StatusStreamStats()
            following = anyio.Event()

            async def follow() -> None:
                nonlocal resyncs
                async with open_status_stream(status, "t", stats=stats) as items:
                    async for item in items:
                        if isinstance(item, Ready):  # subscribed: the writes below go live
                            following.set()
                        if isinstance(item, Emit):
                            received.append(item.event_id)
                        elif isinstance(item, Resync):
                            resyncs += 1

            foreign = await pubsub_client_ids()
            killed = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await following.wait()
                for n in range(total):
                    status_text = "completed" if n == total - 1 else "running"
                    await status.write(ev(n, "t", status_text))
                    if n in (60, 150, 240):
                        killed += await kill_pubsub_clients(foreign)
                    if n % 20 == 0:
                        await anyio.sleep(0.01)
            assert received == [f"t-{n}" for n in range(total)]
            assert resyncs == 0
            assert killed >= 1
            assert stats.gap_fills >= 1


async def test_clients_joining_at_random_moments_see_the_history(
    redis_url: str, unique: str
) -> None:
    """The subscribe-before-history seam: 1,000 events, clients join anywhere."""
    total, clients = 1000, 12
    rng = random.Random(unique)
    with anyio.fail_after(60):
        async with open_store(redis_url) as store:
            status = StatusStore(
                store, StatusStoreConfig(prefix=f"seam-{unique}", max_history=1000)
            )
            results: dict[int, list[str]] = {}
            expected = [f"t-{n}" for n in range(total)]

            async def client(index: int, join_at: int, resume: bool) -> None:
                while True:  # poll: the condition is another task's counter
                    if not (written < join_at):
                        break
                    await anyio.sleep(0.001)
                last_event_id = None
                if resume and written:
                    last_event_id = f"t-{rng.randrange(written)}"
                got: list[str] = []
                async with open_status_stream(status, "t", last_event_id=last_event_id) as items:
                    async for item in items:
                        if isinstance(item, Emit):
                            got.append(item.event_id)
                        else:
                            assert isinstance(item, Ready)
                start = 0 if last_event_id is None else expected.index(last_event_id) + 1
                results[index] = got
                assert got == expected[start:], f"client {index} from {last_event_id}"

            written = 0
            async with anyio.create_task_group() as tg:
                for index in range(clients):
                    tg.start_soon(client, index, rng.randrange(total), index % 2 == 0)
                for n in range(total):
                    await status.write(ev(n, "t", "completed" if n == total - 1 else "running"))
                    written = n + 1
                    if rng.random() < 0.05:
                        await anyio.sleep(0.002)
            assert len(results) == clients
