"""The fair reference for the status hub: the same work, hand-written in asyncio.

The hub consumes the status stream, decodes each event, and stores the events
with the status script, pipelining up to ``write_batch`` (128) script calls per
Redis round trip before acking them. A one-EVALSHA-per-round-trip loop with no
broker is not that work. This reference is what a careful asyncio programmer
would write for the same job with the libraries such a program would use:

* **aiormq** consumes the RabbitMQ stream (prefetch 200, ``x-stream-offset``
  ``first``), appending deliveries to a buffer from its callback;
* one writer task takes up to 128 buffered events, decodes each (orjson) for
  its keys, sends the same script for all of them in one **redis-py** pipeline
  (``transaction=False``), then acks the last delivery tag with ``multiple``.

What it leaves out that the hub does: envelope validation, per-task ordering
guarantees across batches, gap detection, metrics and offsets - so it is a
floor for the hub, not a peer with fewer features.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

__all__ = ["bench_hub_reference"]

BATCH = 128
PREFETCH = 200
TTL_MS = 86_400_000
MAXLEN = 50


async def bench_hub_reference(url: str, n: int, amqp_url: str, fill: Any) -> float:
    """Events/s from the clock's start (consumer starting) to the last event
    stored. ``fill(broker, topology)`` publishes the ``n`` events first, the same
    way :func:`benchmarks.status.bench_hub` does."""
    import aiormq
    import redis.asyncio as redis_asyncio

    from relayna.status import WRITE_STATUS_SCRIPT
    from relayna.topology import StatusTopologyBase
    from relayna.transport import open_broker

    unique = uuid.uuid4().hex[:6]
    topology = StatusTopologyBase(status_exchange=f"rx.{unique}", status_queue=f"rq.{unique}")
    async with open_broker(amqp_url) as broker:
        await topology.plan().apply(broker)
        await fill(broker, topology)
    prefix = f"bench-ref-{unique}"
    client = redis_asyncio.from_url(url)
    sha = await client.script_load(WRITE_STATUS_SCRIPT.lua)
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.basic_qos(prefetch_count=PREFETCH)
        pending: list[tuple[int, bytes]] = []
        wake = asyncio.Event()

        async def on_message(message: Any) -> None:
            pending.append((message.delivery.delivery_tag, message.body))
            wake.set()

        start = time.perf_counter()
        consume_ok = await channel.basic_consume(
            topology.status_queue, on_message, arguments={"x-stream-offset": "first"}
        )
        stored = 0
        while stored < n:
            await wake.wait()
            wake.clear()
            while pending:
                batch = pending[:BATCH]
                del pending[:BATCH]
                pipe = client.pipeline(transaction=False)
                for _, body in batch:
                    event = orjson.loads(body)
                    task = event["task_id"]
                    pipe.evalsha(
                        sha, 2, f"{prefix}:event:{task}:{event['event_id']}",
                        f"{prefix}:history:{task}", body, TTL_MS, MAXLEN,
                        f"{prefix}:channel:{task}", task,
                    )  # fmt: skip
                await pipe.execute()
                await channel.basic_ack(batch[-1][0], multiple=True)
                stored += len(batch)
        elapsed = time.perf_counter() - start
        await channel.basic_cancel(consume_ok.consumer_tag)
        await channel.queue_delete(topology.status_queue)
        await channel.exchange_delete(topology.status_exchange)
    finally:
        await connection.close()
        await client.aclose()
    return n / elapsed
