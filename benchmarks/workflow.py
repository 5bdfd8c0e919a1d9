"""Workflow stage runtime vs hand-written chains, on real RabbitMQ + Redis.

(a) Chains of 2 and 5 stages, ``--n`` runs (default 5,000): every stage
    hands the run to the next one, the last completes it. relayna: one
    ``WorkflowWorkerRuntime`` with contracts (an accepted action with a
    payload schema on every stage), durable dedup (``dedup_key_fields``) and
    run state on, in Redis. Reference, measured in the same run: the same
    chain written with one plain ``TaskConsumer`` per stage whose handler
    publishes (with confirm) a task to the next stage's queue — no
    contracts, no dedup, no run state. Same broker, same prefetch.
    Printed: runs/s (entry messages pre-published, timed from the start of
    the consumers to the last run's completion), per-hop latency p50 / p99
    (a handler's publish to the next handler's start), the worker process's
    CPU time per delivery in that time (``cpu µs``: it varies much less than
    runs/s on a shared machine; Redis's and RabbitMQ's CPU are not in it) and
    the ratio of relayna's runs/s to the reference's. Target: >= 0.85x.
(b) A fan-in of 3 (split -> b0, b1, b2 -> join): joins/s over ``--joins``
    runs.

Uses RELAYNA_TEST_AMQP_URL / RELAYNA_TEST_REDIS_URL when set, else starts
both with scripts/services.py (and stops them after).

Usage: ``python -m benchmarks workflow [--n 5000] [--joins 1000] [--prefetch 32]
[--backend asyncio,trio]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

from relayna.topology import (
    ActionSchema,
    FanIn,
    PayloadSchema,
    SharedStatusWorkflowTopology,
    SharedTasksSharedStatusTopology,
    WorkflowStage,
)

STEP = ActionSchema(
    action="step", payload=PayloadSchema(name="step", required_fields=("i", "sent_at"))
)


@contextmanager
def _servers() -> Iterator[tuple[str, str]]:
    amqp, redis = os.environ.get("RELAYNA_TEST_AMQP_URL"), os.environ.get("RELAYNA_TEST_REDIS_URL")
    if amqp and redis:
        yield amqp, redis
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from services import Services

    svc = Services.start()
    try:
        yield svc.amqp_url, svc.redis_url
    finally:
        svc.stop()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Chain:
    """Hop latencies and the completion of ``n`` runs."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.done = 0
        self.finished = anyio.Event()
        self.hops: list[float] = []
        self.cpu = 0.0

    def hop(self, sent_at: float) -> None:
        self.hops.append(time.time() - sent_at)

    def complete(self) -> None:
        self.done += 1
        if self.done == self.n:
            self.finished.set()


async def _publish_all(client: Any, entries: list[dict[str, Any]], stage: str) -> None:
    """Pre-publish the entry messages (not timed), 256 confirms outstanding."""
    limiter = anyio.CapacityLimiter(256)

    async def one(entry: dict[str, Any]) -> None:
        async with limiter:
            await client.publish_to_stage(entry, stage)

    with anyio.fail_after(600):
        async with anyio.create_task_group() as tg:
            for entry in entries:
                tg.start_soon(one, entry)


async def _timed_workflow(runtime: Any, chain: Chain, broker: Any) -> float:
    """Seconds from starting ``runtime`` to ``chain`` finished (its CPU seconds in
    ``chain.cpu``); then its queues are deleted."""
    async with anyio.create_task_group() as tg:
        t0, c0 = time.perf_counter(), time.process_time()
        await tg.start(runtime.run)
        await chain.finished.wait()
        elapsed, chain.cpu = time.perf_counter() - t0, time.process_time() - c0
        tg.cancel_scope.cancel()
    topology = runtime.topology
    for stage in topology.stages:
        for suffix in ("", ".retry", ".dlq"):
            await broker.delete_queue(stage.queue + suffix)
    await broker.delete_exchange(topology.workflow_exchange)
    return elapsed


