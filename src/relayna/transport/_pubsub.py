"""The pubsub multiplexer: one Redis pubsub connection, many subscribers.

Theory of operation
-------------------
The multiplexer knows nothing of a Redis client. An adapter gives it a
*connector*: a callable returning an async context manager that opens one
:class:`RawPubSub` connection (SUBSCRIBE/UNSUBSCRIBE/PING senders and a
``next_event`` reader). The adapters for coredis and redis-py are tiny.

* **Refcounted channels.** ``subscribe("a", "b")`` increments a count per
  channel; the first subscriber of a channel sends SUBSCRIBE and every
  subscriber waits until the server confirmed each of its channels, so a
  message published after ``subscribe`` returned is delivered. The last one
  to leave sends UNSUBSCRIBE.
* **Bounded buffers.** Events reach subscribers through a
  :class:`~relayna.transport._pubsub_fanout.Fanout`: a subscriber that falls
  ``buffer_size`` events behind is dropped with
  :class:`~relayna.errors.SlowSubscriberError`; the reader never waits.
* **Owned reader.** The reader task is started (lazily, by the first
  subscriber) in the store's task group and lives until the store closes.
* **Reconnect.** When the connection is lost (``CLIENT KILL TYPE pubsub``,
  Redis restart, failed keepalive PING) the reader reconnects with
  exponential backoff, re-subscribes every channel, and after the server
  confirmed all of them delivers one :class:`PubSubReconnected` to every
  subscriber that was *armed* before the connection was lost: messages
  published in between are lost (Redis pubsub is at most once), so readers
  re-read their durable history. A subscriber is armed when its
  ``subscribe`` returns, i.e. once all its channels are confirmed on the
  current connection; one that joined while the connection was down reads
  its history after that confirmation, so it gets no notice (after an outage
  every client reconnecting into it would otherwise read its history twice).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus

from relayna.errors import StoreConnectionError, StoreError
from relayna.transport._pubsub_fanout import DEFAULT_SUBSCRIBER_BUFFER, Fanout, Subscriber
from relayna.transport._pubsub_parts import (
    ChannelState,
    SubscribeBySend,
    hold_channels,
    ping_forever,
    release_channels,
    subscribe_commands,
    unsubscribe_commands,
    wait_confirmed,
)
from relayna.transport._store import PubSubReconnected, Subscription

__all__ = [
    "DEFAULT_SUBSCRIBER_BUFFER",
    "ChannelState",
    "PubSubMultiplexer",
    "RawMessage",
    "RawPubSub",
    "RawPubSubConnector",
    "RawSubscribed",
    "SubscribeBySend",
    "hold_channels",
    "ping_forever",
    "push_event",
    "release_channels",
    "subscribe_commands",
    "unsubscribe_commands",
    "wait_confirmed",
]

log = logging.getLogger("relayna.transport.pubsub")


@attrs.frozen
class RawMessage:
    channel: str
    data: bytes


@attrs.frozen
class RawSubscribed:
    """The server confirmed a SUBSCRIBE for ``channel``."""

    channel: str


RawEvent = RawMessage | RawSubscribed


def push_event(reply: object) -> RawEvent | None:
    """The pubsub event a reply on a subscribed connection carries, if any.

    ``[message, channel, data]`` and ``[subscribe, channel, count]`` arrays,
    as RESP2 and RESP3 clients alike return them (bytes or bytearray), and
    their sharded twins ``smessage`` / ``ssubscribe`` (a connection carries
    one kind: the multiplexer gives sharded channels a connection of their
    own); anything else (PONG, unsubscribe confirmations) is None.
    """
    if not isinstance(reply, list) or len(reply) != 3:
        return None
    kind, channel, data = reply
    if not isinstance(kind, bytes | bytearray) or not isinstance(channel, bytes | bytearray):
        return None
    kind = kind.lower()
    if kind in (b"message", b"smessage") and isinstance(data, bytes | bytearray):
        return RawMessage(channel=bytes(channel).decode(), data=bytes(data))
    if kind in (b"subscribe", b"ssubscribe"):
        return RawSubscribed(channel=bytes(channel).decode())
    return None


class RawPubSub(Protocol):
    """One pubsub connection. Every method raises
    :class:`~relayna.errors.StoreConnectionError` (usually
    :class:`~relayna.errors.StoreConnectionLost`) when the connection is gone."""

    async def subscribe(self, channels: Sequence[str], *, sharded: bool = False) -> None:
        """SUBSCRIBE (``sharded``: one SSUBSCRIBE per channel) without waiting."""
        ...

    async def unsubscribe(self, channels: Sequence[str], *, sharded: bool = False) -> None:
        """UNSUBSCRIBE (``sharded``: SUNSUBSCRIBE) without waiting."""
        ...

    async def ping(self) -> None:
        """Check liveness (adapters may only send the PING)."""
        ...

    async def next_event(self) -> RawEvent:
        """The next message or subscribe confirmation (other replies are skipped)."""
        ...


RawPubSubConnector = Callable[[], AbstractAsyncContextManager[RawPubSub]]


class PubSubMultiplexer:
    """Serve any number of subscribers over one pubsub connection.

    Args:
        connect: opens one raw pubsub connection (errors: StoreConnectionError).
        task_group: the store's task group; the reader task runs there.
        url: the redacted store URL, for error messages.
        buffer_size: per-subscriber buffer bound.
        subscribe_timeout: how long ``subscribe`` waits for the server's
            confirmation (e.g. while Redis is down) before raising
            :class:`~relayna.errors.StoreConnectionError`.
        keepalive: seconds between liveness PINGs on the pubsub connection.
        backoff: (first, max) reconnect delay in seconds. The cap bounds how
            long streams stay stalled after Redis is back (T7 asks for
            reconnect -> first event p99 < 1 s); one connection per process
            retrying four times a second during an outage costs nothing.
        sharded: serve sharded channels (SSUBSCRIBE) instead of classic ones,
            for a single Redis server (a cluster's sharded channels live on
            their slot's node: :mod:`relayna.transport.resp._cluster_pubsub`).
    """

    def __init__(
        self,
        connect: RawPubSubConnector,
        task_group: TaskGroup,
        *,
        url: str | None = None,
        buffer_size: int = DEFAULT_SUBSCRIBER_BUFFER,
        subscribe_timeout: float = 10.0,
        keepalive: float = 15.0,
        backoff: tuple[float, float] = (0.05, 0.25),
        sharded: bool = False,
    ) -> None:
        self._connect = connect
        self._sharded = sharded
        self._tg = task_group
        self._url = url
        self._fanout = Fanout(buffer_size=buffer_size, url=url)
        self._subscribe_timeout = subscribe_timeout
        self._keepalive = keepalive
        self._backoff = backoff
        self._channels: dict[str, ChannelState] = {}
        self._conn: RawPubSub | None = None
        self._started = False
        self._start_lock = anyio.Lock()
        self._closed = False
        self._pending_resubscribe: set[str] = set()
        self._losses = 0  # connections lost so far
        self._armed: dict[Subscriber, int] = {}  # subscriber -> self._losses when armed
        self.reconnects = 0

    # -- subscribers -----------------------------------------------------------
    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``channels``; see :meth:`relayna.transport.Store.subscribe`."""
        return self._subscription(tuple(dict.fromkeys(channels)))

    @asynccontextmanager
    async def _subscription(self, channels: tuple[str, ...]) -> AsyncIterator[Subscription]:
        if not channels:
            raise ValueError("subscribe() needs at least one channel")
        if self._closed:
            raise StoreError("the store is closed", url=self._url)
        await self._ensure_started()
        sub = self._fanout.add(channels)
        new = hold_channels(self._channels, channels, ChannelState)
        try:
            conn = self._conn
            if new and conn is not None:
                try:
                    await self._send_subscribe(conn, new)
                except StoreConnectionError as exc:
                    # The reader sees the same failure, reconnects and
                    # re-subscribes every channel (these included).
                    log.info("SUBSCRIBE failed, waiting for reconnect: %s", exc)
            await self._wait_confirmed(channels)
            self._armed[sub] = self._losses  # no await since all were seen confirmed
            yield sub
        finally:
            self._armed.pop(sub, None)
            self._fanout.remove(sub)
            gone = [channel for channel, _ in release_channels(self._channels, channels)]
            conn = self._conn
            if gone and conn is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                    try:
                        await self._send_unsubscribe(conn, gone)
                    except StoreConnectionError as exc:
                        # A new connection will not subscribe to these channels.
                        log.info("UNSUBSCRIBE failed on a lost connection: %s", exc)

    async def _send_subscribe(self, conn: RawPubSub, channels: Sequence[str]) -> None:
        # (``sharded`` only when set: connections written for classic pubsub still fit)
        if self._sharded:
            await conn.subscribe(channels, sharded=True)
        else:
            await conn.subscribe(channels)

    async def _send_unsubscribe(self, conn: RawPubSub, channels: Sequence[str]) -> None:
        if self._sharded:
            await conn.unsubscribe(channels, sharded=True)
        else:
            await conn.unsubscribe(channels)

    async def _wait_confirmed(self, channels: tuple[str, ...]) -> None:
        verb = "SSUBSCRIBE" if self._sharded else "SUBSCRIBE"
        await wait_confirmed(
            self._channels, channels, self._subscribe_timeout, verb=verb, url=self._url
        )

    def statistics(self) -> dict[str, int]:
        return {
            "channels": len(self._channels),
            "reconnects": self.reconnects,
            "dropped_subscribers": self._fanout.dropped_total,
        }

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        """End every subscription with StoreError (called when the store closes)."""
        self._closed = True
        self._fanout.close(StoreError("the store was closed", url=self._url))

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if not self._started:
                await self._tg.start(self._run)
                self._started = True

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = anyio.Event()

        def ready() -> None:
            started.set()
            task_status.started()

        delay, max_delay = self._backoff
        while True:
            try:
                async with self._connect() as conn:
                    delay = self._backoff[0]
                    await self._session(conn, reconnected=started.is_set(), ready=ready)
            except StoreConnectionError as exc:
                if not started.is_set():
                    raise
                self._log_lost(exc, delay)
            except BaseExceptionGroup as group:
                lost, rest = group.split(StoreConnectionError)
                if lost is None or rest is not None:
                    raise
                leaf = _first_leaf(lost)
                if not started.is_set():
                    raise leaf from leaf.__cause__
                self._log_lost(leaf, delay)
            finally:
                self._conn = None
                self._losses += 1
                for state in self._channels.values():
                    if state.confirmed.is_set():
                        state.confirmed = anyio.Event()
            await anyio.sleep(delay)
            delay = min(delay * 2, max_delay)

    def _log_lost(self, exc: BaseException, delay: float) -> None:
        # The first failure after a working connection is a warning; the
        # attempts that follow while the server stays away (several a second)
        # are debug.
        level = logging.WARNING if delay == self._backoff[0] else logging.DEBUG
        log.log(level, "pubsub connection lost (%s); reconnecting in %.2fs", exc, delay)

    async def _session(
        self, conn: RawPubSub, *, reconnected: bool, ready: Callable[[], None]
    ) -> None:
        self._conn = conn
        channels = list(self._channels)
        self._pending_resubscribe = set(channels) if reconnected else set()
        if channels:
            await self._send_subscribe(conn, channels)
        if reconnected:
            self.reconnects += 1
            log.info("pubsub reconnected; subscribing %d channels again", len(channels))
            if not channels:
                self._notify_reconnected()
        else:
            ready()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._ping_forever, conn)
            while True:
                event = await conn.next_event()
                if isinstance(event, RawMessage):
                    self._fanout.dispatch(event.channel, event.data)
                    continue
                state = self._channels.get(event.channel)
                if state is not None:
                    state.confirmed.set()
                if event.channel in self._pending_resubscribe:
                    self._pending_resubscribe.discard(event.channel)
                    if not self._pending_resubscribe:
                        self._notify_reconnected()

    def _notify_reconnected(self) -> None:
        """PubSubReconnected to every subscriber armed before the last loss."""
        event = PubSubReconnected()
        for sub, armed_at in list(self._armed.items()):
            if armed_at < self._losses:
                sub.offer(event, self._url)

    async def _ping_forever(self, conn: RawPubSub) -> None:
        await ping_forever(conn, self._keepalive, self._url)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
