"""Status path: hub throughput and SSE latency.

(a) Hub throughput: N status messages on a status stream (the memory broker,
    and the real RabbitMQ stream when RELAYNA_TEST_AMQP_URL is set), the
    StatusHub (prefetch 200) writes them to real Redis through the status
    script; reference: a raw redis-py asyncio loop doing one EVALSHA of the
    same Lua per event with 16 concurrent writers (and the relayna store
    alone, coredis, same 16 writers).
(b) SSE latency: ``relayna.api.serve_asgi`` (hypercorn) + httpx on loopback,
    one client following a task while events are written at 20 and 500
    events/s (at least ``--sse-min-events``, 400, per run; ``--sse-repeat``
    runs per case, 3, interleaved across the cases and pooled); latency =
    write start to frame parsed by the client; p50/p99 of the pooled events,
    each run's own p99, and p50/p99 of the write alone. Twice: store write -> SSE, and (with RELAYNA_TEST_AMQP_URL) worker
    publish -> RabbitMQ stream -> hub -> Redis -> SSE. On asyncio the full
    path is also measured with relayna's routes on uvicorn, and on the
    original's design rebuilt with its libraries
    (:mod:`benchmarks._original_path`), same client, same run. ``python -m
    benchmarks sse`` compares SSE delivery on asyncio and trio (bare
    sse-starlette vs relayna).
(c) 2,000 idle SSE connections: server RSS per connection, relayna vs a bare
    hypercorn + sse-starlette endpoint, servers in subprocesses
    (:mod:`benchmarks._status_idle`); the relayna server's Redis connections.

``python -m benchmarks status [--events N] [--backend asyncio|trio] [--sse-repeat N]``
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import orjson

WRITERS = 16


def _redis_url() -> str:
    url = os.environ.get("RELAYNA_TEST_REDIS_URL")
    if url:
        return url
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from services import Services

    svc = Services.start()
    os.environ.update(svc.env())
    return svc.redis_url


def _event(task: str, n: int) -> dict[str, Any]:
    return {"task_id": task, "event_id": f"{task}-{n}", "status": "running", "message": "x" * 64}


async def bench_raw_evalsha(url: str, n: int) -> float:
    """Events/s: redis-py, one EVALSHA per event, 16 writers (asyncio only)."""
    import redis.asyncio as redis_asyncio

    from relayna.status import WRITE_STATUS_SCRIPT

    prefix = f"bench-raw-{uuid.uuid4().hex[:6]}"
    client = redis_asyncio.from_url(url)
    sha = await client.script_load(WRITE_STATUS_SCRIPT.lua)
    tasks = [f"t{i}" for i in range(WRITERS)]

    async def writer(task: str, count: int) -> None:
        for i in range(count):
            payload = orjson.dumps(_event(task, i))
            await client.evalsha(
                sha, 2, f"{prefix}:event:{task}:{task}-{i}", f"{prefix}:history:{task}",
                payload, 86_400_000, 50, f"{prefix}:channel:{task}", task,
            )  # fmt: skip

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for task in tasks:
            tg.start_soon(writer, task, n // WRITERS)
    elapsed = time.perf_counter() - start
    await client.aclose()
    return (n // WRITERS * WRITERS) / elapsed


async def bench_store(url: str, n: int) -> float:
    """Events/s: relayna StatusStore.write (coredis), 16 writers."""
    from relayna.status import StatusStore, StatusStoreConfig
    from relayna.transport import open_store

    async with open_store(url) as store:
        status = StatusStore(store, StatusStoreConfig(prefix=f"bench-st-{uuid.uuid4().hex[:6]}"))

        async def writer(task: str, count: int) -> None:
            for i in range(count):
                await status.write(_event(task, i))

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(WRITERS):
                tg.start_soon(writer, f"t{i}", n // WRITERS)
        return (n // WRITERS * WRITERS) / (time.perf_counter() - start)


async def _fill_stream(broker: Any, topology: Any, n: int) -> None:
    """``n`` events for 16 tasks on the status exchange, confirms pipelined,
    each task's events in order."""

    async def publish(start: int) -> None:
        for i in range(start, n, WRITERS):
            body = orjson.dumps(_event(f"t{i % WRITERS}", i))
            await broker.publish(topology.status_exchange, "s", body)

    async with anyio.create_task_group() as tg:
        for start in range(WRITERS):
            tg.start_soon(publish, start)


