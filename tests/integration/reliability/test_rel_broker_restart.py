"""D2/T3 (consumer side): restart RabbitMQ while 2 worker processes consume.

A PRIVATE RabbitMQ + Redis (``Services.start()``, module scope) is restarted,
never the shared session broker. Durable quorum tasks queue, persistent
messages. 400 tasks are published, the node is restarted (``rabbitmqctl
stop`` + start on the same data) after 100 effects, then 200 more tasks are
published. Pass: both workers consume again within 10 s of the node being
ready, 0 lost, 0 duplicate effects, no handler call after a completed key,
every worker exits 0 on SIGTERM.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
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
from relayna.transport import open_broker

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from services import Services  # type: ignore[import-not-found]

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

N_BEFORE = 400
N_AFTER = 200
N_WORKERS = 2
RECONNECT_LIMIT = 10.0


@pytest.fixture(scope="module")
def private_services() -> Iterator[Services]:
    svc = Services.start()  # its temporary directory is removed by stop()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.mark.timeout(240)
async def test_workers_survive_a_broker_restart_without_loss(
    private_services: Services, unique: str, anyio_backend: str
) -> None:
    svc = private_services
    amqp_url, redis_url = svc.amqp_url, svc.redis_url
    topo = make_topology(unique, quorum=True)
    env = worker_env(
        unique=unique,
        amqp_url=amqp_url,
        redis_url=redis_url,
        backend=anyio_backend,
        REL_PREFETCH=8,
        REL_QUORUM=1,
    )
    before = [f"a{i}" for i in range(N_BEFORE)]
    after = [f"b{i}" for i in range(N_AFTER)]
    workers: list[Worker] = []
    report: dict[str, Any] = {}
    started = time.monotonic()
    async with open_ledger(redis_url, ledger_prefix(unique)) as ledger:
        try:
            with anyio.fail_after(200):
                async with (
                    open_broker(amqp_url) as broker,
                    open_relayna_client(topo, broker) as client,
                ):
                    workers.extend(start_worker(env) for _ in range(N_WORKERS))
                    for w in workers:
                        await w.wait_ready()
                    await client.publish_tasks(
                        [{"task_id": t, "payload": {"sleep": 0.02}} for t in before], concurrency=64
                    )

                    async def some_done() -> bool:
                        return await ledger.effect_count() >= 100

                    await wait_for(some_done, 60, "100 effects")
                # the test's own connection is closed before the node goes away
                effects_at_stop = await ledger.effect_count()
                t0 = time.monotonic()
                ports_before = (svc.amqp_port, svc.dist_port)
                await anyio.to_thread.run_sync(svc.restart_rabbitmq)
                # Clients keep the AMQP port; the distribution port is picked anew, so a
                # port taken while the node was down cannot stop the restart.
                assert svc.amqp_port == ports_before[0]
                assert svc.dist_port != ports_before[1]
                node_ready = time.monotonic()
                report["restart_seconds"] = round(node_ready - t0, 1)
                report["effects_at_stop"] = effects_at_stop
                async with open_broker(amqp_url) as broker:

                    async def consuming() -> bool:
                        info = await broker.inspect_queue(topo.tasks_queue)
                        return info.consumer_count >= N_WORKERS

                    reconnect = await wait_for(consuming, 60, "workers to reconnect", interval=0.05)
                    report["reconnect_seconds"] = round(reconnect, 2)
                    async with open_relayna_client(topo, broker) as client:
                        await client.publish_tasks(
                            [{"task_id": t, "payload": {"sleep": 0.02}} for t in after],
                            concurrency=64,
                        )

                        async def all_done() -> bool:
                            return await ledger.effect_count() >= N_BEFORE + N_AFTER

                        await wait_for(all_done, 60, "all effects", interval=0.2)
                    codes = await stop_workers(workers)
                    depth = (await broker.inspect_queue(topo.tasks_queue)).message_count
                    await delete_topology(broker, topo)
            executions = await ledger.executions()
            effects = await ledger.effects()
            stats = [w.stats() for w in workers]
        finally:
            for w in workers:
                w.cleanup()

    report.update(check_oracle(set(before) | set(after), executions, effects))
    report.update(
        elapsed=round(time.monotonic() - started, 1),
        worker_reconnects=[s.get("reconnects") for s in stats],
        duplicates_suppressed=[s.get("duplicates_suppressed") for s in stats],
    )
    print(f"\n[reliability broker-restart {anyio_backend}] {report}")
    assert report["reconnect_seconds"] <= RECONNECT_LIMIT, report
    assert report["lost_count"] == 0, report
    assert report["duplicated_effects"] == {}, report
    assert report["unexpected"] == [], report
    assert report["ok"] == N_BEFORE + N_AFTER, report
    assert report["ran_after_completed"] == [], report
    assert all(s.get("reconnects", 0) >= 1 for s in stats), report
    assert depth == 0
    assert codes == [0] * N_WORKERS, report
