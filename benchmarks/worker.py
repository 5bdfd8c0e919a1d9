"""Worker throughput: relayna TaskConsumer vs a raw aiormq consume+publish+ack loop.

N tasks are pre-published (not timed). The timed part is a worker that, for
every task, publishes one status (with confirm) and acks: relayna's
``TaskConsumer`` with a no-op handler calling ``ctx.publish_status`` at
prefetch 1/16/32/64 under asyncio and trio, next to the same loop written
directly on aiormq (asyncio) as the reference. Prints tasks/s, the ratio to
the reference at the same prefetch, and the worker process's CPU time per
task during the timed part (``cpu µs``); ``+µs`` is the CPU cost per task
above the reference, i.e. relayna's per-message overhead; ``publish µs`` is
the median time one status publish waits, call to confirm, inside the
handler. At prefetch 1 only one task is in flight, so a task takes at least
that wait plus the ack and the next delivery's trip: the broker's confirm of
a persistent message bounds both implementations there, whatever the client
costs.

Each prefetch runs ``--repeat`` interleaved rounds (aiormq, asyncio, trio,
then reversed); the medians are printed, ratios are taken within a round.

Usage: ``python -m benchmarks worker [--n 5000] [--prefetch 1,16,32,64] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from typing import Any

import anyio

PREFETCHES = (1, 16, 32, 64)


def _url() -> str:
    url = os.environ.get("RELAYNA_TEST_AMQP_URL")
    if url:
        return url
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from services import Services

    svc = Services.start()
    os.environ.update(svc.env())
    return svc.amqp_url


def _topology(tag: str) -> Any:
    from relayna.topology import SharedTasksSharedStatusTopology

    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"bench-tasks-{tag}",
        tasks_queue=f"bench-tasks-{tag}",
        tasks_routing_key="task",
        status_exchange=f"bench-status-{tag}",
        status_queue=f"bench-status-{tag}",
        status_use_streams=False,
    )


async def _fill(url: str, topology: Any, n: int) -> None:
    from relayna.rabbitmq import open_relayna_client

    async with open_relayna_client(topology, url) as client:
        await client.publish_tasks(
            ({"task_id": f"t{i}", "payload": {"i": i}} for i in range(n)), concurrency=256
        )


async def _cleanup(url: str, topology: Any) -> None:
    from relayna.transport import open_broker

    async with open_broker(url) as broker:
        for q in (topology.tasks_queue, topology.tasks_queue + ".dlq", topology.status_queue):
            await broker.delete_queue(q)
        await broker.delete_exchange(topology.tasks_exchange)
        await broker.delete_exchange(topology.status_exchange)


Result = tuple[float, float, float]  # (tasks/s, worker CPU µs per task, publish µs)


async def _relayna_worker(url: str, n: int, prefetch: int) -> Result:
    from relayna.consumer import TaskConsumer, TaskContext
    from relayna.contracts import TaskEnvelope

    topology = _topology(uuid.uuid4().hex[:8])
    await _fill(url, topology, n)
    done = anyio.Event()
    count = 0
    waits: list[float] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        nonlocal count
        started = time.perf_counter()
        await ctx.publish_status(status="done")
        waits.append(time.perf_counter() - started)
        count += 1
        if count == n:
            done.set()

    consumer = TaskConsumer(topology=topology, broker=url, handler=handler, prefetch=prefetch)
    async with anyio.create_task_group() as tg:
        t0, c0 = time.perf_counter(), time.process_time()
        await tg.start(consumer.run)
        await done.wait()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        tg.cancel_scope.cancel()
    await _cleanup(url, topology)
    return n / elapsed, cpu / n * 1e6, _median(waits) * 1e6


async def _aiormq_worker(url: str, n: int, prefetch: int) -> Result:
    import aiormq
    import aiormq.abc

    topology = _topology(uuid.uuid4().hex[:8])
    await _fill(url, topology, n)
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.basic_qos(prefetch_count=prefetch)
        done = asyncio.Event()
        count = 0
        waits: list[float] = []
        props = aiormq.spec.Basic.Properties(content_type="application/json", delivery_mode=2)

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal count
            body = b'{"task_id":"x","status":"done"}'
            started = time.perf_counter()
            await channel.basic_publish(
                body,
                exchange=topology.status_exchange,
                routing_key="x",
                properties=props,
                mandatory=True,
            )
            waits.append(time.perf_counter() - started)
            await channel.basic_ack(message.delivery.delivery_tag)
            count += 1
            if count == n:
                done.set()

        t0, c0 = time.perf_counter(), time.process_time()
        await channel.basic_consume(topology.tasks_queue, on_message, no_ack=False)
        await done.wait()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await connection.close()
    await _cleanup(url, topology)
    return n / elapsed, cpu / n * 1e6, _median(waits) * 1e6


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _run(kind: str, url: str, n: int, prefetch: int) -> Result:
    if kind == "aiormq":
        return asyncio.run(_aiormq_worker(url, n, prefetch))
    return anyio.run(_relayna_worker, url, n, prefetch, backend=kind)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks worker")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--prefetch", default=",".join(map(str, PREFETCHES)))
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved rounds per prefetch; medians are printed"
    )
    args = parser.parse_args(argv)
    url = _url()
    prefetches = [int(p) for p in args.prefetch.split(",")]
    kinds = ("aiormq", "asyncio", "trio")
    print(
        f"worker benchmark: {args.n} tasks, one confirmed status + ack each, "
        f"median of {args.repeat} interleaved rounds (ratios taken within a round)"
    )
    print(
        f"{'prefetch':>8} {'implementation':<22} {'tasks/s':>10} {'ratio':>7} {'cpu µs':>8}"
        f" {'+µs':>6} {'publish µs':>11}"
    )
    for prefetch in prefetches:
        rounds: dict[str, list[Result]] = {kind: [] for kind in kinds}
        for r in range(args.repeat):
            order = kinds if r % 2 == 0 else (kinds[0], *reversed(kinds[1:]))
            for kind in order:
                rounds[kind].append(_run(kind, url, args.n, prefetch))
        ref = rounds["aiormq"]
        ref_cpu = _median([r[1] for r in ref])
        for kind in kinds:
            rate = _median([r[0] for r in rounds[kind]])
            ratio = _median([a[0] / b[0] for a, b in zip(rounds[kind], ref, strict=True)])
            cpu = _median([r[1] for r in rounds[kind]])
            wait = _median([r[2] for r in rounds[kind]])
            name = "aiormq raw (asyncio)" if kind == "aiormq" else "relayna " + kind
            extra = f" {'':>6}" if kind == "aiormq" else f" {cpu - ref_cpu:>+6.0f}"
            print(
                f"{prefetch:>8} {name:<22} {rate:>10.0f} {ratio:>7.2f} {cpu:>8.0f}{extra}"
                f" {wait:>11.0f}",
                flush=True,
            )
        trio_vs = _median(
            [t[0] / a[0] for t, a in zip(rounds["trio"], rounds["asyncio"], strict=True)]
        )
        print(f"{prefetch:>8} {'trio / asyncio':<22} {'':>10} {trio_vs:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
