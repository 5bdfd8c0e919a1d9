"""The original relayna's status path, rebuilt with its libraries, as a same-run reference.

The issue's latency target (p99 < 4 ms at 20 events/s) was set against the
original measured on "this machine kind", but this 2-vCPU box drifts in speed
by about 2x within minutes. So ``python -m benchmarks status`` also measures
the original's design in the same run, with the same client, RabbitMQ and
Redis, and prints relayna's figures next to it.

Rebuilt from ../shared/design/ANCHOR.md section 1.5 (asyncio only, as the
original):

* publisher: aio-pika, persistent message, publisher confirms;
* hub: aio-pika consumer on the stream queue (prefetch 200, offset ``last``),
  one asyncio task per message under a per-task_id lock; ``SET NX EX`` of the
  dedupe marker, then one pipeline LPUSH + LTRIM + EXPIRE + PUBLISH
  (redis-py asyncio), then ack;
* SSE: sse-starlette ``EventSourceResponse`` over an async generator
  (``ready``, subscribe a redis-py PubSub, LRANGE the history, replay, then
  ``get_message(timeout=keepalive)``, skipping ids already sent), served by
  uvicorn (h11, the asyncio loop; no uvloop, so both run on the same loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from benchmarks._redis import drop_prefix

__all__ = ["original_hub", "original_path", "serve_uvicorn"]


TTL = 86_400
MAXLEN = 50
TERMINAL = frozenset({"completed", "failed"})


def _keys(prefix: str, task_id: str) -> tuple[str, str]:
    return f"{prefix}:history:{task_id}", f"{prefix}:channel:{task_id}"


async def _store(redis: Any, prefix: str, event: dict[str, Any]) -> bool:
    task_id = event["task_id"]
    marker = f"{prefix}:event:{task_id}:{event['event_id']}"
    if not await redis.set(marker, "1", nx=True, ex=TTL):
        return False  # duplicate
    history, channel = _keys(prefix, task_id)
    payload = json.dumps(event)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(history, payload)
        pipe.ltrim(history, 0, MAXLEN - 1)
        pipe.expire(history, TTL)
        pipe.publish(channel, payload)
        await pipe.execute()
    return True


async def _hub(
    queue: Any,
    redis: Any,
    prefix: str,
    on_stored: Callable[[], None] | None = None,
    *,
    offset: str = "last",
) -> None:
    """The original's hub; ``on_stored`` is called after each event stored (not
    for duplicates): the end-to-end benchmark's clock.

    ``offset`` is the original's ``last`` by default; a benchmark that starts
    the hub next to the producers passes ``first`` on its fresh stream, or the
    events written before the consumer attached (outside the last chunk) are
    never read and the run waits forever."""
    locks: dict[str, asyncio.Lock] = {}
    running: set[asyncio.Task[None]] = set()

    async def handle(message: Any) -> None:
        event = json.loads(message.body)
        event.get("meta", {}).pop("auth_token", None)
        lock = locks.setdefault(event["task_id"], asyncio.Lock())
        async with lock:
            stored = await _store(redis, prefix, event)
        await message.ack()
        if stored and on_stored is not None:
            on_stored()

    async with queue.iterator(arguments={"x-stream-offset": offset}) as messages:
        async for message in messages:
            task = asyncio.create_task(handle(message))
            running.add(task)
            task.add_done_callback(running.discard)


original_hub = _hub


def _app(redis: Any, prefix: str) -> Any:
    from sse_starlette import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def events(task_id: str) -> AsyncIterator[dict[str, str]]:
        yield {"event": "ready", "data": "{}"}
        history, channel = _keys(prefix, task_id)
        pubsub = redis.pubsub()
        await pubsub.subscribe(channel)
        sent: set[str] = set()
        try:
            for raw in reversed(await redis.lrange(history, 0, -1)):
                event = json.loads(raw)
                sent.add(event["event_id"])
                yield {"id": event["event_id"], "event": "status", "data": raw.decode()}
                if event.get("status") in TERMINAL:
                    return
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=15.0)
                if message is None:
                    yield {"comment": "keepalive"}
                    continue
                event = json.loads(message["data"])
                if event["event_id"] in sent:
                    continue
                sent.add(event["event_id"])
                yield {"id": event["event_id"], "event": "status", "data": message["data"].decode()}
                if event.get("status") in TERMINAL:
                    return
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()

    async def route(request: Any) -> Any:
        return EventSourceResponse(events(request.path_params["task_id"]))

    return Starlette(routes=[Route("/events/{task_id}", route)])


@contextlib.asynccontextmanager
async def serve_uvicorn(app: Any, *, lifespan: bool = False) -> AsyncIterator[str]:
    """``app`` on uvicorn (h11, the running asyncio loop) on a free port; yields its base URL."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning",
        lifespan="on" if lifespan else "off", timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises why it could not start
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def original_path(
    amqp_url: str, redis_url: str
) -> AsyncIterator[tuple[str, Callable[[dict[str, Any]], Awaitable[None]]]]:
    """``(base_url, publish)``: the original's hub and SSE route, running.

    ``publish(event)`` is the worker's publish with confirm. Everything is
    deleted on exit (exchange, stream, Redis keys under a unique prefix).
    """
    import aio_pika
    import redis.asyncio as aioredis

    unique = uuid.uuid4().hex[:6]
    prefix = f"bench-orig-{unique}"
    redis = aioredis.from_url(redis_url)
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        publish_channel = await connection.channel()  # publisher confirms on
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=200)
        exchange = await publish_channel.declare_exchange(
            f"box.{unique}", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await consume_channel.declare_queue(
            f"boq.{unique}", durable=True, arguments={"x-queue-type": "stream"}
        )
        await queue.bind(exchange.name, "#")

        async def publish(event: dict[str, Any]) -> None:
            message = aio_pika.Message(
                json.dumps(event).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await exchange.publish(message, routing_key=event["task_id"])

        hub = asyncio.create_task(_hub(queue, redis, prefix))
        try:
            await asyncio.sleep(0.2)  # the stream consumer is attached
            async with serve_uvicorn(_app(redis, prefix)) as base:
                yield base, publish
        finally:
            hub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub
            await queue.delete(if_unused=False, if_empty=False)
            await exchange.delete()
    finally:
        await connection.close()
        await drop_prefix(redis, prefix)
        await redis.aclose()
