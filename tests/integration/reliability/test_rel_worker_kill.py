"""D1/T1: 3 worker processes, one SIGKILLed every ~2 s and restarted, on the real RabbitMQ.

N = 5,000 tasks published over ~14 s, so the run is faulted several times
however fast the workers are (~21 s per backend here). Oracle (RELIABILITY C.3) on the never-faulted ledger
(Redis db 5): 0 lost, 0 duplicate effects, 0 unexpected; every re-execution
is a redelivery (a task published once reaches a consumer with
redelivered=false at most once); no handler call after the idempotency key was
completed; every task has the terminal ``completed`` status in the status
store (written by the StatusHub from the status queue).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from _harness import (
    Worker,
    check_oracle,
    delete_topology,
    open_ledger,
    start_worker,
    stop_workers,
    wait_for,
    worker_env,
)
from _worker_app import ledger_prefix, make_topology

from relayna.rabbitmq import open_relayna_client
from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
from relayna.transport import open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

N_TASKS = 5000
N_WORKERS = 3
KILL_EVERY = 2.0
PUBLISH_SECONDS = 14.0
PUBLISH_CHUNKS = 20
TASK_SLEEP = 0.02
PREFETCH = 8


@pytest.mark.timeout(170)
async def test_sigkill_workers_lose_nothing_and_never_duplicate_effects(
    amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    topo = make_topology(unique)
    env = worker_env(
        unique=unique,
        amqp_url=amqp_url,
        redis_url=redis_url,
        backend=anyio_backend,
        REL_PREFETCH=PREFETCH,
    )
    produced = {f"k{i}" for i in range(N_TASKS)}
    workers: list[Worker] = []
    retired: list[Worker] = []
    kills = 0
    started = time.monotonic()
    async with (
        open_broker(amqp_url) as broker,
        open_store(redis_url) as store,
        open_ledger(redis_url, ledger_prefix(unique)) as ledger,
    ):
        status = StatusStore(store, StatusStoreConfig(prefix=f"rel-{unique}", ttl_seconds=900))
        try:
            with anyio.fail_after(140):
                async with (
                    open_relayna_client(topo, broker) as client,
                    anyio.create_task_group() as tg,
                ):
                    hub = StatusHub(
                        broker,
                        status,
                        StatusHubConfig(
                            queue=topo.status_queue,
                            offset=None,
                            prefetch=200,
                            requeue_on_store_failure=True,
                        ),
                    )
                    await tg.start(hub.run)
                    workers.extend(start_worker(env) for _ in range(N_WORKERS))
                    for w in workers:
                        await w.wait_ready()

                    async def killer() -> None:
                        # Every ~2 s SIGKILL the oldest worker that has been consuming for
                        # >= 1 s (it holds deliveries) and start a replacement. Worker start-up
                        # takes seconds on a loaded 2-core machine: killing fresh workers
                        # would only stall the run.
                        nonlocal kills
                        while True:
                            await anyio.sleep(KILL_EVERY)
                            while not (ready := [w for w in workers if w.ready_for() >= 1.0]):  # noqa: ASYNC110
                                await anyio.sleep(0.1)
                            victim = ready[0]
                            workers.remove(victim)
                            victim.kill()
                            kills += 1
                            retired.append(victim)
                            workers.append(start_worker(env))

                    killer_scope = anyio.CancelScope()

                    async def run_killer() -> None:
                        with killer_scope:
                            await killer()

                    tg.start_soon(run_killer)
                    # Paced over PUBLISH_SECONDS so the run lasts long enough to be
                    # faulted several times however fast the workers are.
                    ordered = sorted(produced)
                    chunk = len(ordered) // PUBLISH_CHUNKS
                    for start in range(0, len(ordered), chunk):
                        await client.publish_tasks(
                            [
                                {"task_id": t, "payload": {"sleep": TASK_SLEEP}}
                                for t in ordered[start : start + chunk]
                            ],
                            concurrency=64,
                        )
                        await anyio.sleep(PUBLISH_SECONDS / PUBLISH_CHUNKS)

                    async def all_effects() -> bool:
                        return await ledger.effect_count() >= N_TASKS

                    async def describe() -> str:
                        info = await broker.inspect_queue(topo.tasks_queue)
                        logs = "\n".join(
                            f"--- {w.pid} rc={w.proc.poll()}\n{w.text()[-1500:]}" for w in workers
                        )
                        return (
                            f"effects={await ledger.effect_count()} depth={info.message_count} "
                            f"consumers={info.consumer_count} kills={kills}\n{logs}"
                        )

                    await wait_for(all_effects, 110, "all effects", interval=0.2, describe=describe)
                    killer_scope.cancel()
                    for w in workers:
                        await w.wait_ready()

                    async def all_terminal() -> bool:
                        for t in produced:
                            history = await status.history(t)
                            if not any(e.get("status") == "completed" for e in history):
                                return False
                        return True

                    await wait_for(all_terminal, 30, "terminal statuses", interval=0.5)
                    codes = await stop_workers(workers)
                    tg.cancel_scope.cancel()
            elapsed = time.monotonic() - started
            executions = await ledger.executions()
            effects = await ledger.effects()
            dup_effects = await ledger.dup_effects()
            depth = (await broker.inspect_queue(topo.tasks_queue)).message_count
        finally:
            for w in workers + retired:
                w.cleanup()
            await delete_topology(broker, topo)

    report: dict[str, Any] = check_oracle(produced, executions, effects)
    report.update(
        kills=kills, elapsed=round(elapsed, 1), suppressed_effect_writes=sum(dup_effects.values())
    )
    print(f"\n[reliability kill {anyio_backend}] {report}")
    assert kills >= 4, report  # the run must actually have been faulted
    assert report["redelivered_executions"] > 0, report
    assert report["lost_count"] == 0, report
    assert report["duplicated_effects"] == {}, report
    assert report["unexpected"] == [], report
    assert report["ok"] == N_TASKS, report
    assert report["duplicate_without_redelivered"] == [], report
    assert report["ran_after_completed"] == [], report
    assert depth == 0
    assert codes == [0] * N_WORKERS
