"""``open_status_stream``: one task's status events, history then live.

The producer runs in a task group that the context manager owns; the caller
reads a bounded memory object stream. Order of work (see :mod:`._cursor`)::

    subscribe {prefix}:channel:{task_id}  ->  read history  ->  replay  ->  live
                      ^---- PubSubReconnected: re-read history (gap fill) ----'

A client that does not read fills its buffer; the next item that does not fit
ends the stream with :class:`~relayna.errors.SlowSubscriberError` (only this
client; the shared pubsub connection is never blocked by it).

With ``wait``, a task that has no history yet holds the stream before
``Ready``: the first message on its channel (or a pubsub reconnect) makes it
read the history again; if ``wait`` seconds pass with nothing stored, the
only item is :class:`NotFound` (HTTP answers 404).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TypeAlias

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relayna.errors import ContractError, RelaynaError, SlowSubscriberError, unwrap_groups
from relayna.status._cursor import CursorAction, Emit, ResumeCursor, Resync
from relayna.status._event import EventDict, TerminalStatusSet, loads_stored
from relayna.status._store import StatusStore
from relayna.transport import DirectDelivery, PubSubMessage, PubSubReconnected, Subscription

__all__ = [
    "AlreadyComplete",
    "KeepAlive",
    "NotFound",
    "Ready",
    "StatusStreamItem",
    "StatusStreamStats",
    "open_status_stream",
    "wait_for_history",
]

log = logging.getLogger("relayna.status.stream")


@attrs.frozen
class Ready:
    """First item of every stream that will send events (SSE ``event: ready``)."""


@attrs.frozen
class KeepAlive:
    """Nothing was sent for ``keepalive`` seconds (SSE comment ``: keepalive``)."""


@attrs.frozen
class AlreadyComplete:
    """The client resumed after the task's terminal event: nothing more will come.

    It is the only item of such a stream (HTTP answers ``204 No Content``).
    """

    terminal_status: str | None


@attrs.frozen
class NotFound:
    """Nothing was stored for the task within the stream's ``wait`` seconds.

    It is the only item of such a stream (HTTP answers ``404``).
    """

    waited: float


StatusStreamItem: TypeAlias = Ready | Emit | Resync | KeepAlive | AlreadyComplete | NotFound


@attrs.define
class StatusStreamStats:
    """Counters shared by the streams of one runtime (no process-wide state)."""

    opened: int = 0
    closed: int = 0
    slow_disconnects: int = 0
    malformed_live: int = 0
    resyncs: int = 0
    gap_fills: int = 0
    sent: int = 0
    rejected_over_limit: int = 0  # 429: too many concurrent streams of one principal


def _terminal_set(value: TerminalStatusSet | Iterable[str] | None) -> TerminalStatusSet:
    if value is None:
        return TerminalStatusSet()
    if isinstance(value, TerminalStatusSet):
        return value
    return TerminalStatusSet(frozenset(value))


class _Producer:
    def __init__(
        self,
        store: StatusStore,
        task_id: str,
        cursor: ResumeCursor,
        send: MemoryObjectSendStream[StatusStreamItem],
        keepalive: float,
        stats: StatusStreamStats,
        outer: anyio.CancelScope,
        wait: float | None = None,
    ) -> None:
        self.wait = wait
        self.store = store
        self.task_id = task_id
        self.cursor = cursor
        self.send = send
        self.keepalive = keepalive
        self.stats = stats
        self.outer = outer
        self.scope = anyio.CancelScope()
        self.error: RelaynaError | None = None
        self.last_put = anyio.current_time()

    def fail(self, exc: RelaynaError) -> None:
        if self.error is None:
            self.error = exc
        self.outer.cancel()

    def put(self, item: StatusStreamItem) -> None:
        if self.error is not None:
            return  # already failed: the stream is being torn down
        try:
            self.send.send_nowait(item)
        except anyio.WouldBlock:
            self.stats.slow_disconnects += 1
            log.warning("status stream for task %s: client too slow, disconnecting", self.task_id)
            self.fail(
                SlowSubscriberError(
                    f"status stream for task {self.task_id!r}: client buffer of "
                    f"{self.send.statistics().max_buffer_size} items overflowed"
                )
            )
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.outer.cancel()  # the reader is gone
        else:
            self.last_put = anyio.current_time()

    def put_actions(self, actions: list[CursorAction]) -> None:
        for action in actions:
            if isinstance(action, Resync):
                self.stats.resyncs += 1
            else:
                self.stats.sent += 1
            self.put(action)

    async def read_history(self) -> list[CursorAction]:
        newest_first = await self.store.history(self.task_id)
        return self.cursor.on_history(newest_first[::-1])

    async def first_history(self, subscription: Subscription) -> list[CursorAction] | None:
        """The first history read; with ``wait``, held until the task has one.

        ``None``: ``wait`` seconds passed and nothing was stored.
        """
        newest_first = await _await_history(self.store, self.task_id, subscription, self.wait)
        return None if newest_first is None else self.cursor.on_history(newest_first[::-1])

    async def run(self) -> None:
        try:
            async with self.send:
                with self.scope:
                    await self._stream()
        except RelaynaError as exc:
            self.fail(exc)

    async def _stream(self) -> None:
        async with self.store.subscribe(self.task_id) as subscription:
            actions = await self.first_history(subscription)
            if actions is None:
                assert self.wait is not None
                self.put(NotFound(self.wait))
                return
            if self.cursor.resumed_after_terminal:
                self.put(AlreadyComplete(self.cursor.terminal_status))
                return
            self.put(Ready())
            self.put_actions(actions)
            if self.cursor.done:
                return
            # Live messages go from the pubsub reader straight through the
            # (pure) cursor into the client's buffer; this task handles what
            # stays buffered: the backlog from the history read, reconnect
            # notices (gap fills), the end of the subscription.
            direct = subscription if isinstance(subscription, DirectDelivery) else None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keepalive)
                try:
                    if direct is not None:
                        direct.deliver_directly(self._on_direct)
                    async for message in subscription:
                        if isinstance(message, PubSubReconnected):
                            self.stats.gap_fills += 1
                            self.put_actions(await self.read_history())
                        elif isinstance(message, PubSubMessage):
                            self._on_message(message)
                        if self.cursor.done:
                            break
                        if direct is not None:
                            direct.deliver_directly(self._on_direct)
                except RelaynaError as exc:
                    self.fail(exc)  # raised by open_status_stream on exit
                tg.cancel_scope.cancel()

    def _on_direct(self, message: PubSubMessage) -> None:
        """A live message, in the pubsub reader's task."""
        self._on_message(message)
        if self.cursor.done:
            self.scope.cancel()  # the buffered items, terminal last, are still read

    def _on_message(self, message: PubSubMessage) -> None:
        try:
            event = loads_stored(message.data)
        except ContractError as exc:
            self.stats.malformed_live += 1
            log.warning(
                "status stream for task %s: skipping a malformed live message: %s",
                self.task_id,
                exc,
            )
            return
        if event.get("task_id") != self.task_id:
            self.stats.malformed_live += 1
            log.warning(
                "status stream for task %s: skipping a live message of another task", self.task_id
            )
            return
        self.put_actions(self.cursor.on_live(event))

    async def _keepalive(self) -> None:
        while True:
            due = self.last_put + self.keepalive
            now = anyio.current_time()
            if now >= due:
                self.put(KeepAlive())
                await anyio.sleep(self.keepalive)
            else:
                await anyio.sleep(due - now)