async def bench_hub(url: str, n: int, broker_url: str = "memory://") -> float:
    """Events/s: status stream -> StatusHub -> Redis (16 tasks interleaved).

    The stream is filled first; the clock runs from the hub's start to the
    last event stored. ``broker_url`` an AMQP URL: the real RabbitMQ stream
    (its server shares the CPUs), else the memory broker.
    """
    from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
    from relayna.topology import StatusTopologyBase
    from relayna.transport import open_broker, open_store

    unique = uuid.uuid4().hex[:6]
    topology = StatusTopologyBase(status_exchange=f"bx.{unique}", status_queue=f"bq.{unique}")
    async with open_broker(broker_url) as broker, open_store(url) as store:
        await topology.plan().apply(broker)
        await _fill_stream(broker, topology, n)
        status = StatusStore(store, StatusStoreConfig(prefix=f"bench-hub-{unique}"))
        hub = StatusHub(
            broker, status, StatusHubConfig(queue=topology.status_queue, offset="first")
        )
        async with anyio.create_task_group() as tg:
            start = time.perf_counter()
            await tg.start(hub.run)
            while True:
                if hub.stats.stored >= n:
                    break
                await anyio.sleep(0.005)
            elapsed = time.perf_counter() - start
            tg.cancel_scope.cancel()
        if not broker_url.startswith("memory"):
            await broker.delete_queue(topology.status_queue)
            await broker.delete_exchange(topology.status_exchange)
    return n / elapsed


@asynccontextmanager
async def _server(app: Any) -> AsyncIterator[str]:
    """relayna's own ``serving`` (hypercorn on the running backend) on a free port."""
    from relayna.api import serving

    async with serving(app, graceful_timeout=1.0) as base:
        yield base


@dataclass
class SseLatency:
    """One run, or several pooled: seconds per event from write start to frame
    parsed by the client, and of which the write itself (store write, or
    publish with confirm); ``runs_p99``: each pooled run's own p99 (ms)."""

    latencies: list[float]
    writes: list[float]
    runs_p99: list[float]

    @classmethod
    def pooled(cls, runs: list[SseLatency]) -> SseLatency:
        return cls(
            [x for r in runs for x in r.latencies], [x for r in runs for x in r.writes],
            [p for r in runs for p in r.runs_p99],
        )  # fmt: skip

    @property
    def events(self) -> int:
        return len(self.latencies)

    def summary(self, write: str = "write") -> str:
        """``p50 / p99`` of the events, each run's p99, ``p50 / p99`` of the writes (ms)."""
        each = ", ".join(f"{p:.2f}" for p in self.runs_p99)
        return (
            f"p50 {_pct(self.latencies, 0.5):6.2f} ms  p99 {_pct(self.latencies, 0.99):6.2f} ms"
            f"  (p99 per run: {each}; the {write} alone: p50 {_pct(self.writes, 0.5):5.2f} ms"
            f"  p99 {_pct(self.writes, 0.99):5.2f} ms)"
        )


