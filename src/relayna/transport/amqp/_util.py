"""Small helpers shared by the anyio shell: error mapping, waiters, group unwrapping."""

from __future__ import annotations

from typing import Generic, TypeVar

import anyio

from relayna.errors import (
    AccessRefused,
    ChannelClosed,
    ConsumerTimedOut,
    NotFound,
    PreconditionFailed,
)

__all__ = ["Waiter", "channel_error"]

T = TypeVar("T")


class Waiter(Generic[T]):
    """A one-shot result slot owned by the task that awaits it.

    The reader task fills it; if the awaiting task was cancelled meanwhile the
    result is simply dropped (the protocol state has already been updated).
    """

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._value: tuple[T] | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set(self, value: T) -> None:
        if not self._event.is_set():
            self._value = (value,)
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> T:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None  # set() or fail() ran before the event
        return self._value[0]


def _is_consumer_timeout(reply_text: str) -> bool:
    # RabbitMQ (3.8.15+): "PRECONDITION_FAILED - delivery acknowledgement on channel
    # 1 timed out. Timeout value used: 1800000 ms. ..." The reply code alone is
    # shared with every other precondition (e.g. a redeclare with other arguments).
    text = reply_text.lower()
    return "acknowledgement" in text and "timed out" in text


def channel_error(
    reply_code: int, reply_text: str, url: str, *, context: str = ""
) -> ChannelClosed:
    """The typed error of a channel the server closed (``channel.close``)."""
    cls: type[ChannelClosed] = {
        406: PreconditionFailed,
        404: NotFound,
        403: AccessRefused,
    }.get(reply_code, ChannelClosed)
    if cls is PreconditionFailed and _is_consumer_timeout(reply_text):
        cls = ConsumerTimedOut
    where = f" ({context})" if context else ""
    return cls(
        f"channel closed by the server: {reply_code} {reply_text}{where}",
        url=url,
        reply_code=reply_code,
        reply_text=reply_text,
    )