async def _await_history(
    store: StatusStore, task_id: str, subscription: Subscription, wait: float | None
) -> list[EventDict] | None:
    """The task's history (newest first), waiting up to ``wait`` seconds for a first event.

    ``subscription`` is on the task's channel, opened before this call so
    that nothing stored after the first read goes unheard. ``None``: the
    wait ran out with nothing stored.
    """
    newest_first = await store.history(task_id)
    if newest_first or wait is None:
        return newest_first
    with anyio.move_on_after(wait) as scope:
        async for _message in subscription:  # a message or a reconnect: look again
            newest_first = await store.history(task_id)
            if newest_first:
                return newest_first
    return None if scope.cancelled_caught else newest_first  # (the subscription ended)


async def wait_for_history(store: StatusStore, task_id: str, wait: float) -> list[EventDict] | None:
    """The task's stored history, newest first, waiting up to ``wait`` seconds for a first event.

    Returns ``None`` when nothing was stored for the task within ``wait``.

    Raises:
        ContractError: invalid ``task_id``.
        StoreError: the store failed.
    """
    if wait < 0 or not math.isfinite(wait):
        raise ValueError("wait must be a finite number of seconds >= 0")
    async with store.subscribe(task_id) as subscription:
        return await _await_history(store, task_id, subscription, wait)