async def bench_sse_latency(
    url: str,
    rate: float,
    seconds: float,
    amqp_url: str | None = None,
    min_events: int = 10,
    store_adapter: str = "native",
    server: str = "hypercorn",
) -> SseLatency:
    """p50/p99 for one SSE client at ``rate`` events/s, ``max(rate * seconds, min_events)`` events.

    With ``amqp_url``: worker publish to the RabbitMQ status stream -> hub ->
    Redis -> SSE (the full path); without: store write -> Redis -> SSE.
    ``server``: relayna's own ``serving`` (hypercorn, both backends) or
    ``"uvicorn"`` (asyncio only: the server most asyncio apps deploy on).
    """
    from starlette.applications import Starlette

    from relayna.api import RuntimeConfig, open_relayna_runtime, status_routes
    from relayna.status import StatusStoreConfig
    from relayna.topology import StatusTopologyBase

    total = max(int(rate * seconds), min_events, 10)
    unique = uuid.uuid4().hex[:6]
    topology = (
        None
        if amqp_url is None
        else StatusTopologyBase(status_exchange=f"bsx.{unique}", status_queue=f"bsq.{unique}")
    )
    config = RuntimeConfig(
        store_url=url,
        broker_url=amqp_url,
        topology=topology,
        store=StatusStoreConfig(prefix=f"bench-sse-{unique}"),
        store_adapter=store_adapter,  # type: ignore[arg-type]
    )
    async with open_relayna_runtime(config) as runtime:

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        async def write(event: dict[str, Any]) -> None:
            if topology is not None and runtime.broker is not None:
                await runtime.broker.publish(topology.status_exchange, "bench", orjson.dumps(event))
            else:
                await runtime.status.write(event)

        app = Starlette(routes=status_routes(), lifespan=lifespan)
        if server == "uvicorn":
            from benchmarks._original_path import serve_uvicorn

            serve = serve_uvicorn(app, lifespan=True)
        else:
            serve = _server(app)
        async with serve as base:
            latency = await _follow_while_writing(base, write, rate, total)
        runtime.request_shutdown()
    if topology is not None and amqp_url is not None:  # leave no stream behind
        from relayna.transport import open_broker

        async with open_broker(amqp_url) as broker:
            await broker.delete_queue(topology.status_queue)
            await broker.delete_exchange(topology.status_exchange)
    return latency


async def bench_original_latency(
    url: str, rate: float, seconds: float, amqp_url: str, min_events: int = 10
) -> SseLatency:
    """The same measurement on the original's design (:mod:`benchmarks._original_path`)."""
    from benchmarks._original_path import original_path

    async with original_path(amqp_url, url) as (base, publish):
        return await _follow_while_writing(
            base, publish, rate, max(int(rate * seconds), min_events, 10)
        )


async def _follow_while_writing(
    base: str, write: Callable[[dict[str, Any]], Awaitable[None]], rate: float, total: int
) -> SseLatency:
    """One httpx client follows ``/events/bench`` while ``write`` sends ``total`` events at ``rate``/s.

    Latency = write start -> frame parsed by the client (same process, same
    clock). The heap is collected once before the measured loop, so the
    garbage of starting the servers and the client is not collected inside it.
    """
    import httpx

    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    writes: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        ready = anyio.Event()

        async def follow() -> None:
            async with client.stream("GET", "/events/bench") as response:
                buffer = ""
                async for chunk in response.aiter_text():
                    now = time.perf_counter()
                    buffer += chunk.replace("\r\n", "\n")
                    *frames, buffer = buffer.split("\n\n")
                    for frame in frames:
                        if frame.startswith("event: ready"):
                            ready.set()
                        elif frame.startswith("id: "):
                            event_id = frame.split("\n", 1)[0][4:]
                            latencies.append(now - sent_at[event_id])

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await ready.wait()
            gc.collect()
            interval = 1.0 / rate
            next_at = time.perf_counter()
            for i in range(total):
                event = _event("bench", i)
                if i == total - 1:
                    event["status"] = "completed"
                sent_at[str(event["event_id"])] = begun = time.perf_counter()
                await write(event)
                writes.append(time.perf_counter() - begun)
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await anyio.sleep(delay)
    return SseLatency(latencies, writes, [_pct(latencies, 0.99)])


def _pct(values: list[float], q: float) -> float:
    """Milliseconds; the median, or the value at index ``int(n * q)`` of the sorted list."""
    ordered = sorted(values)
    if q == 0.5:
        return statistics.median(ordered) * 1000
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _erlang_busy_wait() -> str:
    """How the local RabbitMQ's schedulers wait after work (``+sbwt``, from
    beam.smp's command line; RabbitMQ 3.10 passes ``none`` by default, older
    releases let Erlang busy-wait, which costs latency on shared cores)."""
    for cmdline in _proc_cmdlines("beam.smp"):
        args = cmdline.split("\0")
        values = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-sbwt", "+sbwt")]
        return f"+sbwt {values[-1]}" if values else "Erlang default"
    return "unknown (no local beam.smp)"


