"""Soak (slow tier, issue 26): steady load while workers are SIGKILLed, the hub
restarts and Redis drops every pubsub connection; RSS and open fds stay flat.

Real RabbitMQ + Redis. For ``RELAYNA_SOAK_SECONDS`` (default 120 s per
backend; the CI slow tier runs it, bounded to 10 minutes in all) tasks are
published at a steady rate to three worker processes: one runs the whole time
(its RSS/fd curve is measured), the other two take turns being SIGKILLed
every ``KILL_EVERY`` seconds and restarted. The status hub in this process is
cancelled and restarted every ``HUB_EVERY`` seconds; ``CLIENT KILL TYPE
pubsub`` drops every status-stream subscription every ``PUBSUB_EVERY``
seconds while followers watch a sample of tasks. At the end: 0 lost, 0
duplicate effects, 0 unexpected, 0 stuck (every task has ``completed``
stored), every follower saw its task end; the fd count of this process and
of the stable worker is where it was after warm-up, and the RSS curve is
printed with its slope.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
import pytest
from _harness import (
    Worker,
    check_oracle,
    delete_topology,
    open_ledger,
    rss_kib,
    start_worker,
    stop_workers,
    wait_for,
    worker_env,
)
from _worker_app import ledger_prefix, make_topology

from _redis_server import admin
from relayna.rabbitmq import open_relayna_client
from relayna.status import (
    Emit,
    StatusHub,
    StatusHubConfig,
    StatusStore,
    StatusStoreConfig,
    open_status_stream,
)
from relayna.transport import open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.soak]

SOAK_SECONDS = float(os.environ.get("RELAYNA_SOAK_SECONDS", "120"))
RATE = 20  # tasks per second
KILL_EVERY = 10.0
HUB_EVERY = 15.0
PUBSUB_EVERY = 5.0
SAMPLE_EVERY = 5.0
FOLLOW_EVERY = 50  # every 50th task has a follower
FD_SLACK = 8


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (per minute) of (seconds, value) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points) or 1.0
    return 60 * sum((t - mx) * (v - my) for t, v in points) / var


@pytest.mark.timeout(SOAK_SECONDS * 2 + 240)
async def test_soak_under_kills_hub_restarts_and_pubsub_drops(
    amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    topo = make_topology(unique)
    env = worker_env(
        unique=unique, amqp_url=amqp_url, redis_url=redis_url, backend=anyio_backend,
        REL_PREFETCH=8,
    )  # fmt: skip
    produced: list[str] = []
    followed: dict[str, bool] = {}
    curve: list[dict[str, Any]] = []
    kills = hub_restarts = pubsub_kills = 0
    retired: list[Worker] = []
    me = os.getpid()
    async with (
        open_broker(amqp_url) as broker,
        open_store(redis_url) as store,
        open_ledger(redis_url, ledger_prefix(unique)) as ledger,
    ):
        status = StatusStore(store, StatusStoreConfig(prefix=f"soak-{unique}", ttl_seconds=900))
        stable = start_worker(env)
        churn = [start_worker(env), start_worker(env)]
        try:
            with anyio.fail_after(SOAK_SECONDS + 200):
                async with (
                    open_relayna_client(topo, broker) as client,
                    anyio.create_task_group() as tg,
                ):
                    for w in (stable, *churn):
                        await w.wait_ready()
                    started = time.monotonic()
                    hub_scope = anyio.CancelScope()

                    async def hubs() -> None:
                        nonlocal hub_restarts, hub_scope
                        while True:
                            hub = StatusHub(broker, status, StatusHubConfig(
                                queue=topo.status_queue, offset=None, prefetch=200,
                                requeue_on_store_failure=True))  # fmt: skip
                            with anyio.CancelScope() as hub_scope:
                                async with anyio.create_task_group() as inner:
                                    await inner.start(hub.run)
                                    await anyio.sleep(HUB_EVERY)
                                    inner.cancel_scope.cancel()
                            hub_restarts += 1

                    async def follow(task_id: str) -> None:
                        async with open_status_stream(status, task_id, keepalive=1.0) as items:
                            async for item in items:
                                if isinstance(item, Emit) and item.event["status"] == "completed":
                                    followed[task_id] = True

                    async def faults() -> None:
                        nonlocal kills, pubsub_kills
                        last_kill = last_pubsub = time.monotonic()
                        while True:
                            await anyio.sleep(0.5)
                            now = time.monotonic()
                            if now - last_pubsub >= PUBSUB_EVERY:
                                await admin(redis_url, "CLIENT", "KILL", "TYPE", "pubsub")
                                pubsub_kills += 1
                                last_pubsub = now
                            if now - last_kill >= KILL_EVERY and churn[0].ready_for() >= 1.0:
                                victim = churn.pop(0)
                                victim.kill()
                                retired.append(victim)
                                churn.append(start_worker(env))
                                kills += 1
                                last_kill = now

                    def take_sample() -> None:
                        curve.append({
                            "t": round(time.monotonic() - started, 1),
                            "rss_kib": rss_kib(me), "fds": _fds(me),
                            "worker_rss_kib": rss_kib(stable.pid),
                            "worker_fds": _fds(stable.pid),
                        })  # fmt: skip

                    async def sample() -> None:
                        while True:
                            take_sample()
                            await anyio.sleep(SAMPLE_EVERY)

                    tg.start_soon(hubs)
                    tg.start_soon(faults)
                    tg.start_soon(sample)
                    n = 0
                    while time.monotonic() - started < SOAK_SECONDS:
                        batch = [f"s{n + i}" for i in range(RATE)]
                        await client.publish_tasks([{"task_id": t} for t in batch], concurrency=16)
                        produced.extend(batch)
                        for task_id in batch[::FOLLOW_EVERY]:
                            followed[task_id] = False
                            tg.start_soon(follow, task_id)
                        n += RATE
                        await anyio.sleep(1.0)

                    async def all_effects() -> bool:
                        return await ledger.effect_count() >= len(produced)

                    await wait_for(all_effects, 120, "all effects", interval=0.5)

                    async def all_terminal() -> bool:
                        for task_id in produced:
                            history = await status.history(task_id)
                            if not any(e.get("status") == "completed" for e in history):
                                return False
                        return all(followed.values())

                    await wait_for(all_terminal, 60, "terminal statuses", interval=1.0)
                    take_sample()  # quiet again: every follower has ended
                    for w in churn:  # a SIGTERM before its handler is set is no drain
                        await w.wait_ready()
                    tg.cancel_scope.cancel()
            codes = await stop_workers([stable, *churn])
            executions = await ledger.executions()
            effects = await ledger.effects()
            depth = (await broker.inspect_queue(topo.tasks_queue)).message_count
        finally:
            for w in (stable, *churn, *retired):
                w.cleanup()
            await delete_topology(broker, topo)
    report = check_oracle(set(produced), executions, effects)
    warm = [p for p in curve if p["t"] >= 20] or curve
    half = [p for p in warm if p["t"] >= warm[0]["t"] + (warm[-1]["t"] - warm[0]["t"]) / 2]
    slopes = {
        key: round(_slope([(p["t"], p[key]) for p in half]), 1)
        for key in ("rss_kib", "fds", "worker_rss_kib", "worker_fds")
    }
    print(f"\n[soak {anyio_backend}] {SOAK_SECONDS:.0f}s tasks={len(produced)} kills={kills} "
          f"hub_restarts={hub_restarts} pubsub_kills={pubsub_kills} "
          f"followers={len(followed)} slopes_per_min={slopes}")  # fmt: skip
    for point in curve:
        print(f"[soak {anyio_backend}] {point}")
    assert kills >= 2, report
    assert hub_restarts >= 2
    assert pubsub_kills >= 3
    assert report["lost_count"] == 0, report
    assert report["duplicated_effects"] == {}, report
    assert report["unexpected"] == [], report
    assert report["ok"] == len(produced), report
    assert depth == 0
    assert all(followed.values())
    assert codes == [0] * 3
    # Flat: open fds end where they were after warm-up (RSS is printed, not asserted:
    # the allocator's high-water mark on a shared box is no leak signal).
    assert warm[-1]["fds"] <= warm[0]["fds"] + FD_SLACK, curve
    assert warm[-1]["worker_fds"] <= warm[0]["worker_fds"] + FD_SLACK, curve
