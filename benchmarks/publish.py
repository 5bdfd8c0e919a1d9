"""What ``publish_task(if_exists=...)`` costs: one store script per task before the publish.

N tasks with new ids are published to the real RabbitMQ (and claimed in the
real Redis), at concurrency 1 and 16, three ways in the same run:

* ``run, no store`` (the reference): ``publish_task`` as the original did;
* ``run + TaskIds``: the claim is written (no refusal);
* ``error + TaskIds``: the claim decides (every id is new, so all publish).

Prints tasks/s and the ratio to the reference within a round (``--repeat``
interleaved rounds, medians), per backend.

``python -m benchmarks publish [--n 2000] [--repeat 3] [--backend asyncio|trio]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from typing import Any

import anyio

CONCURRENCY = (1, 16)
CASES = ("run, no store", "run + TaskIds", "error + TaskIds")


def _urls() -> tuple[str, str]:
    amqp, redis = os.environ.get("RELAYNA_TEST_AMQP_URL"), os.environ.get("RELAYNA_TEST_REDIS_URL")
    if amqp and redis:
        return amqp, redis
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from services import Services

    svc = Services.start()
    os.environ.update(svc.env())
    return svc.amqp_url, svc.redis_url


async def _round(amqp: str, redis: str, n: int, concurrency: int, case: str) -> float:
    from relayna.rabbitmq import TaskIds, open_relayna_client
    from relayna.topology import SharedTasksSharedStatusTopology
    from relayna.transport import open_broker, open_store

    tag = uuid.uuid4().hex[:8]
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"bench.pub.{tag}",
        tasks_queue=f"bench.pub.{tag}",
        tasks_routing_key="task",
        status_exchange=f"bench.pubs.{tag}",
        status_queue=f"bench.pubs.{tag}",
        status_use_streams=False,
    )
    async with open_broker(amqp) as broker, open_store(redis) as store:
        ids = (
            None
            if case == "run, no store"
            else TaskIds(store, prefix=f"bench-{tag}", ttl_seconds=60)
        )
        mode: Any = "error" if case.startswith("error") else "run"
        try:
            async with open_relayna_client(topology, broker, task_ids=ids) as client:
                limiter = anyio.Semaphore(concurrency)

                async def one(i: int) -> None:
                    async with limiter:
                        await client.publish_task({"task_id": f"t{i}"}, if_exists=mode)

                started = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for i in range(n):
                        tg.start_soon(one, i)
                elapsed = time.perf_counter() - started
        finally:
            with anyio.CancelScope(shield=True):
                await broker.delete_queue(topology.tasks_queue)
                await broker.delete_queue(topology.status_queue)
    return n / elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks publish")
    parser.add_argument("--n", type=int, default=2000, help="tasks per case and round")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default=None)
    args = parser.parse_args(argv)
    amqp, redis = _urls()
    backends = [args.backend] if args.backend else ["asyncio", "trio"]
    print(
        f"publish_task with confirms, {args.n} new task ids per case; real RabbitMQ + Redis; "
        f"median of {args.repeat} interleaved rounds (ratios within a round)"
    )
    print(f"{'backend':<8} {'conc.':>5} {'case':<16} {'tasks/s':>9} {'ratio':>6}")
    for backend in backends:
        for concurrency in CONCURRENCY:
            rates: dict[str, list[float]] = {case: [] for case in CASES}
            for r in range(args.repeat):
                order = CASES if r % 2 == 0 else tuple(reversed(CASES))
                for case in order:
                    rate = anyio.run(
                        _round, amqp, redis, args.n, concurrency, case, backend=backend
                    )
                    rates[case].append(rate)
            ref = rates[CASES[0]]
            for case in CASES:
                ratio = statistics.median(a / b for a, b in zip(rates[case], ref, strict=True))
                print(
                    f"{backend:<8} {concurrency:>5} {case:<16} "
                    f"{statistics.median(rates[case]):>9.0f} {ratio:>6.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