def _workflow_topology(tag: str, stages: int) -> SharedStatusWorkflowTopology:
    names = [f"s{i}" for i in range(stages)]
    return SharedStatusWorkflowTopology(
        workflow_exchange=f"bench-wf-{tag}",
        status_exchange=f"bench-wf-status-{tag}",
        status_queue=f"bench-wf-status-{tag}",
        status_use_streams=False,
        stages=tuple(
            WorkflowStage(
                name,
                f"bench-wf-{tag}.{name}",
                (f"{name}.in",),
                f"{name}.in",
                accepted_actions=(STEP,),
                produced_actions=(STEP,) if i + 1 < stages else (),
                allowed_next_stages=(names[i + 1],) if i + 1 < stages else (),
                terminal=i + 1 == stages,
                dedup_key_fields=("i",),
            )
            for i, name in enumerate(names)
        ),
    )


async def _relayna_chain(amqp: str, redis: str, stages: int, n: int, prefetch: int) -> Any:
    from relayna.consumer import LeasePolicy
    from relayna.rabbitmq import open_relayna_client
    from relayna.transport import open_broker, open_store
    from relayna.workflow import WorkflowStoreConfig, WorkflowWorkerRuntime

    tag = uuid.uuid4().hex[:8]
    topology = _workflow_topology(tag, stages)
    chain = Chain(n)
    last = f"s{stages - 1}"

    def handler(name: str) -> Any:
        index = int(name[1:])

        async def handle(message: Any, ctx: Any) -> None:
            if message.origin_stage is not None:
                chain.hop(message.payload["sent_at"])
            if name == last:
                chain.complete()
                return
            payload = {"i": message.payload["i"], "sent_at": time.time()}
            await ctx.publish_to_stage(f"s{index + 1}", payload, action="step")

        return handle

    async with open_broker(amqp) as broker, open_store(redis) as store:
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
            handlers={f"s{i}": handler(f"s{i}") for i in range(stages)},
            options={
                "prefetch": prefetch,
                "state": WorkflowStoreConfig(prefix=f"bench-wf-{tag}", run_ttl_seconds=600),
                "lease_policy": LeasePolicy(ttl=30, heartbeat_interval=10),
            },
        )
        elapsed = await _timed_workflow(runtime, chain, broker)
    return n / elapsed, chain.hops, chain.cpu / (n * stages)


async def _plain_chain(amqp: str, stages: int, n: int, prefetch: int) -> Any:
    from relayna.consumer import TaskConsumer
    from relayna.rabbitmq import RelaynaClient, open_relayna_client
    from relayna.transport import open_broker

    tag = uuid.uuid4().hex[:8]
    topologies = [
        SharedTasksSharedStatusTopology(
            tasks_exchange=f"bench-plain-{tag}",
            tasks_queue=f"bench-plain-{tag}.s{i}",
            tasks_routing_key=f"s{i}",
            status_exchange=f"bench-plain-status-{tag}",
            status_queue=f"bench-plain-status-{tag}",
            status_use_streams=False,
        )
        for i in range(stages)
    ]
    chain = Chain(n)
    async with open_broker(amqp) as broker:
        clients = [RelaynaClient(topology=t, broker=broker) for t in topologies]
        for t in topologies:
            await t.plan().apply(broker)

        def handler(index: int) -> Any:
            async def handle(task: Any, ctx: Any) -> None:
                if index > 0:
                    chain.hop(task.payload["sent_at"])
                if index == stages - 1:
                    chain.complete()
                    return
                payload = {"i": task.payload["i"], "sent_at": time.time()}
                await clients[index + 1].publish_task({"task_id": task.task_id, "payload": payload})

            return handle

        async with open_relayna_client(topologies[0], broker) as client:
            await client.publish_tasks(
                ({"task_id": f"r{i}", "payload": {"i": i, "sent_at": 0.0}} for i in range(n)),
                concurrency=256,
            )
        consumers = [
            TaskConsumer(topology=t, broker=broker, handler=handler(i), prefetch=prefetch)
            for i, t in enumerate(topologies)
        ]
        async with anyio.create_task_group() as tg:
            t0, c0 = time.perf_counter(), time.process_time()
            for consumer in consumers:
                await tg.start(consumer.run)
            await chain.finished.wait()
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            tg.cancel_scope.cancel()
        for t in topologies:
            for suffix in ("", ".retry", ".dlq"):
                await broker.delete_queue(t.tasks_queue + suffix)
        await broker.delete_queue(topologies[0].status_queue)
        await broker.delete_exchange(topologies[0].tasks_exchange)
    return n / elapsed, chain.hops, cpu / (n * stages)


