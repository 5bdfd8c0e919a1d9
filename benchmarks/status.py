"""Status path: hub throughput and SSE latency.

(a) Hub throughput: N status messages on a memory-broker status stream, the
    StatusHub (prefetch 200) writes them to real Redis through the status
    script; reference: a raw redis-py asyncio loop doing one EVALSHA of the
    same Lua per event with 16 concurrent writers (and the relayna store
    alone, coredis, same 16 writers).
(b) SSE latency: hypercorn + httpx on loopback, one client following a task
    while events are written at 20 and 500 events/s; latency = write start to
    frame parsed by the client; p50/p99. Twice: store write -> SSE, and (with
    RELAYNA_TEST_AMQP_URL) worker publish -> RabbitMQ stream -> hub -> Redis -> SSE.
(c) 2,000 idle SSE connections: server RSS per connection, relayna vs a bare
    hypercorn + sse-starlette endpoint, servers in subprocesses
    (:mod:`benchmarks._status_idle`); the relayna server's Redis connections.

``python -m benchmarks status [--events N] [--backend asyncio|trio]``
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


async def bench_hub(url: str, n: int) -> float:
    """Events/s: memory-broker stream -> StatusHub -> Redis (16 tasks interleaved)."""
    from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
    from relayna.topology import StatusTopologyBase
    from relayna.transport import open_broker, open_store

    unique = uuid.uuid4().hex[:6]
    topology = StatusTopologyBase(status_exchange=f"bx.{unique}", status_queue=f"bq.{unique}")
    async with open_broker("memory://") as broker, open_store(url) as store:
        await topology.plan().apply(broker)
        for i in range(n):
            body = orjson.dumps(_event(f"t{i % WRITERS}", i))
            await broker.publish(topology.status_exchange, "s", body)
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
    return n / elapsed


@asynccontextmanager
async def _server(app: Any) -> AsyncIterator[str]:
    import sniffio
    from hypercorn.config import Config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.accesslog = config.errorlog = None
    config.graceful_timeout = 1.0
    sock.close()
    stop = anyio.Event()

    async def trigger() -> None:
        await stop.wait()

    async with anyio.create_task_group() as tg:
        if sniffio.current_async_library() == "trio":
            from hypercorn.trio import serve as trio_serve

            tg.start_soon(lambda: trio_serve(app, config, shutdown_trigger=trigger))
        else:
            from hypercorn.asyncio import serve as asyncio_serve

            tg.start_soon(lambda: asyncio_serve(app, config, shutdown_trigger=trigger))
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop.set()


async def bench_sse_latency(
    url: str, rate: float, seconds: float, amqp_url: str | None = None
) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, events) for one SSE client at ``rate`` events/s.

    With ``amqp_url``: worker publish to the RabbitMQ status stream -> hub ->
    Redis -> SSE (the full path); without: store write -> Redis -> SSE.
    """
    import httpx
    from starlette.applications import Starlette

    from relayna.api import RuntimeConfig, open_relayna_runtime, status_routes
    from relayna.status import StatusStoreConfig
    from relayna.topology import StatusTopologyBase

    total = max(int(rate * seconds), 10)
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
    )
    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    async with open_relayna_runtime(config) as runtime:

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
            yield {"relayna": runtime}

        app = Starlette(routes=status_routes(), lifespan=lifespan)
        async with _server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            ready = anyio.Event()

            async def follow() -> None:
                async with client.stream("GET", "/events/bench") as response:
                    buffer = ""
                    async for chunk in response.aiter_text():
                        now = time.perf_counter()
                        buffer += chunk
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
                interval = 1.0 / rate
                next_at = time.perf_counter()
                for i in range(total):
                    event = _event("bench", i)
                    if i == total - 1:
                        event["status"] = "completed"
                    sent_at[str(event["event_id"])] = time.perf_counter()
                    if topology is not None and runtime.broker is not None:
                        await runtime.broker.publish(
                            topology.status_exchange, "bench", orjson.dumps(event)
                        )
                    else:
                        await runtime.status.write(event)
                    next_at += interval
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        await anyio.sleep(delay)
            runtime.request_shutdown()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, len(ordered)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks status")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--sse-seconds", type=float, default=4.0)
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
    for path, broker in (("store->SSE", None), ("publish->hub->SSE", amqp)):
        if path != "store->SSE" and broker is None:
            continue
        for rate in (20.0, 500.0):
            p50, p99, count = anyio.run(
                bench_sse_latency, url, rate, args.sse_seconds, broker, backend=args.backend
            )
            print(f"SSE latency {path} @ {rate:5.0f} ev/s ({count} events, {args.backend}): "
                  f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")  # fmt: skip
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
