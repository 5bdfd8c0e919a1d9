"""D1/T1: 3 worker processes, one SIGKILLed and restarted every 500 tasks, on the real RabbitMQ.

N = 5,000 tasks (issue 5's kill test). The faults are tied to progress, not
to the clock: a worker is SIGKILLed each time another ``KILL_EVERY`` effects
are in the ledger (9 kills; every ~2 s on an idle 2-core machine), always
one that is consuming at that moment, so it dies holding deliveries. A
slow machine therefore sees the same run, only slower; a fast one cannot
finish before the faults. The time guards are hang guards: a phase fails
when it stops making progress for ``STALL`` seconds, never because the
machine is slow (the pytest timeout is the outer ceiling).

Oracle (RELIABILITY C.3) on the never-faulted ledger (Redis db 5): 0 lost,
0 duplicate effects, 0 unexpected; every re-execution is a redelivery (a
task published once reaches a consumer with redelivered=false at most once)
and there are at most prefetch of them per kill (T1); no handler call after
the idempotency key was completed; every task has the terminal
``completed`` status in the status store (written by the StatusHub from the
status queue).
"""

from __future__ import annotations

import json
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
    wait_progress,
    worker_env,
)
from _worker_app import ledger_prefix, make_topology

from relayna.rabbitmq import open_relayna_client
from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
from relayna.transport import open_broker, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

N_TASKS = 5000
N_WORKERS = 3
KILL_EVERY = 500  # effects between two kills
KILLS = N_TASKS // KILL_EVERY - 1  # the last kill while a tenth of the work is left
TASK_SLEEP = 0.02
PREFETCH = 8
STALL = 60.0  # seconds without progress that count as a hang


@pytest.mark.timeout(900)  # outer hang guard only; see STALL
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
    phases: dict[str, float] = {}
    started = time.monotonic()
    async with (
        open_broker(amqp_url) as broker,
        open_store(redis_url) as store,
        open_ledger(redis_url, ledger_prefix(unique)) as ledger,
    ):
        status = StatusStore(store, StatusStoreConfig(prefix=f"rel-{unique}", ttl_seconds=900))

        async def recent_pids() -> set[int]:
            """Workers that started an execution lately: they hold deliveries."""
            raw = await ledger.store.lrange(f"{ledger.prefix}:executions", -4 * PREFETCH, -1)
            return {json.loads(r)["pid"] for r in raw}

        async def describe() -> str:
            info = await broker.inspect_queue(topo.tasks_queue)
            logs = "\n".join(f"--- {w.pid} rc={w.proc.poll()}\n{w.text()[-1500:]}" for w in workers)
            return (
                f"effects={await ledger.effect_count()} depth={info.message_count} "
                f"consumers={info.consumer_count} kills={len(retired)} phases={phases}\n{logs}"
            )

        try:
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
                phases["workers_ready"] = time.monotonic() - started
                await client.publish_tasks(
                    [{"task_id": t, "payload": {"sleep": TASK_SLEEP}} for t in sorted(produced)],
                    concurrency=64,
                )
                phases["published"] = time.monotonic() - started

                for k in range(1, KILLS + 1):
                    await wait_progress(
                        ledger.effect_count,
                        k * KILL_EVERY,
                        f"kill {k}",
                        stall=STALL,
                        describe=describe,
                    )
                    # The victim is a worker that is consuming now (it started an
                    # execution lately, so it holds up to PREFETCH deliveries).
                    victim: Worker | None = None
                    while victim is None:
                        busy = await recent_pids()
                        victim = next((w for w in workers if w.ready and w.pid in busy), None)
                        if victim is None:
                            await anyio.sleep(0.05)
                    workers.remove(victim)
                    victim.kill()
                    retired.append(victim)
                    workers.append(start_worker(env))
                phases["killed"] = time.monotonic() - started

                await wait_progress(
                    ledger.effect_count, N_TASKS, "all effects", stall=STALL, describe=describe
                )
                phases["effects"] = time.monotonic() - started
                for w in workers:
                    await w.wait_ready()

                missing = set(produced)

                async def terminal_count() -> int:
                    for t in list(missing):
                        history = await status.history(t)
                        if any(e.get("status") == "completed" for e in history):
                            missing.discard(t)
                    return N_TASKS - len(missing)

                await wait_progress(
                    terminal_count,
                    N_TASKS,
                    "terminal statuses",
                    stall=STALL,
                    interval=0.5,
                    describe=describe,
                )
                phases["terminal"] = time.monotonic() - started
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
        kills=len(retired),
        elapsed=round(elapsed, 1),
        phases={k: round(v, 1) for k, v in phases.items()},
        suppressed_effect_writes=sum(dup_effects.values()),
    )
    print(f"\n[reliability kill {anyio_backend}] {report}")
    assert len(retired) == KILLS, report
    assert report["redelivered_executions"] > 0, report
    assert report["lost_count"] == 0, report
    assert report["duplicated_effects"] == {}, report
    assert report["unexpected"] == [], report
    assert report["ok"] == N_TASKS, report
    assert report["duplicate_without_redelivered"] == [], report
    # T1: a killed worker's held deliveries are all a kill can make run twice.
    assert report["duplicate_executions"] <= KILLS * PREFETCH, report
    assert report["ran_after_completed"] == [], report
    assert depth == 0
    assert codes == [0] * N_WORKERS
