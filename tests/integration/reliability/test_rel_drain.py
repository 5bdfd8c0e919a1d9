"""D10/T12: ``relayna worker`` (main_worker) with 100 in-flight 1 s tasks, SIGTERM, 30 s drain.

Prefetch 100, 200 tasks published: when 100 handlers run, SIGTERM. Pass: no
handler starts after the signal (+100 ms for a delivery already being
dispatched), every started task finishes and is acked (queue depth = 200 -
started, nothing unacked), exit code 0 well within the drain deadline.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import anyio
import pytest
from _harness import MAIN_WORKER, Worker, delete_topology, open_ledger, wait_for, worker_env
from _worker_app import ledger_prefix, make_topology

from relayna.rabbitmq import open_relayna_client
from relayna.transport import open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

IN_FLIGHT = 100
PUBLISHED = 200
TASK_SECONDS = 1.0
DRAIN = 30.0


async def test_sigterm_drains_100_in_flight_tasks(
    amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    topo = make_topology(unique)
    env = worker_env(unique=unique, amqp_url=amqp_url, redis_url=redis_url, backend=anyio_backend)
    argv = [
        sys.executable,
        "-c",
        MAIN_WORKER,
        "_worker_app:drain_handler",
        "--topology",
        "_worker_app:drain_topology",
        "--broker-url",
        amqp_url,
        "--prefetch",
        str(IN_FLIGHT),
        "--backend",
        anyio_backend,
        "--drain-timeout",
        str(DRAIN),
        "--log-level",
        "WARNING",
    ]
    prefix = ledger_prefix(unique)
    worker: Worker | None = None
    async with open_broker(amqp_url) as broker, open_ledger(redis_url, prefix) as ledger:
        try:
            with anyio.fail_after(90):
                async with open_relayna_client(topo, broker) as client:
                    worker = Worker(argv, env)
                    await worker.wait_ready("relayna worker ready")
                    await client.publish_tasks(
                        [
                            {"task_id": f"d{i}", "payload": {"sleep": TASK_SECONDS}}
                            for i in range(PUBLISHED)
                        ],
                        concurrency=64,
                    )

                    async def in_flight() -> bool:
                        return await ledger.store.llen(f"{prefix}:starts") >= IN_FLIGHT

                    await wait_for(in_flight, 30, "100 running handlers", interval=0.01)
                    worker.signal(signal.SIGTERM)
                    signalled = time.time()
                    code = await worker.wait_exit()
                    exited = time.time()
                    info = await broker.inspect_queue(topo.tasks_queue)
            starts = [json.loads(r) for r in await ledger.store.lrange(f"{prefix}:starts", 0, -1)]
            ends = [json.loads(r) for r in await ledger.store.lrange(f"{prefix}:ends", 0, -1)]
            log = worker.text()
        finally:
            if worker is not None:
                worker.cleanup()
            await delete_topology(broker, topo)

    started_ids = {s["t"] for s in starts}
    running_at_signal = sum(1 for s in starts if s["ts"] <= signalled) - sum(
        1 for e in ends if e["ts"] <= signalled
    )
    late = [s for s in starts if s["ts"] > signalled + 0.1]
    report = {
        "started": len(starts),
        "running_at_signal": running_at_signal,
        "late_starts": len(late),
        "finished": len(ends),
        "left_in_queue": info.message_count,
        "drain_seconds": round(exited - signalled, 2),
        "exit_code": code,
    }
    print(f"\n[reliability drain {anyio_backend}] {report}")
    assert code == 0, log[-2000:]
    assert running_at_signal >= IN_FLIGHT - 5, report  # ~100 in flight when signalled
    assert late == [], report
    assert {e["t"] for e in ends} == started_ids, report
    assert len(ends) == len(starts), report
    assert info.message_count == PUBLISHED - len(started_ids), report  # all started acked
    assert info.consumer_count == 0
    assert exited - signalled < DRAIN, report
