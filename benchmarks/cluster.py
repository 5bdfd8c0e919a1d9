"""relayna on clusters: ``python -m benchmarks cluster [--part rabbitmq|redis|all]``.

``--part rabbitmq`` (the default part of ``all``):

* **end to end**: ``--tasks`` tasks published with confirms (concurrency 256)
  while a ``TaskConsumer`` (prefetch 32) takes each, publishes one
  ``completed`` status and acks, and a ``StatusHub`` stores the statuses in
  Redis; the clock runs from the first publish to the hub storing the last
  status. **status latency**: from the handler publishing a status to a plain
  reader of the status stream receiving it (p50/p99 of every status). Cases:
  a 3-node cluster with ``work_queue_type="quorum"`` (task queue replicated on
  3 nodes, status stream ``x-initial-cluster-size=3``) against the single node
  with classic queues, in ``--rounds`` interleaved rounds of the same run
  (medians).
* **recovery**: a supervised consumer reads a quorum queue fed at a steady
  rate; the node it is connected to is SIGKILLed ``--kills`` times (restarted
  in between); the time from the kill to the next message it handles, p50/p99.

``--part redis`` runs :func:`benchmarks._cluster_redis.run` (hub throughput on
Redis Cluster against a single Redis). On a 2-core machine every node and the
workload share the cores: read the ratios, not the rates; these are not
production figures.

Uses RELAYNA_TEST_AMQP_URL / RELAYNA_TEST_REDIS_URL and
RELAYNA_TEST_RABBITMQ_CLUSTER_DIR when set, else starts what is missing with
scripts/services.py and scripts/rabbitmq_cluster.py (and stops the cluster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from benchmarks._redis import amqp_and_redis_urls
from benchmarks._rounds import rotated

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from rabbitmq_cluster import RabbitCluster, shared_cluster  # noqa: E402

PREFETCH = 32
CASES = ("single node, classic", "3-node cluster, quorum")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _end_to_end(amqp: str, redis: str, tasks: int, quorum: bool) -> tuple[float, list[float]]:
    """(tasks/s, status latencies in seconds) of one round."""
    from relayna.consumer import TaskConsumer, TaskContext
    from relayna.contracts import TaskEnvelope
    from relayna.rabbitmq import open_relayna_client
    from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
    from relayna.topology import SharedTasksSharedStatusTopology
    from relayna.transport import open_broker, open_store

    tag = uuid.uuid4().hex[:8]
    cluster_options: dict[str, Any] = (
        {"work_queue_type": "quorum", "status_stream_initial_cluster_size": 3} if quorum else {}
    )
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"bc-{tag}",
        tasks_queue=f"bc-{tag}",
        tasks_routing_key="task",
        status_exchange=f"bcs-{tag}",
        status_queue=f"bcs-{tag}",
        **cluster_options,
    )
    latencies: list[float] = []

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        await ctx.publish_status(status="completed", meta={"sent": time.time()})

    async def read_statuses(broker: Any, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with broker.consume(topology.status_queue, prefetch=500, offset="next") as reader:
            task_status.started()
            async for delivery in reader:
                sent = json.loads(delivery.body).get("meta", {}).get("sent")
                if sent is not None:
                    latencies.append(time.time() - float(sent))
                await delivery.ack()

    async with open_broker(amqp) as broker, open_store(redis) as store:
        async with open_relayna_client(topology, broker) as client:
            consumer = TaskConsumer(
                topology=topology, broker=amqp, handler=handler, prefetch=PREFETCH
            )
            hub = StatusHub(
                broker,
                StatusStore(store, StatusStoreConfig(prefix=f"bcs-{tag}")),
                StatusHubConfig(queue=topology.status_queue, offset="next"),
            )
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                await tg.start(read_statuses, broker)
                await tg.start(consumer.run)
                started = time.perf_counter()
                await client.publish_tasks(
                    ({"task_id": f"t{i}"} for i in range(tasks)), concurrency=256
                )
                while hub.stats.stored < tasks:  # noqa: ASYNC110 - the hub has no "stored N" event
                    await anyio.sleep(0.005)
                elapsed = time.perf_counter() - started
                tg.cancel_scope.cancel()
        plan = topology.plan() + topology.retry_plan(topology.tasks_queue, 1000)
        for queue in plan.queue_names:
            await broker.delete_queue(queue)
        for exchange in plan.exchange_names:
            await broker.delete_exchange(exchange)
    return tasks / elapsed, latencies


async def _recovery(cluster: RabbitCluster, kills: int) -> list[float]:
    """Seconds from SIGKILLing the consumer's node to its next handled message."""
    from relayna.errors import BrokerError
    from relayna.transport import Backoff, QueueSpec, open_broker, supervise

    queue = f"bc-recovery-{uuid.uuid4().hex[:8]}"
    url = cluster.amqp_url
    async with open_broker(url) as admin:
        await admin.declare_queue(
            QueueSpec(queue, durable=True, arguments={"x-queue-type": "quorum"})
        )
    handled_at: list[float] = []  # when each message was handled ...
    handled_on: list[int] = []  # ... and through which node
    node: list[int] = []
    recoveries: list[float] = []

    async def consume() -> None:
        async with open_broker(url) as broker:
            here = cluster.node_of_port(broker.connection.params.port)  # type: ignore[attr-defined]
            node.append(here)
            async with broker.consume(queue, prefetch=50) as consumer:
                async for delivery in consumer:
                    handled_at.append(time.monotonic())
                    handled_on.append(here)
                    await delivery.ack()

    async def feed() -> None:
        async def run() -> None:
            async with open_broker(url + "?host_order=shuffle") as broker:
                while True:
                    await broker.publish("", queue, b"tick")
                    await anyio.sleep(0.005)

        await supervise(run, backoff=Backoff(initial=0.05, maximum=0.2), retry_on=(BrokerError,),
                        on_retry=lambda *_: None)  # fmt: skip

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        tg.start_soon(
            lambda: supervise(
                consume,
                backoff=Backoff(initial=0.05, maximum=0.5),
                retry_on=(BrokerError,),
                on_retry=lambda *_: None,
            )
        )
        for k in range(kills):
            while not handled_at or time.monotonic() - handled_at[-1] > 0.1:  # noqa: ASYNC110
                await anyio.sleep(0.01)  # a steady flow: the last message is recent
            victim = node[-1]
            killed_at = time.monotonic()
            await anyio.to_thread.run_sync(cluster.kill, victim)
            # a message handled through another node: deliveries the old connection
            # had buffered before the kill do not count
            while not handled_on or handled_on[-1] == victim:  # noqa: ASYNC110
                await anyio.sleep(0.005)  # measuring: polls a plain list at 5 ms
            recoveries.append(handled_at[-1] - killed_at)
            print(f"  kill {k + 1}: node {victim + 1}, handled again after "
                  f"{recoveries[-1]:.2f}s on node {node[-1] + 1}", flush=True)  # fmt: skip
            await anyio.to_thread.run_sync(cluster.restart, victim)
        tg.cancel_scope.cancel()
    async with open_broker(url) as admin:
        await admin.delete_queue(queue)
    return recoveries


