"""End to end: tasks -> worker -> status -> hub -> Redis, relayna vs the original's design.

``python -m benchmarks e2e [--tasks 3000] [--rounds 3]``

The workload the original was deployed for: ``--tasks`` tasks wait in the task
queue; a worker (prefetch 32) takes each, runs a handler that publishes one
status event (``completed``) to the status exchange, and acks; the status hub
consumes the status **stream** and stores each event in Redis (dedupe marker,
history, pubsub). The clock runs from the worker and hub starting to the hub
storing the last event.

* ``relayna``: ``TaskConsumer`` with the **Redis observation sink and the
  service event feed, and Prometheus metrics on** (what the issue's target
  requires), publishing through ``ctx.publish_status``; ``StatusHub`` from the
  stream into the status store. Run on asyncio and on trio.
* ``original (rebuilt)``: the original's design rebuilt with its libraries (it
  ships through GitHub releases and cannot be installed here): an aio-pika
  consumer (prefetch 32, a task per delivery as in its 1.4.25 concurrent
  dispatch) validating the task with a pydantic model, building the status
  event with the original's ``event_id`` rule (sha256 of the stdlib canonical
  JSON) and publishing it with confirms, then acking; the hub of
  :mod:`benchmarks._original_path` (per-task lock, ``SET NX EX`` then one
  pipeline). asyncio only, as the original.

Each round is one fresh process per implementation (a Prometheus registry and
tracer provider cannot be unset), the order rotating between rounds; the
table shows medians and ranges in tasks/s. Target: relayna >= 2.5x the
original. RabbitMQ and Redis share the machine's cores with the worker: on a
2-core box read the ratios, not the rates.

Uses RELAYNA_TEST_AMQP_URL / RELAYNA_TEST_REDIS_URL if set, else starts both
with scripts/services.py.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from benchmarks._redis import amqp_and_redis_urls, drop_prefix
from benchmarks._rounds import rotated

ROOT = Path(__file__).resolve().parents[1]
PREFETCH = 32
KINDS = ("relayna/asyncio", "relayna/trio", "original/asyncio")
CHILD_TIMEOUT = 300.0  # one round is seconds; a lost event must end the run, not hang it


async def _relayna_round(amqp: str, redis: str, tasks: int) -> float:
    from relayna.consumer import TaskConsumer, TaskContext
    from relayna.contracts import TaskEnvelope
    from relayna.observability import (
        ObservationStore,
        ObservationStoreConfig,
        RelaynaMetrics,
        ServiceEventFeed,
        ServiceEventFeedConfig,
        make_observation_sink,
    )
    from relayna.rabbitmq import open_relayna_client
    from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
    from relayna.topology import SharedTasksSharedStatusTopology
    from relayna.transport import open_broker, open_store

    tag = uuid.uuid4().hex[:8]
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"be-{tag}",
        tasks_queue=f"be-{tag}",
        tasks_routing_key="task",
        status_exchange=f"bes-{tag}",
        status_queue=f"bes-{tag}",
    )

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        await ctx.publish_status(status="completed")

    async with open_broker(amqp) as broker, open_store(redis) as store:
        async with open_relayna_client(topology, broker) as client:
            await client.publish_tasks(
                ({"task_id": f"t{i}"} for i in range(tasks)), concurrency=256
            )
        sink = make_observation_sink(
            ObservationStore(store, ObservationStoreConfig(prefix=f"beo-{tag}")),
            ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"bef-{tag}")),
        )
        consumer = TaskConsumer(
            topology=topology,
            broker=amqp,
            handler=handler,
            prefetch=PREFETCH,
            observation_sink=sink,
            metrics=RelaynaMetrics(service="bench"),
        )
        hub = StatusHub(
            broker,
            StatusStore(store, StatusStoreConfig(prefix=f"bes-{tag}")),
            StatusHubConfig(queue=topology.status_queue, offset="first"),
        )
        async with anyio.create_task_group() as tg:
            started = time.perf_counter()
            await tg.start(hub.run)
            await tg.start(consumer.run)
            while True:  # the hub has no "stored N" event: poll its counter
                if hub.stats.stored >= tasks:
                    break
                await anyio.sleep(0.005)
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
        for queue in (topology.tasks_queue, topology.tasks_queue + ".dlq", topology.status_queue):
            await broker.delete_queue(queue)
    return tasks / elapsed


def _original_event_id(event: dict[str, Any]) -> str:
    text = json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def _original_round(amqp: str, redis_url: str, tasks: int) -> float:
    import aio_pika
    import redis.asyncio as aioredis
    from pydantic import BaseModel, ConfigDict, Field

    from benchmarks._original_path import original_hub

    class Task(BaseModel):  # the original's task envelope, the fields this workload uses
        model_config = ConfigDict(extra="allow")
        task_id: str
        payload: dict[str, Any] = Field(default_factory=dict)
        spec_version: str = "1.0"

    tag = uuid.uuid4().hex[:8]
    prefix = f"bench-e2e-orig-{tag}"
    redis = aioredis.from_url(redis_url)
    connection = await aio_pika.connect_robust(amqp)
    try:
        setup = await connection.channel()
        tasks_queue = await setup.declare_queue(f"beo-{tag}", durable=True)
        for start in range(0, tasks, 256):  # filled first, not timed
            await asyncio.gather(
                *(
                    setup.default_exchange.publish(
                        aio_pika.Message(
                            json.dumps({"task_id": f"t{i}", "payload": {}}).encode(),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=tasks_queue.name,
                    )
                    for i in range(start, min(start + 256, tasks))
                )
            )
        publish_channel = await connection.channel()  # publisher confirms on
        status_exchange = await publish_channel.declare_exchange(
            f"beox-{tag}", aio_pika.ExchangeType.TOPIC, durable=True
        )
        hub_channel = await connection.channel()
        await hub_channel.set_qos(prefetch_count=200)
        stream = await hub_channel.declare_queue(
            f"beos-{tag}", durable=True, arguments={"x-queue-type": "stream"}
        )
        await stream.bind(status_exchange.name, "#")
        worker_channel = await connection.channel()
        await worker_channel.set_qos(prefetch_count=PREFETCH)
        worker_queue = await worker_channel.get_queue(tasks_queue.name, ensure=False)
        stored = 0
        done = asyncio.Event()

        def on_stored() -> None:
            nonlocal stored
            stored += 1
            if stored == tasks:
                done.set()

        async def handle(message: Any) -> None:
            task = Task.model_validate_json(message.body)
            event = {
                "task_id": task.task_id,
                "status": "completed",
                "timestamp": datetime.now(UTC).isoformat(),
                "correlation_id": task.task_id,
                "spec_version": "1.0",
            }
            event["event_id"] = _original_event_id(event)
            await status_exchange.publish(
                aio_pika.Message(
                    json.dumps(event).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key=task.task_id,
            )
            await message.ack()

        running: set[asyncio.Task[None]] = set()

        async def worker() -> None:
            async with worker_queue.iterator() as messages:
                async for message in messages:
                    job = asyncio.create_task(handle(message))
                    running.add(job)
                    job.add_done_callback(running.discard)

        started = time.perf_counter()
        hub = asyncio.create_task(original_hub(stream, redis, prefix, on_stored, offset="first"))
        consumer = asyncio.create_task(worker())
        await done.wait()
        elapsed = time.perf_counter() - started
        for job in (consumer, hub, *running):
            job.cancel()
        await asyncio.gather(consumer, hub, *running, return_exceptions=True)
        await tasks_queue.delete(if_unused=False, if_empty=False)
        await stream.delete(if_unused=False, if_empty=False)
        await status_exchange.delete()
    finally:
        await connection.close()
        await drop_prefix(redis, prefix)
        await redis.aclose()
    return tasks / elapsed


def _child(kind: str, amqp: str, redis: str, tasks: int) -> float:
    if kind == "original/asyncio":
        return asyncio.run(_original_round(amqp, redis, tasks))
    backend = kind.split("/", 1)[1]
    return anyio.run(_relayna_round, amqp, redis, tasks, backend=backend)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks e2e", description=__doc__)
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "AMQP", "REDIS", "TASKS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        kind, amqp, redis, tasks = args.child
        print(json.dumps({"rate": _child(kind, amqp, redis, int(tasks))}))
        return 0
    amqp, redis = amqp_and_redis_urls()
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for r in range(args.rounds):
        for kind in rotated(KINDS, r):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.e2e", "--child", kind, amqp, redis,
                 str(args.tasks)],
                cwd=ROOT, capture_output=True, text=True, check=True, timeout=CHILD_TIMEOUT,
            )  # fmt: skip
            rates[kind].append(json.loads(out.stdout.strip().splitlines()[-1])["rate"])
            print(f"  round {r + 1} {kind:<18} {rates[kind][-1]:8.0f} tasks/s", flush=True)
    original = statistics.median(rates["original/asyncio"])
    print(
        f"\nend to end, {args.tasks} tasks, prefetch {PREFETCH}, one status each, hub from the"
        f" stream into Redis; median (range) over {args.rounds} interleaved rounds"
    )
    print(f"{'implementation':<40}{'tasks/s':>10}{'range':>18}{'x original':>12}")
    labels = {
        "relayna/asyncio": "relayna asyncio (sink+feed+metrics on)",
        "relayna/trio": "relayna trio (sink+feed+metrics on)",
        "original/asyncio": "original's design, rebuilt (asyncio)",
    }
    for kind in KINDS:
        values = rates[kind]
        med = statistics.median(values)
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        print(f"{labels[kind]:<40}{med:>10,.0f}{spread:>18}{med / original:>11.2f}x")
    print("target: relayna >= 2.5x the original")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
