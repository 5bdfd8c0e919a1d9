"""Fan-out of pubsub events to subscribers with bounded per-subscriber buffers.

Theory of operation: the fan-out is synchronous and never blocks. Each
subscriber owns a bounded memory object stream; :meth:`Fanout.dispatch` puts
an event into the buffer of every subscriber of the channel with
``send_nowait``. A subscriber whose buffer is full is *dropped*: its send side
is closed with a :class:`~relayna.errors.SlowSubscriberError` recorded, so its
iterator first yields what was already buffered and then raises. The reader
that calls ``dispatch`` (a Redis pubsub reader task, or the memory store's
``publish``) is never slowed down by one slow consumer.

A subscriber may instead take messages *directly*
(:meth:`Subscriber.deliver_directly`): ``dispatch`` then calls its handler in
the dispatching task, which spares one task switch per message on the live
SSE path. Only messages go that way; a :class:`PubSubReconnected` switches the
subscriber back to its buffer, where its owner finds it in order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relayna.errors import SlowSubscriberError, StoreError
from relayna.transport._store import PubSubEvent, PubSubMessage

__all__ = ["DEFAULT_SUBSCRIBER_BUFFER", "Fanout", "Subscriber"]

log = logging.getLogger("relayna.transport.pubsub")

#: Default number of undelivered events a subscriber may hold before it is dropped.
DEFAULT_SUBSCRIBER_BUFFER = 1000


class Subscriber:
    """One subscriber: a :class:`~relayna.transport.Subscription` over a bounded buffer."""

    def __init__(self, channels: tuple[str, ...], buffer_size: int) -> None:
        self._channels = channels
        self._send: MemoryObjectSendStream[PubSubEvent]
        self._receive: MemoryObjectReceiveStream[PubSubEvent]
        self._send, self._receive = anyio.create_memory_object_stream[PubSubEvent](buffer_size)
        self._error: StoreError | None = None
        self._handler: Callable[[PubSubMessage], None] | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        return self._channels

    @property
    def dropped(self) -> bool:
        """True once the subscriber was closed by the fan-out (slow, or store closed)."""
        return self._error is not None

    def __aiter__(self) -> AsyncIterator[PubSubEvent]:
        return self

    async def __anext__(self) -> PubSubEvent:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None
        except anyio.ClosedResourceError:
            raise StopAsyncIteration from None

    def deliver_directly(self, handler: Callable[[PubSubMessage], None]) -> bool:
        """Pass later messages to ``handler`` instead of buffering them.

        Refused (False) while events are buffered or after the subscriber was
        dropped: the owner reads on and tries again.
        """
        if self._error is not None or self._send.statistics().current_buffer_used:
            return False
        self._handler = handler
        return True

    def offer(self, event: PubSubEvent, url: str | None) -> bool:
        """Buffer ``event``; drop the subscriber (returning False) if its buffer is full."""
        if self._error is not None:
            return False
        if self._handler is not None:
            if isinstance(event, PubSubMessage):
                return self._deliver(self._handler, event)
            self._handler = None  # a reconnect notice: the owner takes over again
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            size = self._send.statistics().max_buffer_size
            self.fail(
                SlowSubscriberError(
                    f"subscriber of {', '.join(self._channels)} fell more than "
                    f"{size:g} events behind and was dropped",
                    url=url,
                )
            )
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The subscriber left (its receive side is closed); nothing to deliver.
            return False
        return True

    def _deliver(self, handler: Callable[[PubSubMessage], None], message: PubSubMessage) -> bool:
        try:
            handler(message)
        except Exception as exc:  # a bug in one subscriber must not stop the reader
            log.exception("pubsub subscriber of %s failed on a message", ", ".join(self._channels))
            self.fail(StoreError(f"subscriber handler failed: {exc!r}"))
            return False
        return True

    def fail(self, error: StoreError) -> None:
        self._handler = None
        if self._error is None:
            self._error = error
        self._send.close()

    def close(self) -> None:
        self._handler = None
        self._send.close()
        self._receive.close()


class Fanout:
    """Subscribers by channel; ``dispatch``/``broadcast`` never block."""

    def __init__(self, *, buffer_size: int = DEFAULT_SUBSCRIBER_BUFFER, url: str | None = None):
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self.buffer_size = buffer_size
        self.url = url
        self._by_channel: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self.dropped_total = 0

    def add(self, channels: Iterable[str]) -> Subscriber:
        sub = Subscriber(tuple(channels), self.buffer_size)
        for channel in sub.channels:
            self._by_channel.setdefault(channel, set()).add(sub)
        self._all.add(sub)
        return sub

    def remove(self, sub: Subscriber) -> None:
        self._all.discard(sub)
        for channel in sub.channels:
            subs = self._by_channel.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_channel[channel]
        sub.close()

    def subscribers(self, channel: str) -> list[Subscriber]:
        """The live subscribers of ``channel``."""
        return list(self._by_channel.get(channel, ()))

    def subscriber_count(self, channel: str) -> int:
        return len(self._by_channel.get(channel, ()))

    def dispatch(self, channel: str, data: bytes) -> int:
        """Deliver a message to the channel's live subscribers; return how many got it."""
        subs = self._by_channel.get(channel)
        if not subs:
            return 0
        message = PubSubMessage(channel=channel, data=data)
        delivered = 0
        for sub in list(subs):
            if sub.offer(message, self.url):
                delivered += 1
            elif sub.dropped:
                self._forget(sub)
        return delivered

    def broadcast(self, event: PubSubEvent) -> None:
        for sub in list(self._all):
            if not sub.offer(event, self.url) and sub.dropped:
                self._forget(sub)

    def close(self, error: StoreError) -> None:
        """End every subscription with ``error`` (the store is gone)."""
        for sub in list(self._all):
            sub.fail(error)
            self._forget(sub)

    def _forget(self, sub: Subscriber) -> None:
        """Stop dispatching to ``sub`` (its owner still calls :meth:`remove`)."""
        if sub in self._all:
            self.dropped_total += 1
        self._all.discard(sub)
        for channel in sub.channels:
            subs = self._by_channel.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_channel[channel]