def run_rabbitmq(args: argparse.Namespace) -> int:
    amqp, redis = amqp_and_redis_urls()
    with shared_cluster(3) as cluster:
        urls = {CASES[0]: amqp, CASES[1]: cluster.amqp_url}
        rates: dict[str, list[float]] = {case: [] for case in CASES}
        latencies: dict[str, list[float]] = {case: [] for case in CASES}
        for r in range(args.rounds):
            for case in rotated(CASES, r):
                rate, lat = anyio.run(
                    _end_to_end, urls[case], redis, args.tasks, case == CASES[1],
                    backend=args.backend,
                )  # fmt: skip
                rates[case].append(rate)
                latencies[case].append(statistics.median(lat))
                latencies[case + " p99"] = [
                    *latencies.get(case + " p99", []),
                    _percentile(lat, 0.99),
                ]
                print(f"  round {r + 1} {case:<24} {rate:8.0f} tasks/s  status p50 "
                      f"{statistics.median(lat) * 1000:6.1f} ms", flush=True)  # fmt: skip
        recoveries = anyio.run(_recovery, cluster, args.kills, backend=args.backend)
    if args.rounds:
        _print_end_to_end(args, rates, latencies)
    print(
        f"\nrecovery after SIGKILL of the consumer's node ({len(recoveries)} kills): "
        f"p50 {_percentile(recoveries, 0.5):.2f}s, p99 {_percentile(recoveries, 0.99):.2f}s"
    )
    print("2 shared cores for 4 RabbitMQ nodes, Redis and the workload: ratios, not production "
          "figures")  # fmt: skip
    return 0


def _print_end_to_end(
    args: argparse.Namespace, rates: dict[str, list[float]], latencies: dict[str, list[float]]
) -> None:
    single = statistics.median(rates[CASES[0]])
    print(
        f"\nend to end on {args.backend}: {args.tasks} tasks published with confirms, prefetch "
        f"{PREFETCH}, one status each, hub into Redis; medians over {args.rounds} interleaved rounds"
    )
    print(f"{'case':<26}{'tasks/s':>10}{'x single':>10}{'status p50 ms':>15}{'status p99 ms':>15}")
    for case in CASES:
        med = statistics.median(rates[case])
        p50 = statistics.median(latencies[case]) * 1000
        p99 = statistics.median(latencies[case + " p99"]) * 1000
        print(f"{case:<26}{med:>10,.0f}{med / single:>9.2f}x{p50:>15.1f}{p99:>15.1f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--part", choices=("rabbitmq", "redis", "all"), default="all",
                        help="which cluster to measure (default: all)")  # fmt: skip
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per end-to-end round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved end-to-end rounds (0: only the recovery)")  # fmt: skip
    parser.add_argument("--kills", type=int, default=5, help="node kills for the recovery time")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                        help="async backend of the workload")  # fmt: skip
    args = parser.parse_args(argv)
    rc = 0
    if args.part in ("rabbitmq", "all"):
        rc |= run_rabbitmq(args)
    if args.part in ("redis", "all"):
        from benchmarks._cluster_redis import run

        try:
            rc |= int(run(args) or 0)
        except NotImplementedError as exc:  # the stub: say so, and let `benchmarks all` go on
            print(f"cluster --part redis: {exc}", file=sys.stderr)
            rc |= 1
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
