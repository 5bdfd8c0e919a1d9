"""The broker's own share of status latency: publish -> stream -> consumer.

The status path starts with a RabbitMQ stream (the status queue). This
measures that hop alone, with nothing of relayna's status plane: one
publisher at a fixed rate, one consumer reading the stream from ``last``,
latency = publish start to delivery in the consumer (same process, same
clock). Run with the native client and, on asyncio, aiormq (the client the
original relayna used through aio-pika), so the floor is measured twice.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Literal

import anyio

from relayna.errors import BrokerError
from relayna.transport import QueueSpec, open_broker

__all__ = ["stream_hop_latency"]


async def stream_hop_latency(
    amqp_url: str,
    rate: float,
    seconds: float,
    *,
    adapter: Literal["native", "aiormq"] = "native",
    min_events: int = 400,
) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, messages) of publish -> stream consumer at ``rate``/s.

    At least ``min_events`` messages (the p99 of 80 is their maximum).
    """
    queue = f"bench-floor.{uuid.uuid4().hex[:8]}"
    total = max(int(rate * seconds), min_events)
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    async with open_broker(amqp_url, adapter=adapter) as broker:
        await broker.declare_queue(
            QueueSpec(name=queue, durable=True, arguments={"x-queue-type": "stream"})
        )
        try:
            ready = anyio.Event()
            done = anyio.Event()

            async def consume() -> None:
                while True:  # a fresh stream can answer stream_not_found: retry
                    try:
                        async with broker.consume(queue, prefetch=500, offset="last") as consumer:
                            ready.set()
                            async for delivery in consumer:
                                latencies.append(time.perf_counter() - sent[delivery.body])
                                await delivery.ack()
                                if len(latencies) >= total:
                                    done.set()
                                    return
                    except BrokerError:
                        await anyio.sleep(0.05)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await ready.wait()
                await anyio.sleep(0.2)
                interval = 1.0 / rate
                next_at = time.perf_counter()
                for i in range(total):
                    body = b"m%d" % i
                    sent[body] = time.perf_counter()
                    tg.start_soon(broker.publish, "", queue, body)  # confirms overlap
                    next_at += interval
                    delay = next_at - time.perf_counter()
                    await anyio.sleep(max(delay, 0))
                with anyio.fail_after(30):
                    await done.wait()
        finally:
            await broker.delete_queue(queue)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, len(ordered)