def _proc_cmdlines(name: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if name in cmdline.split("\0", 1)[0]:
            found.append(cmdline)
    return found


ORIGINAL_LEGEND = """\
legend - "the original's status path REBUILT": not the original package (it ships
through GitHub releases, not the package index, so it cannot be installed here)
but its status path rebuilt from ANCHOR.md section 1.5 with the libraries it uses
(benchmarks/_original_path.py). Reproduced: aio-pika publisher with confirms; hub
consuming the stream (prefetch 200, offset last), one asyncio task per message
under a per-task_id lock, SET NX EX of the dedupe marker then one pipeline
LPUSH + LTRIM + EXPIRE + PUBLISH (redis-py), ack after; SSE subscribing a redis-py
PubSub, replaying the LRANGE history and skipping ids already sent. Differs: its
SSE response is sse-starlette's EventSourceResponse on uvicorn (h11, no uvloop)
as configured by this rebuild (ping interval, headers), not the original's own
response code."""


def _sse_case(args: argparse.Namespace, url: str, broker: str | None, rate: float,
              case: str) -> tuple[SseLatency, str]:  # fmt: skip
    if case == "original":
        assert broker is not None
        lat = anyio.run(
            bench_original_latency, url, rate, args.sse_seconds, broker,
            args.sse_min_events, backend="asyncio",
        )  # fmt: skip
        return (
            lat,
            "the original's status path REBUILT (see the legend): aio-pika, redis-py, sse-starlette, uvicorn",
        )
    if case == "uvicorn":
        lat = anyio.run(
            bench_sse_latency, url, rate, args.sse_seconds, broker,
            args.sse_min_events, "native", "uvicorn", backend="asyncio",
        )  # fmt: skip
        return lat, "relayna's routes on uvicorn, asyncio, store native"
    lat = anyio.run(
        bench_sse_latency, url, rate, args.sse_seconds, broker,
        args.sse_min_events, case, backend=args.backend,
    )  # fmt: skip
    return lat, f"relayna, {args.backend}, store {case}"


def _sse_rows(args: argparse.Namespace, url: str, path: str, broker: str | None) -> None:
    """One row per case: ``--sse-repeat`` runs, interleaved (every case once,
    then again), so each case sees the same phases of the machine; the row
    pools their events and lists each run's own p99."""
    for rate in (20.0, 500.0):
        cases = ["native", "coredis"] if rate == 20.0 else ["native"]
        if broker is not None and args.backend == "asyncio":  # uvicorn, the original: asyncio
            cases += ["uvicorn", "original"] if rate == 20.0 else ["original"]
        runs: dict[str, list[SseLatency]] = {case: [] for case in cases}
        labels: dict[str, str] = {}
        for _ in range(args.sse_repeat):
            for case in cases:
                lat, labels[case] = _sse_case(args, url, broker, rate, case)
                runs[case].append(lat)
        for case in cases:
            lat = SseLatency.pooled(runs[case])
            print(f"SSE latency {path} @ {rate:5.0f} ev/s ({lat.events} events, {labels[case]}): "
                  f"{lat.summary('write' if broker is None else 'publish + confirm')}")  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks status")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--sse-seconds", type=float, default=4.0)
    parser.add_argument(
        "--sse-min-events", type=int, default=400,
        help="at least this many events per SSE run (p99 of 80 events is their maximum)",
    )  # fmt: skip
    parser.add_argument(
        "--sse-repeat", type=int, default=3,
        help="runs per SSE latency case, interleaved and pooled (the box drifts: one run "
        "of 400 events gives a noisy p99)",
    )  # fmt: skip
    parser.add_argument(
        "--hub-rounds", type=int, default=3,
        help="rounds of the RabbitMQ-stream hub and its fair reference, interleaved",
    )  # fmt: skip
    parser.add_argument("--idle", type=int, default=2000, help="idle SSE connections (0: skip)")
    args = parser.parse_args(argv)
    url = _redis_url()
    n = args.events

    raw = anyio.run(bench_raw_evalsha, url, n, backend="asyncio")
    print(f"raw redis-py EVALSHA x{WRITERS} writers : {raw:10.0f} events/s  (reference)")
    store = anyio.run(bench_store, url, n, backend=args.backend)
    print(f"relayna StatusStore.write x{WRITERS} ({args.backend}) : {store:10.0f} events/s  "
          f"ratio {store / raw:.2f}")  # fmt: skip
    hub = anyio.run(bench_hub, url, n, backend=args.backend)
    print(f"relayna StatusHub memory-stream->Redis ({args.backend}) : {hub:10.0f} events/s  "
          f"ratio {hub / raw:.2f}")  # fmt: skip
    amqp = os.environ.get("RELAYNA_TEST_AMQP_URL")
    if amqp:
        print(f"RabbitMQ scheduler busy-wait: {_erlang_busy_wait()}")
        from benchmarks._hub_reference import bench_hub_reference

        fill = partial(_fill_stream, n=n)
        hubs: list[float] = []
        refs: list[float] = []
        for _ in range(args.hub_rounds):  # interleaved: hub, reference, hub, ...
            hubs.append(anyio.run(bench_hub, url, n, amqp, backend=args.backend))
            refs.append(anyio.run(bench_hub_reference, url, n, amqp, fill, backend="asyncio"))
        hub_amqp, ref = statistics.median(hubs), statistics.median(refs)
        print(f"fair reference RabbitMQ-stream->Redis (aiormq consumer + redis-py pipelined "
              f"EVALSHA x128, asyncio): {ref:10.0f} events/s  "
              f"(range {min(refs):.0f}-{max(refs):.0f}; benchmarks/_hub_reference.py)")  # fmt: skip
        print(f"relayna StatusHub RabbitMQ-stream->Redis ({args.backend}) : {hub_amqp:10.0f} "
              f"events/s  (range {min(hubs):.0f}-{max(hubs):.0f})  {hub_amqp / ref:.2f}x the fair "
              f"reference (target >= 1.2x), {hub_amqp / raw:.2f}x the one-EVALSHA loop; "
              f"medians of {args.hub_rounds} interleaved rounds; RabbitMQ shares the CPUs")  # fmt: skip
        from benchmarks._broker_floor import stream_hop_latency

        adapters = ["native", "aiormq"] if args.backend == "asyncio" else ["native"]
        for rate in (20.0, 500.0):
            for adapter in adapters:
                p50, p99, count = anyio.run(
                    partial(
                        stream_hop_latency, amqp, rate, args.sse_seconds,
                        adapter=adapter, min_events=args.sse_min_events,
                    ),
                    backend=args.backend,
                )  # fmt: skip
                print(f"broker floor publish->stream->consumer @ {rate:5.0f} ev/s ({count}, "
                      f"{adapter}, {args.backend}): p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")  # fmt: skip
    if amqp and args.backend == "asyncio":
        print(ORIGINAL_LEGEND)
    for path, broker in (("store->SSE", None), ("publish->hub->SSE", amqp)):
        if path == "store->SSE" or broker is not None:
            _sse_rows(args, url, path, broker)
    if args.idle:
        from benchmarks._status_idle import measure

        bare = measure("bare", args.backend, args.idle, url)
        ours = measure("relayna", args.backend, args.idle, url)
        print(f"idle SSE x{args.idle} ({args.backend}): bare hypercorn+sse-starlette "
              f"{bare['per_conn_kib']:.1f} KiB/conn, relayna {ours['per_conn_kib']:.1f} KiB/conn "
              f"ratio {ours['per_conn_kib'] / bare['per_conn_kib']:.2f}; relayna Redis "
              f"connections {ours['redis_before']:.0f} -> {ours['redis_after']:.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