async def _watch_shutdown(shutdown: anyio.Event, scope: anyio.CancelScope) -> None:
    await shutdown.wait()
    scope.cancel()


@asynccontextmanager
async def open_status_stream(
    store: StatusStore,
    task_id: str,
    *,
    last_event_id: str | None = None,
    terminal_statuses: TerminalStatusSet | Iterable[str] | None = None,
    keepalive: float = 15.0,
    buffer_size: int = 1000,
    shutdown: anyio.Event | None = None,
    stats: StatusStreamStats | None = None,
    wait: float | None = None,
) -> AsyncIterator[MemoryObjectReceiveStream[StatusStreamItem]]:
    """Follow one task's status: ``async with open_status_stream(...) as items:``.

    Items, in order: :class:`Ready` (or only :class:`AlreadyComplete` when
    the client resumed after the terminal event, or only :class:`NotFound`
    when ``wait`` ran out), then :class:`Resync` /
    :class:`~relayna.status.Emit` items for the replayed history after
    ``last_event_id``, then live events, with :class:`KeepAlive` after
    ``keepalive`` idle seconds. Iteration ends after the first terminal
    status, or when ``shutdown`` is set.

    Args:
        store: the status store.
        task_id: validated before anything touches the store.
        last_event_id: the client's ``Last-Event-ID`` (raw, as received).
        terminal_statuses: default ``{completed, failed, cancelled, expired}``.
        keepalive: idle seconds before a :class:`KeepAlive`.
        buffer_size: per-client bound; overflowing it disconnects the client.
        shutdown: when set, the stream ends (after the items already buffered).
        stats: counters to update.
        wait: seconds; when the task has no stored status yet, wait at most
            this long for one before :class:`Ready` (``None``: start at once
            and wait for events as long as the stream lives).

    Raises:
        ContractError: invalid ``task_id`` (on entry).
        SlowSubscriberError: on exit, when the client fell behind its buffer.
        StoreError: on exit, when the store failed.

    Cancellation: leaving the block cancels the producer and unsubscribes.
    """
    store.channel(task_id)  # validates task_id before any I/O
    if keepalive <= 0 or not math.isfinite(keepalive):
        raise ValueError("keepalive must be a positive number of seconds")
    if wait is not None and (wait < 0 or not math.isfinite(wait)):
        raise ValueError("wait must be a finite number of seconds >= 0")
    stats = stats if stats is not None else StatusStreamStats()
    cursor = ResumeCursor(
        last_event_id, _terminal_set(terminal_statuses), history_capacity=store.config.max_history
    )
    send, receive = anyio.create_memory_object_stream[StatusStreamItem](max(buffer_size, 1))
    stats.opened += 1
    try:
        with unwrap_groups(), receive:
            async with anyio.create_task_group() as tg:
                producer = _Producer(
                    store, task_id, cursor, send, keepalive, stats, tg.cancel_scope, wait
                )
                tg.start_soon(producer.run)
                if shutdown is not None:
                    tg.start_soon(_watch_shutdown, shutdown, producer.scope)
                try:
                    yield receive
                finally:
                    tg.cancel_scope.cancel()
            if producer.error is not None:
                raise producer.error
    finally:
        stats.closed += 1
