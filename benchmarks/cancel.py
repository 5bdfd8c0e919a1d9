"""Cancellation: cancel() → handler scope cancelled latency, and the cost of the check.

**Latency.** A worker (prefetch 32) is kept busy by a producer publishing
short tasks (each publishes one confirmed status) the whole time. One at a
time, a long task is published; once its handler runs, ``client.cancel()``
is called and the time until the handler sees its cancellation is measured
(``time.perf_counter`` in the same process: the cancel travels through the
store, the broker's control exchange and the worker's scope). p50/p99 over
``--cancels`` cancels, per backend, on RabbitMQ + Redis and on memory.

**Cost of the check.** Worker throughput (tasks/s; each task publishes one
confirmed status and is acked) with cancellation off (``cancels=None``) and
on (``CancelStore`` in Redis, no cancel pending), with and without
idempotency keys, in interleaved rounds; the ratio on/off is the cost. With
cancellation on, every task runs the store's ``start`` step (merged with the
idempotency check when there are keys) and its ``finish`` step. Also printed:
the worker process's CPU time per task (``cpu µs``, during the timed part),
which varies much less than tasks/s on a shared machine; ``+µs`` is what
cancellation adds per task. A round of the default 10,000 tasks takes a few
seconds (1,000 is ~0.4 s: too short for a stable ratio).

Usage: ``python -m benchmarks cancel [--cancels 1000] [--n 10000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel

from benchmarks import worker as worker_bench

BACKENDS = ("asyncio", "trio")


def _urls() -> tuple[str, str]:
    amqp, redis = os.environ.get("RELAYNA_TEST_AMQP_URL"), os.environ.get("RELAYNA_TEST_REDIS_URL")
    if amqp and redis:
        return amqp, redis
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from services import Services

    svc = Services.start()
    os.environ.update(svc.env())
    return svc.amqp_url, svc.redis_url


def _topology(tag: str) -> Any:
    from relayna.topology import SharedTasksSharedStatusTopology

    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"bench-cx-{tag}",
        tasks_queue=f"bench-cx-{tag}",
        tasks_routing_key="task",
        status_exchange=f"bench-cx-status-{tag}",
        status_queue=f"bench-cx-status-{tag}",
        status_use_streams=False,
    )


async def _cleanup(broker: Any, topology: Any) -> None:
    for queue in (topology.tasks_queue, topology.tasks_queue + ".dlq", topology.status_queue):
        await broker.delete_queue(queue)
    await broker.delete_exchange(topology.tasks_exchange)
    await broker.delete_exchange(topology.status_exchange)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _latency(broker_url: str, store_url: str, cancels_n: int) -> list[float]:
    from relayna.consumer import TaskConsumer, TaskContext
    from relayna.contracts import TaskEnvelope
    from relayna.rabbitmq import CancelStore, TaskIds, open_relayna_client
    from relayna.transport import open_broker, open_store

    tag = uuid.uuid4().hex[:8]
    topology = _topology(tag)
    started: dict[str, anyio.Event] = {}
    seen: dict[str, float] = {}

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        if not task.payload.get("long"):
            await ctx.publish_status(status="done")
            return
        started[task.task_id].set()
        try:
            await anyio.sleep_forever()
        finally:
            seen[task.task_id] = time.perf_counter()

    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        broker = await stack.enter_async_context(open_broker(broker_url))
        store = await stack.enter_async_context(open_store(store_url))
        cancels = CancelStore(store, prefix=f"bench-{tag}", control_exchange=f"bench-ctl-{tag}")
        client = await stack.enter_async_context(
            open_relayna_client(
                topology, broker, task_ids=TaskIds(store, prefix=cancels.prefix), cancels=cancels
            )
        )
        consumer = TaskConsumer(
            topology=topology, broker=broker, handler=handler, prefetch=32, cancels=cancels
        )
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)

            async def busy() -> None:  # short tasks all the time: a busy worker
                i = 0
                while True:
                    await client.publish_task({"task_id": f"s{i}-{tag}", "payload": {}})
                    i += 1

            tg.start_soon(busy)
            for i in range(cancels_n):
                task_id = f"l{i}-{tag}"
                started[task_id] = anyio.Event()
                await client.publish_task({"task_id": task_id, "payload": {"long": True}})
                await started[task_id].wait()
                t0 = time.perf_counter()
                await client.cancel(task_id, "bench")
                while task_id not in seen:
                    await anyio.lowlevel.checkpoint()
                latencies.append(seen[task_id] - t0)
            tg.cancel_scope.cancel()
        if broker_url.startswith("amqp"):
            await _cleanup(broker, topology)
    return latencies


async def _throughput(
    broker_url: str, store_url: str, n: int, *, cancel_on: bool, idempotent: bool
) -> tuple[float, float]:
    """Tasks/s and the worker's CPU seconds per task."""
    from relayna.consumer import Idempotency, TaskConsumer, TaskContext
    from relayna.contracts import TaskEnvelope
    from relayna.rabbitmq import CancelStore
    from relayna.transport import open_store

    tag = uuid.uuid4().hex[:8]
    topology = worker_bench._topology(tag)
    await worker_bench._fill(broker_url, topology, n)
    done = anyio.Event()
    count = 0

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        nonlocal count
        await ctx.publish_status(status="done")
        count += 1
        if count == n:
            done.set()

    async with open_store(store_url) as store:
        consumer = TaskConsumer(
            topology=topology,
            broker=broker_url,
            handler=handler,
            prefetch=32,
            cancels=CancelStore(store, prefix=f"bench-{tag}") if cancel_on else None,
            idempotency=Idempotency(store, prefix=f"bench-{tag}:idem") if idempotent else None,
        )
        async with anyio.create_task_group() as tg:
            t0, c0 = time.perf_counter(), time.process_time()
            await tg.start(consumer.run)
            await done.wait()
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            tg.cancel_scope.cancel()
    await worker_bench._cleanup(broker_url, topology)
    return n / elapsed, cpu / n


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cancel")
    parser.add_argument("--cancels", type=int, default=1000, help="cancels per latency run")
    parser.add_argument("--n", type=int, default=10000, help="tasks per throughput run")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved throughput rounds")
    parser.add_argument(
        "--part", choices=["all", "latency", "throughput"], default="all", help="what to run"
    )
    args = parser.parse_args(argv)
    amqp, redis = _urls()
    if args.part != "throughput":
        _print_latency(amqp, redis, args.cancels)
    if args.part != "latency":
        _print_throughput(amqp, redis, args.n, args.repeat)
    return 0


