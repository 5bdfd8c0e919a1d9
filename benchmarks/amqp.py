"""AMQP throughput: relayna's native client (asyncio, trio) vs plain aiormq and aio-pika.

(a) publish N persistent 1 KB messages with confirms, pipelined;
(b) consume + ack them with prefetch 100. Prints msgs/s and ratios.

The references are the libraries themselves, written the way their own docs
write the fastest path: **plain aiormq** (``basic_publish`` on a confirming
channel, ``basic_consume`` with a callback acking each message) and **plain
aio-pika** (a confirming channel, ``queue.iterator()``). Ratios are against
plain aiormq. relayna's aiormq *adapter* (the ``Broker`` contract on top of
aiormq) is an extra row: it is not a reference.

``--rounds R`` (default 3): every client runs once per round and the order of
the clients rotates between rounds, so drift on a shared machine hits each
alike; the table shows the median and the range over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import anyio

from benchmarks._rounds import rotated

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


async def _bench_aiormq(url: str) -> tuple[float, float]:
    import aiormq
    from pamqp.commands import Basic

    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel()  # publisher confirms are on by default
        q = f"bench.aiormq.{uuid.uuid4().hex[:8]}"
        await ch.queue_declare(q, durable=True)
        props = Basic.Properties(delivery_mode=2)
        sem = asyncio.Semaphore(WINDOW)

        async def one() -> None:
            async with sem:
                await ch.basic_publish(BODY, routing_key=q, properties=props)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(N)))
        t_pub = time.perf_counter() - t0
        await ch.basic_qos(prefetch_count=PREFETCH)
        done = asyncio.Event()
        count = 0

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal count
            await message.channel.basic_ack(message.delivery.delivery_tag)
            count += 1
            if count == N:
                done.set()

        t0 = time.perf_counter()
        consume_ok = await ch.basic_consume(q, on_message)
        await done.wait()
        t_con = time.perf_counter() - t0
        await ch.basic_cancel(consume_ok.consumer_tag)
        await ch.queue_delete(q)
    finally:
        await conn.close()
    return N / t_pub, N / t_con


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):>9,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks amqp")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (client order rotates)")
    args = parser.parse_args(argv)
    url = _url()
    runs: list[tuple[str, Callable[[], Awaitable[tuple[float, float]]], str]] = [
        ("native/asyncio", lambda: _bench_relayna(url, "native"), "asyncio"),
        ("native/trio", lambda: _bench_relayna(url, "native"), "trio"),
        ("aiormq", lambda: _bench_aiormq(url), "asyncio"),
        ("aio-pika", lambda: _bench_aio_pika(url), "asyncio"),
        ("aiormq adapter", lambda: _bench_relayna(url, "aiormq"), "asyncio"),
    ]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in runs}
    for r in range(args.rounds):
        for name, fn, backend in rotated(runs, r):
            samples[name].append(anyio.run(fn, backend=backend))
    pub = {name: [p for p, _ in xs] for name, xs in samples.items()}
    con = {name: [c for _, c in xs] for name, xs in samples.items()}
    ref_pub, ref_con = statistics.median(pub["aiormq"]), statistics.median(con["aiormq"])
    print(
        f"{N} persistent 1 KB messages, confirms pipelined ({WINDOW} in flight), prefetch"
        f" {PREFETCH}; median (range) over {args.rounds} rounds, client order rotated"
    )
    print(
        f"{'client':<16}{'publish msg/s':>26}{'x aiormq':>10}{'consume msg/s':>26}{'x aiormq':>10}"
    )
    for name in samples:
        p, c = statistics.median(pub[name]), statistics.median(con[name])
        print(
            f"{name:<16}{_median_range(pub[name]):>26}{p / ref_pub:>10.2f}"
            f"{_median_range(con[name]):>26}{c / ref_con:>10.2f}"
        )
    na_p, nt_p = statistics.median(pub["native/asyncio"]), statistics.median(pub["native/trio"])
    na_c, nt_c = statistics.median(con["native/asyncio"]), statistics.median(con["native/trio"])
    print(f"native trio / native asyncio: publish {nt_p / na_p:.2f}, consume {nt_c / na_c:.2f}")
    print("aiormq adapter = relayna's Broker contract over aiormq (not a reference)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