async def _fan_in(amqp: str, redis: str, n: int, prefetch: int) -> float:
    from relayna.rabbitmq import open_relayna_client
    from relayna.transport import open_broker, open_store
    from relayna.workflow import WorkflowStoreConfig, WorkflowWorkerRuntime

    tag = uuid.uuid4().hex[:8]
    branches = ("b0", "b1", "b2")

    def stage(name: str, *nexts: str, **kw: Any) -> WorkflowStage:
        return WorkflowStage(
            name,
            f"bench-fan-{tag}.{name}",
            (f"{name}.in",),
            f"{name}.in",
            allowed_next_stages=nexts,
            **kw,
        )

    topology = SharedStatusWorkflowTopology(
        workflow_exchange=f"bench-fan-{tag}",
        status_exchange=f"bench-fan-status-{tag}",
        status_queue=f"bench-fan-status-{tag}",
        status_use_streams=False,
        stages=(
            stage("split", *branches),
            *(stage(b, "join") for b in branches),
            stage("join", terminal=True, join=FanIn(expected=branches)),
        ),
    )
    chain = Chain(n)

    async def split(message: Any, ctx: Any) -> None:
        for b in branches:
            await ctx.publish_to_stage(b, message.payload)

    async def branch(message: Any, ctx: Any) -> None:
        await ctx.publish_to_stage("join", message.payload)

    async def join(joined: Any, ctx: Any) -> None:
        assert len(joined.payloads) == 3
        chain.complete()

    async with open_broker(amqp) as broker, open_store(redis) as store:
        async with open_relayna_client(topology, broker) as client:
            entries = [{"task_id": f"j{i}", "payload": {"i": i}} for i in range(n)]
            await _publish_all(client, entries, "split")
        runtime = WorkflowWorkerRuntime(
            topology=topology,
            broker=broker,
            store=store,
            handlers={"split": split, **dict.fromkeys(branches, branch), "join": join},
            options={
                "prefetch": prefetch,
                "state": WorkflowStoreConfig(prefix=f"bench-fan-{tag}", run_ttl_seconds=600),
            },
        )
        elapsed = await _timed_workflow(runtime, chain, broker)
    return n / elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks workflow")
    parser.add_argument("--n", type=int, default=5000, help="runs per chain")
    parser.add_argument("--joins", type=int, default=1000, help="runs of the fan-in of 3")
    parser.add_argument("--prefetch", type=int, default=32, help="prefetch of every stage")
    parser.add_argument("--stages", default="2,5", help="chain lengths")
    parser.add_argument("--backend", default="asyncio,trio", help="anyio backends to run")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    with _servers() as (amqp, redis):
        print(
            f"workflow benchmark: {args.n} runs per chain, prefetch {args.prefetch}; "
            "relayna = contracts + durable dedup + run state in Redis; "
            "reference = plain TaskConsumers publishing to the next queue"
        )
        print(
            f"{'backend':<8} {'stages':>6} {'implementation':<16} {'runs/s':>8} "
            f"{'hop p50 ms':>10} {'hop p99 ms':>10} {'cpu µs':>7} {'ratio':>6}"
        )
        for backend in backends:
            for stages in (int(s) for s in args.stages.split(",")):
                ref_rate, ref_hops, ref_cpu = anyio.run(
                    _plain_chain, amqp, stages, args.n, args.prefetch, backend=backend
                )
                rate, hops, cpu = anyio.run(
                    _relayna_chain, amqp, redis, stages, args.n, args.prefetch, backend=backend
                )
                for name, r, h, c in (
                    ("plain tasks", ref_rate, ref_hops, ref_cpu),
                    ("relayna", rate, hops, cpu),
                ):
                    print(
                        f"{backend:<8} {stages:>6} {name:<16} {r:>8.0f} "
                        f"{_pct(h, 0.5) * 1000:>10.1f} {_pct(h, 0.99) * 1000:>10.1f} "
                        f"{c * 1e6:>7.0f} {r / ref_rate:>6.2f}",
                        flush=True,
                    )
            joins = anyio.run(_fan_in, amqp, redis, args.joins, args.prefetch, backend=backend)
            print(f"{backend:<8} {'fan-in of 3':<23} {joins:>8.0f} joins/s", flush=True)
    return 0
