"""Studio's live activity streams: Redis pubsub → Server-Sent Events (live only, no replay).

``ready`` first, then one frame per event (``id:`` = dedupe key, ``event:
event``, one line of JSON), ``: keepalive`` after 15 s of silence. The
subscription is read by a task of the response's own task group into a
bounded buffer; a client that does not read fills it and is dropped (it
reconnects), so one slow browser never holds the shared pubsub connection.
The stream ends on client disconnect and on Studio's shutdown. In the Redis
Cluster key layout the channels are sharded (``SSUBSCRIBE`` on the slot's
primary, followed through failovers by the store), as the insert script
publishes them with ``SPUBLISH``.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager

import anyio
from starlette.types import Receive, Scope, Send

from relayna.errors import ConfigurationError, ContractError, SlowSubscriberError, StoreError
from relayna.status import KEEPALIVE, encode_frame
from relayna.transport import PubSubMessage, ShardedPubSub, Store, Subscription

__all__ = ["SSE_HEADERS", "ChannelStream"]

log = logging.getLogger("relayna_studio.sse")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store, must-revalidate"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


def _frame(data: bytes) -> bytes | None:
    from relayna.contracts import loads

    try:
        event = loads(data)
    except ContractError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("dedupe_key"), str):
        return None
    try:
        return encode_frame(id=event["dedupe_key"], event="event", data=data)
    except ValueError:
        return None


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


class ChannelStream:
    """An ASGI response following one pubsub channel (``sharded``: a sharded one)."""

    def __init__(
        self,
        store: Store,
        channel: str,
        *,
        shutdown: anyio.Event,
        keepalive: float = 15.0,
        buffer: int = 256,
        sharded: bool = False,
    ) -> None:
        """
        Raises:
            ConfigurationError: ``sharded`` on a store without sharded pubsub
                (the stream would never hear an event).
        """
        if sharded and not isinstance(store, ShardedPubSub):
            raise ConfigurationError(
                "Studio's cluster key layout publishes events on sharded channels, and "
                f"{type(store).__name__} has no sharded pubsub (spublish/ssubscribe)"
            )
        self.store = store
        self.channel = channel
        self.sharded = sharded
        self.shutdown = shutdown
        self.keepalive = keepalive
        self.buffer = buffer

    def _subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        if self.sharded:
            assert isinstance(self.store, ShardedPubSub)  # checked in __init__
            return self.store.ssubscribe(self.channel)
        return self.store.subscribe(self.channel)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        send_items, items = anyio.create_memory_object_stream[bytes](self.buffer)
        started = False
        try:
            async with self._subscribe() as subscription:
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                started = True
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)

                    async def until_shutdown() -> None:
                        await self.shutdown.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(until_shutdown)

                    async def pump() -> None:
                        async with send_items:
                            try:
                                async for message in subscription:
                                    if not isinstance(message, PubSubMessage):
                                        continue  # a reconnect: live only, nothing to refill
                                    frame = _frame(message.data)
                                    if frame is None:
                                        continue
                                    send_items.send_nowait(frame)
                            except anyio.WouldBlock:
                                log.info("activity stream client too slow; dropped")
                            except (SlowSubscriberError, StoreError) as exc:
                                log.info("activity stream on %s ended: %s", self.channel, exc)
                            tg.cancel_scope.cancel()

                    tg.start_soon(pump)
                    await send(
                        {
                            "type": "http.response.body",
                            "body": encode_frame(event="ready", data={}),
                            "more_body": True,
                        }
                    )
                    async with items:
                        while True:
                            frame = KEEPALIVE
                            with anyio.move_on_after(self.keepalive):
                                frame = await items.receive()
                            await send(
                                {"type": "http.response.body", "body": frame, "more_body": True}
                            )
        except (SlowSubscriberError, StoreError, anyio.EndOfStream, OSError) as exc:
            log.info("activity stream on %s ended: %s", self.channel, exc)
        if not started:
            body = b'{"detail":"the Studio store is unavailable"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        with anyio.move_on_after(5.0):
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass
