"""An ASGI response that streams one task's status over Server-Sent Events.

Built directly on ASGI (no async generator around the stream's task group):
the response enters :func:`relayna.status.open_status_stream`, then writes
each item as a frame while a sibling task watches for ``http.disconnect``.
The stream ends on a terminal status, when the runtime's shutdown event is
set, when the client disconnects, or when the client is too slow. With
``wait``, a task with no status yet is answered ``404`` once the wait ran out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.types import Receive, Scope, Send

from relayna.errors import SlowSubscriberError, StoreError
from relayna.status import (
    KEEPALIVE,
    AlreadyComplete,
    Emit,
    EventDict,
    KeepAlive,
    NotFound,
    Ready,
    Resync,
    StatusStore,
    StatusStreamItem,
    StatusStreamStats,
    encode_frame,
    open_status_stream,
)

__all__ = ["SSE_HEADERS", "StatusEventStreamResponse", "encode_item", "not_found_detail"]

log = logging.getLogger("relayna.api.sse")

#: Headers of every SSE response (the original's, plus the content type).
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store, must-revalidate"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
)


def encode_item(
    item: StatusStreamItem,
    *,
    output: Callable[[EventDict], Mapping[str, Any]] | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """The SSE bytes for one stream item."""
    if isinstance(item, Emit):
        data = output(item.event) if output is not None else item.event
        return encode_frame(id=item.event_id, event="status", data=data)
    if isinstance(item, KeepAlive):
        return KEEPALIVE
    if isinstance(item, Resync):
        return encode_frame(event="resync", data={"reason": item.reason})
    if isinstance(item, Ready):
        return encode_frame(event="ready", data={}, retry_ms=retry_ms)
    raise TypeError(f"{item!r} has no SSE frame")


class StatusEventStreamResponse:
    """``text/event-stream`` of one task; ``204 No Content`` when resumed after the end."""

    def __init__(
        self,
        store: StatusStore,
        task_id: str,
        *,
        last_event_id: str | None,
        terminal_statuses: frozenset[str] | None,
        keepalive: float,
        buffer_size: int,
        shutdown: anyio.Event | None,
        stats: StatusStreamStats | None = None,
        retry_ms: int | None = None,
        output: Callable[[EventDict], Mapping[str, Any]] | None = None,
        on_close: Callable[[], None] | None = None,
        wait: float | None = None,
        id_name: str = "task_id",
    ) -> None:
        self.wait = wait
        self.id_name = id_name
        self.store = store
        self.task_id = task_id
        self.last_event_id = last_event_id
        self.terminal_statuses = terminal_statuses
        self.keepalive = keepalive
        self.buffer_size = buffer_size
        self.shutdown = shutdown
        self.stats = stats
        self.retry_ms = retry_ms
        self.output = output
        self.on_close = on_close

    def _batch(
        self, item: StatusStreamItem, items: MemoryObjectReceiveStream[StatusStreamItem]
    ) -> bytes:
        """``item`` plus whatever is already buffered (up to 256 KiB): one write."""
        chunk = bytearray(encode_item(item, output=self.output, retry_ms=self.retry_ms))
        while len(chunk) < _BATCH_BYTES:
            try:
                more = items.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            chunk += encode_item(more, output=self.output, retry_ms=self.retry_ms)
        return bytes(chunk)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _respond(self, receive: Receive, send: Send) -> None:
        # A 503 or 204 is decided inside the stream but sent after leaving it:
        # the stream's cancel scope (a failed producer, shutdown) must never
        # interrupt a response start half-way (hypercorn would then try a 500 on
        # a request h11 already answered, which ends its trio worker).
        early: tuple[int, dict[str, str] | None, bool] | None = None  # status, JSON, retry
        started = disconnected = False
        try:
            async with open_status_stream(
                self.store,
                self.task_id,
                last_event_id=self.last_event_id,
                terminal_statuses=self.terminal_statuses,
                keepalive=self.keepalive,
                buffer_size=self.buffer_size,
                shutdown=self.shutdown,
                stats=self.stats,
                wait=self.wait,
            ) as items:
                try:
                    first = await items.receive()
                except anyio.EndOfStream:
                    first = None
                if first is None:  # shut down before anything was sent: try another replica
                    early = (503, {"detail": "shutting down"}, True)
                elif isinstance(first, AlreadyComplete):  # 204 stops EventSource reconnecting
                    early = (204, None, False)
                elif isinstance(first, NotFound):
                    early = (
                        404,
                        {"detail": not_found_detail(self.id_name, self.task_id, first.waited)},
                        False,
                    )
                else:
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)}
                    )
                    started = True
                    disconnected = await self._stream(first, items, receive, send)
        except SlowSubscriberError:
            # Counted and logged by the stream. Return without finishing the
            # response: the server drops the connection instead of waiting on
            # a client that does not read. It reconnects with Last-Event-ID.
            return
        except StoreError as exc:
            if early is None and not started:
                early = (503, {"detail": f"status store unavailable: {exc}"}, False)
            elif early is None:
                log.info("status stream for task %s ended early: %s", self.task_id, exc)
        if early is not None:  # (a store error while the stream closed changes nothing)
            status, content, retry = early
            if content is None:
                await send({"type": "http.response.start", "status": status, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            else:
                await _send_json(send, status, content, retry_after=retry)
            return
        if started and not disconnected:
            with anyio.move_on_after(_FINAL_SEND_TIMEOUT):
                try:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:
                    return

    async def _stream(
        self,
        first: StatusStreamItem,
        items: MemoryObjectReceiveStream[StatusStreamItem],
        receive: Receive,
        send: Send,
    ) -> bool:
        """Write frames until the stream ends; True if the client went away mid-write."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
            try:
                await send(
                    {
                        "type": "http.response.body",
                        "body": self._batch(first, items),
                        "more_body": True,
                    }
                )
                async for item in items:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": self._batch(item, items),
                            "more_body": True,
                        }
                    )
            except OSError:
                return True
            finally:
                tg.cancel_scope.cancel()
        return False


def not_found_detail(id_name: str, task_id: str, waited: float) -> str:
    """The 404 text of ``/events/{id}?wait=``: what happened and what it may mean."""
    return (
        f"No status found for {id_name} '{task_id}' after waiting {waited:g} s: "
        "nothing was published for it (unknown id, or no worker has picked it up yet)"
    )


_BATCH_BYTES = 256 * 1024
_FINAL_SEND_TIMEOUT = 5.0


async def _send_json(
    send: Send, status: int, content: dict[str, str], *, retry_after: bool = False
) -> None:
    headers = [(b"content-type", b"application/json")]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(content)})


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
