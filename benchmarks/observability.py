"""Observability benchmark: what the observability plane costs, measured in one run.

(a) Worker throughput on the real RabbitMQ + Redis with the Redis observation
    sink + feed, Prometheus metrics and OpenTelemetry tracing (SDK provider
    with a ``BatchSpanProcessor``, as a deployment configures it, exporting
    to a no-op exporter) **on**, against the same worker with
    all of it **off** (the reference). Each round is a fresh process (a tracer
    provider cannot be unset), rounds interleave off/on; medians and the ratio
    per round. Target: on >= 0.9 x off. Below the table: the CPU per task a
    0.9 ratio leaves the whole plane, and the tracing floor: spans exported
    per task (counted by the exporter) times the SDK's own CPU per span,
    measured in the "on" child with the same provider and processor and no
    relayna code (:mod:`benchmarks._span_floor`).
(b) ``build_execution_graph`` for 1k / 10k / 100k events: ms and µs per event
    (linear growth = flat µs/event). Target: 10k events < 50 ms.
(c) ``GET /events/feed`` (page of 100, random cursors) from a 50k-entry feed on
    Redis, over HTTP (hypercorn + httpx on loopback): p50 / p99, next to a bare
    Starlette route answering the same body on the same server (interleaved),
    ``feed.read()`` in-process and a raw ``LRANGE`` of 100 on the same Redis
    (the floors). Target: p99 < 5 ms.
(d) ``GET /metrics`` after 1,000 tasks: p50 / p99 over HTTP, next to a bare
    Starlette route answering the same bytes on the same server, requests
    interleaved (the floor: what the server costs per request, not relayna).
    Target: < 10 ms.

One worker round alone, with a subset of the features (to see what costs
what): ``python -m benchmarks.observability --child AMQP_URL REDIS_URL TASKS
off|on|sink|metrics|tracing|sink+metrics...``.

Uses RELAYNA_TEST_AMQP_URL / RELAYNA_TEST_REDIS_URL if set, else starts both
with scripts/services.py. Usage: ``python -m benchmarks observability
[--tasks 3000] [--rounds 3] [--skip a,b,c,d]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from benchmarks._redis import amqp_and_redis_urls
from benchmarks._span_floor import install_counting_provider, sdk_span_cpu_us

ROOT = Path(__file__).resolve().parent.parent


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- (a) worker throughput ----------------------------------------------------------


async def _worker_round(
    amqp: str, redis: str, tasks: int, mode: str
) -> tuple[float, float, float | None]:
    """One worker run in this process: tasks/s, this process's CPU µs per task
    (every thread, e.g. the span processor's) while consuming, and with tracing
    the spans exported per task (the child side of (a))."""
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
    from relayna.topology import SharedTasksSharedStatusTopology
    from relayna.transport import open_broker, open_store

    features = {"sink", "metrics", "tracing"} if mode == "on" else set(mode.split("+")) - {"off"}
    spans = install_counting_provider() if "tracing" in features else None
    tag = uuid.uuid4().hex[:8]
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange=f"bo-{tag}",
        tasks_queue=f"bo-{tag}",
        tasks_routing_key="task",
        status_exchange=f"bos-{tag}",
        status_queue=f"bos-{tag}",
        status_use_streams=False,
    )
    done = anyio.Event()
    count = 0

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        nonlocal count
        await ctx.publish_status(status="done")
        count += 1
        if count == tasks:
            done.set()

    async with open_broker(amqp) as broker, open_store(redis) as store:
        async with open_relayna_client(topology, broker) as client:
            await client.publish_tasks(
                ({"task_id": f"t{i}"} for i in range(tasks)), concurrency=256
            )
        options: dict[str, Any] = {}
        if "sink" in features:
            options["observation_sink"] = make_observation_sink(
                ObservationStore(store, ObservationStoreConfig(prefix=f"bo-{tag}")),
                ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"bf-{tag}")),
            )
        if "metrics" in features:
            options["metrics"] = RelaynaMetrics(service="bench")
        consumer = TaskConsumer(
            topology=topology, broker=amqp, handler=handler, prefetch=32, **options
        )
        before = spans.flushed() if spans is not None else 0  # the fill's producer spans
        async with anyio.create_task_group() as tg:
            started, cpu = time.perf_counter(), time.process_time()
            await tg.start(consumer.run)
            await done.wait()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            tg.cancel_scope.cancel()
        per_task = (spans.flushed() - before) / tasks if spans is not None else None
        for queue in (topology.tasks_queue, topology.tasks_queue + ".dlq", topology.status_queue):
            await broker.delete_queue(queue)
    return tasks / elapsed, cpu / tasks * 1e6, per_task


def _child(argv: list[str]) -> int:
    amqp, redis, tasks, mode = argv
    rate, cpu_us, spans = anyio.run(_worker_round, amqp, redis, int(tasks), mode)
    result = {"rate": rate, "cpu_us_per_task": cpu_us, "spans_per_task": spans}
    if spans is not None:  # the SDK alone, same provider and processor, same process
        result["sdk_cpu_us_per_span"] = sdk_span_cpu_us()
    print(json.dumps(result))
    return 0


def bench_worker(amqp: str, redis: str, tasks: int, rounds: int) -> None:
    print(f"\n(a) worker throughput, {tasks} tasks (status publish + ack each), prefetch 32")
    print("    (CPU: the worker process's CPU per task while consuming, all its threads;")
    print("     on a shared host it varies less than tasks/s; Redis/RabbitMQ CPU not included)")
    print(
        f"    {'round':<6} {'off (tasks/s)':>14} {'on (tasks/s)':>14} {'on/off':>8}"
        f" {'off CPU µs/task':>16} {'on CPU µs/task':>15} {'off/on CPU':>11}"
    )
    ratios, offs, ons, cpu_ratios = [], [], [], []
    off_cpus, on_cpus, floors = [], [], []
    for r in range(rounds):
        order = ("off", "on") if r % 2 == 0 else ("on", "off")
        rate: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for mode in order:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.observability",
                    "--child",
                    amqp,
                    redis,
                    str(tasks),
                    mode,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rate[mode], cpu[mode] = result["rate"], result["cpu_us_per_task"]
            if result.get("spans_per_task") is not None:
                floors.append((result["spans_per_task"], result["sdk_cpu_us_per_span"]))
        offs.append(rate["off"])
        off_cpus.append(cpu["off"])
        on_cpus.append(cpu["on"])
        ons.append(rate["on"])
        ratios.append(rate["on"] / rate["off"])
        cpu_ratios.append(cpu["off"] / cpu["on"])
        print(
            f"    {r + 1:<6} {rate['off']:>14,.0f} {rate['on']:>14,.0f} {ratios[-1]:>8.2f}"
            f" {cpu['off']:>16,.0f} {cpu['on']:>15,.0f} {cpu_ratios[-1]:>11.2f}"
        )
    print(
        f"    {'median':<6} {statistics.median(offs):>14,.0f} {statistics.median(ons):>14,.0f}"
        f" {statistics.median(ratios):>8.2f} {'':>16} {'':>15}"
        f" {statistics.median(cpu_ratios):>11.2f}   (target on/off >= 0.90)"
    )
    off_cpu, on_cpu = statistics.median(off_cpus), statistics.median(on_cpus)
    per_task = statistics.median(spans for spans, _ in floors)
    per_span = statistics.median(cost for _, cost in floors)
    print(
        f"    CPU µs/task: off {off_cpu:,.0f}, on {on_cpu:,.0f}; a 0.90 ratio leaves the"
        f" whole plane {off_cpu / 0.9 - off_cpu:,.0f} µs/task"
    )
    print(
        f"    tracing floor (the SDK alone, same provider and BatchSpanProcessor, no relayna"
        f" code): {per_task:.1f} spans/task x {per_span:.1f} µs/span ="
        f" {per_task * per_span:,.0f} µs/task"
    )


# -- (b) graph build ----------------------------------------------------------------


def _records(n: int) -> Any:
    from relayna.observability import TaskRecords

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    observations: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    kinds = ("TaskMessageReceived", "ConsumerRetryScheduled")
    for i in range(n):
        at = (t0 + timedelta(milliseconds=i)).isoformat()
        if i % 2:
            statuses.append(
                {
                    "task_id": "t",
                    "status": "running",
                    "timestamp": at,
                    "event_id": f"e{i}",
                    "message": "step",
                }
            )
        else:
            observations.append(
                {
                    "event_type": kinds[i // 2 % 2],
                    "timestamp": at,
                    "queue_name": "q",
                    "consumer_name": "w",
                    "task_id": "t",
                    "retry_attempt": i // 4,
                }
            )
    return TaskRecords("t", statuses, observations)


def _best(fn: Any, repeat: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``fn()`` (CPU time is what the build
    costs; on a shared box the wall time also counts other processes)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def bench_graph() -> None:
    from relayna.observability import TaskRecords, build_execution_graph

    print("\n(b) build_execution_graph (pure), half statuses, half observations; best of runs")
    print(
        f"    {'events':>8} {'wall ms':>9} {'CPU ms':>8} {'CPU µs/event':>13} {'to_dict CPU ms':>15}"
    )
    for n in (1_000, 10_000, 100_000):
        records = _records(n)
        repeat = 5 if n < 100_000 else 2
        wall, cpu = _best(partial(build_execution_graph, records, topology_kind="k"), repeat)
        graph = build_execution_graph(records, topology_kind="k")
        _, dict_cpu = _best(graph.to_dict, repeat)
        print(
            f"    {n:>8,} {wall * 1000:>9.1f} {cpu * 1000:>8.1f} {cpu / n * 1e6:>13.2f}"
            f" {dict_cpu * 1000:>15.1f}"
        )
    print("    (target: 10k events < 50 ms; flat µs/event = linear)")
    # the issue's big task: 100 children x 20 events each, and 2,000 root events
    root = _records(2_000)
    children = [
        TaskRecords(f"c{i}", _records(20).statuses, _records(20).observations) for i in range(100)
    ]
    wall, cpu = _best(
        lambda: build_execution_graph(root, topology_kind="k", children=children).to_dict(), 5
    )
    print(
        f"    100 children x 20 events + 2,000 root events, build + to_dict: "
        f"wall {wall * 1000:.1f} ms, CPU {cpu * 1000:.1f} ms (target well under 100 ms)"
    )


# -- (c) feed page ---------------------------------------------------------------------


async def _feed(redis: str, requests: int) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from relayna.api import RuntimeConfig, feed_routes, open_relayna_runtime, serving
    from relayna.api._routes import JSONResponse
    from relayna.observability import ServiceEventFeedConfig

    tag = uuid.uuid4().hex[:8]
    config = RuntimeConfig(
        store_url=redis, feed=ServiceEventFeedConfig(prefix=f"bf-{tag}", feed_maxlen=50_000)
    )
    async with open_relayna_runtime(config) as runtime:
        feed = runtime.feed
        assert feed is not None
        for chunk in range(0, 50_000, 1_000):
            await feed.append_statuses(
                [
                    {
                        "task_id": f"t{i % 500}",
                        "event_id": f"e{i}",
                        "status": "running",
                        "timestamp": "2026-01-01T00:00:00+00:00",
                    }
                    for i in range(chunk, chunk + 1_000)
                ]
            )
        epoch = (await feed.read(limit=1)).next_cursor.split("-")[0]  # type: ignore[union-attr]
        sample = JSONResponse((await feed.read(f"{epoch}-1000", 100)).to_dict()).body

        async def bare(request: Any) -> Response:  # the floor: same bytes, no store, no relayna
            return Response(sample, media_type="application/json")

        app = Starlette(routes=[*feed_routes(), Route("/bare", bare)])

        async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope.setdefault("state", {})["relayna"] = runtime
            await app(scope, receive, send)

        route_ms: list[float] = []
        bare_ms: list[float] = []
        async with serving(lifespan_app) as base, httpx.AsyncClient(base_url=base) as client:
            for _ in range(requests):  # interleaved: both see the same load
                after = f"{epoch}-{random.randint(1, 49_800)}"
                start = time.perf_counter()
                response = await client.get("/events/feed", params={"after": after, "limit": 100})
                route_ms.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200
                assert response.json()["count"] == 100
                start = time.perf_counter()
                await client.get("/bare")
                bare_ms.append((time.perf_counter() - start) * 1000)

        async def in_process(read: Callable[[str, int], Awaitable[object]]) -> list[float]:
            samples: list[float] = []
            for _ in range(requests):
                after = f"{epoch}-{random.randint(1, 49_800)}"
                start = time.perf_counter()
                await read(after, 100)
                samples.append((time.perf_counter() - start) * 1000)
            return samples

        read_ms = await in_process(feed.read)
        json_ms = await in_process(feed.read_json)
        raw_ms: list[float] = []
        for _ in range(requests):
            first = random.randint(0, 49_800)
            start = time.perf_counter()
            await runtime.store.lrange(f"bf-{tag}:feed", first, first + 99)
            raw_ms.append((time.perf_counter() - start) * 1000)
        await runtime.store.delete(f"bf-{tag}:feed", f"bf-{tag}:feed:seq", f"bf-{tag}:feed:epoch")
    print(f"\n(c) page of 100 from a 50,000-event feed, {requests} requests, random cursors")
    print(f"    {'':<28} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        f"    {'GET /events/feed (HTTP)':<28} {_pct(route_ms, 0.5):>8.2f} {_pct(route_ms, 0.99):>8.2f}"
        "   (target p99 < 5 ms)"
    )
    print(
        f"    {'bare Starlette route, same':<28} {_pct(bare_ms, 0.5):>8.2f} {_pct(bare_ms, 0.99):>8.2f}"
        "   (the server's floor: same body, same server, interleaved)"
    )
    print(
        f"    {'feed.read() in-process':<28} {_pct(read_ms, 0.5):>8.2f} {_pct(read_ms, 0.99):>8.2f}"
        "   (decoded items)"
    )
    print(
        f"    {'feed.read_json() in-process':<28} {_pct(json_ms, 0.5):>8.2f} "
        f"{_pct(json_ms, 0.99):>8.2f}   (the route's body: stored bytes spliced)"
    )
    print(
        f"    {'raw LRANGE 100 (reference)':<28} {_pct(raw_ms, 0.5):>8.2f} {_pct(raw_ms, 0.99):>8.2f}"
    )


# -- (d) /metrics scrape ------------------------------------------------------------------


async def _metrics(requests: int) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from relayna.api import metrics_routes, serving
    from relayna.consumer import RetryPolicy, TaskConsumer, TaskContext
    from relayna.contracts import TaskEnvelope
    from relayna.observability import RelaynaMetrics
    from relayna.rabbitmq import open_relayna_client
    from relayna.topology import SharedTasksSharedStatusTopology
    from relayna.transport import open_broker

    metrics = RelaynaMetrics(service="bench")
    topology = SharedTasksSharedStatusTopology(
        tasks_exchange="bm",
        tasks_queue="bm",
        tasks_routing_key="task",
        status_exchange="bms",
        status_queue="bms",
        status_use_streams=False,
    )

    async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
        if task.task_id.endswith("7") and ctx.attempt == 0:
            raise RuntimeError("retry me")

    async with open_broker("memory://") as broker:
        consumer = TaskConsumer(
            topology=topology,
            broker=broker,
            handler=handler,
            prefetch=32,
            metrics=metrics,
            retry_policy=RetryPolicy(max_retries=1, delay_ms=1),
        )
        async with anyio.create_task_group() as tg:
            await tg.start(consumer.run)
            async with open_relayna_client(topology, broker) as client:
                await client.publish_tasks([{"task_id": f"t{i}"} for i in range(1_000)])
            while consumer.stats.acked < 1_000:  # noqa: ASYNC110 - benchmark setup
                await anyio.sleep(0.01)
            body = metrics.exposition()

            async def bare(request: Any) -> Response:  # the floor: same bytes, no registry
                return Response(body, media_type="text/plain; version=0.0.4")

            app = Starlette(routes=[*metrics_routes(metrics), Route("/bare", bare)])
            scrape_ms: list[float] = []
            floor_ms: list[float] = []
            async with serving(app) as base, httpx.AsyncClient(base_url=base) as http:
                for _ in range(requests):  # interleaved: both see the same load
                    start = time.perf_counter()
                    response = await http.get("/metrics")
                    scrape_ms.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200
                    start = time.perf_counter()
                    await http.get("/bare")
                    floor_ms.append((time.perf_counter() - start) * 1000)
            size = len(response.content)
            direct_ms: list[float] = []
            for _ in range(requests):
                start = time.perf_counter()
                metrics.exposition()
                direct_ms.append((time.perf_counter() - start) * 1000)
            tg.cancel_scope.cancel()
    print(f"\n(d) GET /metrics after 1,000 tasks ({size:,} bytes), {requests} scrapes over HTTP")
    print(f"    {'':<34} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        f"    {'relayna /metrics':<34} {_pct(scrape_ms, 0.5):>8.2f} {_pct(scrape_ms, 0.99):>8.2f}"
        "   (target < 10 ms)"
    )
    print(
        f"    {'relayna exposition() in-process':<34} {_pct(direct_ms, 0.5):>8.2f} "
        f"{_pct(direct_ms, 0.99):>8.2f}"
    )
    print(
        f"    {'bare Starlette route, same bytes':<34} {_pct(floor_ms, 0.5):>8.2f} "
        f"{_pct(floor_ms, 0.99):>8.2f}   (the server's floor, same server, interleaved)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks observability")
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per worker round (a)")
    parser.add_argument("--rounds", type=int, default=3, help="off/on rounds for (a)")
    parser.add_argument("--requests", type=int, default=500, help="requests for (c) and (d)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip (a,b,c,d)")
    args = parser.parse_args(argv)
    logging.getLogger("relayna").setLevel(logging.ERROR)  # (d) retries some tasks on purpose
    skip = set(args.skip.split(",")) - {""}
    print(f"observability benchmark ({os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f})")
    needs_servers = bool({"a", "c"} - skip)
    amqp, redis = amqp_and_redis_urls() if needs_servers else ("", "")
    if "a" not in skip:
        bench_worker(amqp, redis, args.tasks, args.rounds)
    if "b" not in skip:
        bench_graph()
    if "c" not in skip:
        anyio.run(_feed, redis, args.requests)
    if "d" not in skip:
        anyio.run(_metrics, args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
