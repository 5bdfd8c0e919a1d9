"""AMQP throughput: native client (asyncio, trio) vs aiormq vs aio-pika.

(a) publish N persistent 1 KB messages with confirms, pipelined;
(b) consume + ack them with prefetch 100. Prints msgs/s and ratios.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import anyio

N = 20_000
BODY = b"x" * 1024
PREFETCH = 100
WINDOW = 1000  # publishes in flight


def _url() -> str:
    url = os.environ.get("RELAYNA_TEST_AMQP_URL")
    if url:
        return url
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    from services import Services

    svc = Services.start()
    os.environ.update(svc.env())
    return svc.amqp_url


async def _bench_relayna(url: str, adapter: str) -> tuple[float, float]:
    from relayna.transport import open_broker
    from relayna.transport._broker import Properties, QueueSpec

    q = f"bench.{adapter}.{uuid.uuid4().hex[:8]}"
    props = Properties(delivery_mode=2)
    async with open_broker(url, adapter=adapter) as broker:  # type: ignore[arg-type]
        await broker.declare_queue(QueueSpec(q, durable=True))
        limiter = anyio.Semaphore(WINDOW)

        async def one() -> None:
            async with limiter:
                await broker.publish("", q, BODY, props)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(N):
                await limiter.acquire()
                limiter.release()
                tg.start_soon(one)
        t_pub = time.perf_counter() - t0
        t0 = time.perf_counter()
        count = 0
        async with broker.consume(q, prefetch=PREFETCH) as consumer:
            async for d in consumer:
                await d.ack()
                count += 1
                if count == N:
                    break
        t_con = time.perf_counter() - t0
        await broker.delete_queue(q)
    return N / t_pub, N / t_con


async def _bench_aio_pika(url: str) -> tuple[float, float]:
    import aio_pika

    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        queue = await ch.declare_queue(f"bench.pika.{uuid.uuid4().hex[:8]}", durable=True)
        sem = asyncio.Semaphore(WINDOW)

        async def one() -> None:
            async with sem:
                await ch.default_exchange.publish(
                    aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue.name,
                )

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(N)))
        t_pub = time.perf_counter() - t0
        await ch.set_qos(prefetch_count=PREFETCH)
        t0 = time.perf_counter()
        count = 0
        async with queue.iterator() as it:
            async for msg in it:
                await msg.ack()
                count += 1
                if count == N:
                    break
        t_con = time.perf_counter() - t0
        await queue.delete(if_unused=False, if_empty=False)
    return N / t_pub, N / t_con


def main(argv: list[str]) -> int:
    url = _url()
    runs: list[tuple[str, Callable[[], Awaitable[tuple[float, float]]], str]] = [
        ("native/asyncio", lambda: _bench_relayna(url, "native"), "asyncio"),
        ("native/trio", lambda: _bench_relayna(url, "native"), "trio"),
        ("aiormq", lambda: _bench_relayna(url, "aiormq"), "asyncio"),
        ("aio-pika (raw)", lambda: _bench_aio_pika(url), "asyncio"),
    ]
    results: dict[str, tuple[float, float]] = {}
    for name, fn, backend in runs:
        results[name] = anyio.run(fn, backend=backend)
    ref = results["aiormq"]
    print(
        f"{N} persistent 1 KB messages, confirms pipelined ({WINDOW} in flight), prefetch {PREFETCH}"
    )
    print(
        f"{'client':<16}{'publish msg/s':>15}{'x aiormq':>10}{'consume msg/s':>15}{'x aiormq':>10}"
    )
    for name, (pub, con) in results.items():
        print(f"{name:<16}{pub:>15,.0f}{pub / ref[0]:>10.2f}{con:>15,.0f}{con / ref[1]:>10.2f}")
    na, nt = results["native/asyncio"], results["native/trio"]
    print(f"native trio / native asyncio: publish {nt[0] / na[0]:.2f}, consume {nt[1] / na[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
