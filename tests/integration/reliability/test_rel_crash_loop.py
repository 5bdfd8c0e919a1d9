"""D9/T11 (broker half): a handler that kills its process on a marked id, real RabbitMQ.

Quorum tasks queue with ``x-delivery-limit=3`` and a DLX; the test restarts
the worker process every time it dies. The marked message ends in the
DLX-bound queue after at most limit + 1 = 4 deliveries (no infinite crash
loop); every other task completes exactly once at the effect level.
"""

from __future__ import annotations

import time

import anyio
import pytest
from _harness import (
    Worker,
    check_oracle,
    delete_topology,
    drain_queue,
    open_ledger,
    start_worker,
    stop_workers,
    worker_env,
)
from _worker_app import ledger_prefix, make_topology

from relayna.rabbitmq import open_relayna_client
from relayna.transport import BindingSpec, QueueSpec, open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

DELIVERY_LIMIT = 3
N_OK = 30
CRASH_ID = "crash-me"


async def test_crash_loop_ends_in_the_dlx_at_the_quorum_delivery_limit(
    amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    topo = make_topology(unique, quorum=True, delivery_limit=DELIVERY_LIMIT)
    assert topo.dead_letter_exchange is not None
    dlx_queue = f"rel-dlx-{unique}"
    env = worker_env(
        unique=unique,
        amqp_url=amqp_url,
        redis_url=redis_url,
        backend=anyio_backend,
        REL_PREFETCH=1,
        REL_QUORUM=1,
        REL_DELIVERY_LIMIT=DELIVERY_LIMIT,
    )
    ok_ids = [f"ok{i}" for i in range(N_OK)]
    tasks = [{"task_id": t, "payload": {}} for t in ok_ids]
    tasks.insert(5, {"task_id": CRASH_ID, "payload": {"mode": "crash"}})
    workers: list[Worker] = []
    exit_codes: list[int] = []
    started = time.monotonic()
    async with (
        open_broker(amqp_url) as broker,
        open_ledger(redis_url, ledger_prefix(unique)) as ledger,
    ):
        try:
            with anyio.fail_after(100):
                async with open_relayna_client(topo, broker) as client:
                    await broker.declare_queue(QueueSpec(dlx_queue, durable=True))
                    await broker.bind_queue(BindingSpec(dlx_queue, topo.dead_letter_exchange, ""))
                    workers.append(start_worker(env))
                    await workers[-1].wait_ready()
                    await client.publish_tasks(tasks)
                    while True:
                        done = (
                            await ledger.effect_count() >= N_OK
                            and (await broker.inspect_queue(dlx_queue)).message_count >= 1
                        )
                        if done:
                            break
                        if workers[-1].proc.poll() is not None:  # crashed: restart it
                            exit_codes.append(workers[-1].proc.returncode)
                            workers.append(start_worker(env))
                        await anyio.sleep(0.1)
                    [dead] = await drain_queue(broker, dlx_queue, 1, limit=10)
                    [code] = await stop_workers([workers[-1]])
                    depth = (await broker.inspect_queue(topo.tasks_queue)).message_count
            executions = await ledger.executions()
            effects = await ledger.effects()
        finally:
            for w in workers:
                w.cleanup()
            await delete_topology(broker, topo, dlx_queue)
    elapsed = time.monotonic() - started

    crash_runs = [e for e in executions if e["t"] == CRASH_ID]
    report = check_oracle(set(ok_ids), [e for e in executions if e["t"] != CRASH_ID], effects)
    x_death = dead.properties.headers.get("x-death") or []
    death_reasons = [str(dict(d).get("reason")) for d in x_death]
    report.update(
        elapsed=round(elapsed, 1),
        crash_deliveries=len(crash_runs),
        crash_redelivered=[e["r"] for e in crash_runs],
        exit_codes=exit_codes,
        x_death_reasons=death_reasons,
    )
    print(f"\n[reliability crash-loop {anyio_backend}] {report}")
    assert 1 <= len(crash_runs) <= DELIVERY_LIMIT + 1, report
    assert exit_codes, report
    assert all(c == 137 for c in exit_codes), report
    assert len(exit_codes) == len(crash_runs), report
    assert b"crash-me" in dead.body
    assert "delivery_limit" in death_reasons, report
    assert report["lost_count"] == 0, report
    assert report["duplicated_effects"] == {}, report
    assert report["ok"] == N_OK, report
    assert report["duplicate_without_redelivered"] == [], report
    assert CRASH_ID not in effects
    assert depth == 0
    assert code == 0