def _print_latency(amqp: str, redis: str, cancels: int) -> None:
    print(f"cancel() -> handler scope cancelled, {cancels} cancels, busy worker (prefetch 32)")
    print(f"{'transports':<16} {'backend':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, urls in (("rabbitmq+redis", (amqp, redis)), ("memory", ("memory://", "memory://"))):
        for backend in BACKENDS:
            lat = anyio.run(_latency, *urls, cancels, backend=backend)
            print(
                f"{name:<16} {backend:<8} {_percentile(lat, 0.5) * 1e3:>8.2f} "
                f"{_percentile(lat, 0.99) * 1e3:>8.2f} {max(lat) * 1e3:>8.2f}",
                flush=True,
            )


def _print_throughput(amqp: str, redis: str, n: int, repeat: int) -> None:
    print(
        f"\nworker throughput, {n} tasks (one confirmed status + ack each), prefetch 32, "
        f"RabbitMQ + Redis, median of {repeat} interleaved rounds; no cancel pending"
    )
    print(
        f"{'backend':<8} {'idempotency':<12} {'off t/s':>9} {'on t/s':>9} {'on/off':>7} "
        f"{'off cpu µs':>10} {'on cpu µs':>9} {'+µs':>5}"
    )
    for backend in BACKENDS:
        for idempotent in (False, True):
            off: list[tuple[float, float]] = []
            on: list[tuple[float, float]] = []
            for r in range(repeat):
                for cancel_on in (False, True) if r % 2 == 0 else (True, False):
                    result = anyio.run(
                        partial(
                            _throughput, amqp, redis, n, cancel_on=cancel_on,
                            idempotent=idempotent,
                        ),
                        backend=backend,
                    )  # fmt: skip
                    (on if cancel_on else off).append(result)
            med = worker_bench._median
            ratio = med([a[0] / b[0] for a, b in zip(on, off, strict=True)])
            off_cpu, on_cpu = med([c for _, c in off]) * 1e6, med([c for _, c in on]) * 1e6
            print(
                f"{backend:<8} {'yes' if idempotent else 'no':<12} {med([r for r, _ in off]):>9.0f} "
                f"{med([r for r, _ in on]):>9.0f} {ratio:>7.2f} {off_cpu:>10.0f} {on_cpu:>9.0f} "
                f"{on_cpu - off_cpu:>5.0f}",
                flush=True,
            )
