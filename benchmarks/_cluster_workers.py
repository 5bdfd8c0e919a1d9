"""Workers on the Redis Cluster, part (c) of ``python -m benchmarks cluster --part redis``.

What the replica wait (``replica_acks``, 1 on a cluster store) costs a worker:
(1) DLQ: N tasks whose handler fails, dead-lettered with their DLQ record
    (``relayna.dlq.add``, then ``WAIT 1`` before the ack): dead letters/s;
(2) a workflow chain of 2 stages with dedup (stage steps group-committed,
    ``WAIT 1`` before each ack): runs/s.
Each on one Redis, on the 6-node cluster with the wait (the default) and with
``replica_acks=0``; the memory broker (the store is what is measured); rounds
interleaved, medians, ratios to the single Redis of the same run.
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from typing import Any

import anyio

from benchmarks._rounds import rotated
from benchmarks.workflow import _publish_all, _workflow_topology

__all__ = ["worker_rows"]

PREFETCH = 32


async def _dlq_rate(url: str, n: int, replica_acks: int | None) -> float:
    from relayna.consumer import RetryPolicy, TaskConsumer
    from relayna.dlq import DLQStore, DLQStoreConfig
    from relayna.rabbitmq import open_relayna_client
    from relayna.topology import SharedTasksSharedStatusTopology
    from relayna.transport import is_cluster_store_url, open_broker, open_store

    tag = uuid.uuid4().hex[:8]
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"bd.{tag}",
        tasks_queue=f"bd.{tag}.q",
        tasks_routing_key="task",
        status_exchange=f"bds.{tag}",
        status_queue=f"bds.{tag}.q",
        status_use_streams=False,
    )

    async def handler(task: Any, ctx: Any) -> None:
        raise ValueError("benchmark")

    async with open_broker("memory://") as broker, open_store(url) as store:
        config = DLQStoreConfig(prefix=f"bdlq{tag}", cluster=is_cluster_store_url(url))
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            retry_policy=RetryPolicy(max_retries=0),
            dlq_recorder=DLQStore(store, config),
            prefetch=PREFETCH,
            replica_acks=replica_acks,
        )
        async with open_relayna_client(topology, broker) as client:
            for i in range(n):
                await client.publish_task({"task_id": f"d{i}", "payload": {}})
        async with anyio.create_task_group() as tg:
            started = time.perf_counter()
            await tg.start(consumer.run)
            while consumer.stats.dead_lettered < n or consumer.inflight:  # noqa: ASYNC110
                await anyio.sleep(0.005)
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
    return n / elapsed


async def _chain_rate(url: str, n: int, replica_acks: int | None) -> float:
    from relayna.consumer import LeasePolicy
    from relayna.rabbitmq import open_relayna_client
    from relayna.transport import is_cluster_store_url, open_broker, open_store
    from relayna.workflow import WorkflowStoreConfig, WorkflowWorkerRuntime

    tag = uuid.uuid4().hex[:8]
    topology = _workflow_topology(tag, 2)
    done = anyio.Event()
    completed = 0

    async def first(message: Any, ctx: Any) -> None:
        await ctx.publish_to_stage("s1", {"i": message.payload["i"], "sent_at": 0.0}, action="step")

    async def last(message: Any, ctx: Any) -> None:
        nonlocal completed
        completed += 1
        if completed == n:
            done.set()

    async with open_broker("memory://") as broker, open_store(url) as store:
        async with open_relayna_client(topology, broker) as client:
            entries = [
                {"task_id": f"r{i}", "action": "step", "payload": {"i": i, "sent_at": 0.0}}
                for i in range(n)
            ]
            await _publish_all(client, entries, "s0")
        runtime = WorkflowWorkerRuntime(
            topology=topology,
            broker=broker,
            store=store,
            handlers={"s0": first, "s1": last},
            options={
                "prefetch": PREFETCH,
                "state": WorkflowStoreConfig(
                    prefix=f"bwf{tag}", run_ttl_seconds=600, cluster=is_cluster_store_url(url)
                ),
                "lease_policy": LeasePolicy(ttl=30, heartbeat_interval=10),
                "replica_acks": replica_acks,
            },
        )
        async with anyio.create_task_group() as tg:
            started = time.perf_counter()
            await tg.start(runtime.run)
            await done.wait()
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
    return n / elapsed


def worker_rows(single: str, cluster_url: str, n: int, rounds: int, backend: str) -> None:
    """Print the DLQ and workflow-chain tables (see the module docs)."""
    # every dead-lettered task logs its handler's failure: not what is measured
    logging.getLogger("relayna.consumer").setLevel(logging.ERROR)
    cases = [
        ("single Redis", single, None),
        ("Redis Cluster, WAIT 1 before acks (default)", cluster_url, None),
        ("Redis Cluster, replica_acks=0", cluster_url, 0),
    ]
    for title, fn, unit in (
        ("dead letters with their DLQ record", _dlq_rate, "msgs/s"),
        ("2-stage workflow runs", _chain_rate, "runs/s"),
    ):
        rates: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for r in range(rounds):
            for name, url, acks in rotated(cases, r):
                rates[name].append(anyio.run(fn, url, n, acks, backend=backend))
        base = statistics.median(rates[cases[0][0]])
        print(
            f"\nRedis Cluster: {title}, {n} per round x {rounds} interleaved rounds, "
            f"memory broker, prefetch {PREFETCH}, {backend} (medians; read the ratios)"
        )
        print(f"{'case':<44} {unit:>10} {'vs single':>10}")
        for name, _, _ in cases:
            median = statistics.median(rates[name])
            print(f"{name:<44} {median:>10.0f} {median / base:>9.2f}x")
