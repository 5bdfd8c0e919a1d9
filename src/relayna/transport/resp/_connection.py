"""One Redis connection shared by every caller, pipelined, on anyio.

Callers write their commands in turn (the order of the writes is the order of
the replies) and queue a :class:`_Pending` for their replies. Whoever finds
nobody reading becomes the reader: it reads replies for the queue's head,
handing completed replies to their callers, until its own are complete, then
passes the reading role to the next waiting caller. A caller alone on the
connection therefore writes and reads itself: a round trip costs the socket
wake-up and no hand-over between tasks; concurrent callers share one
connection and one read per batch of replies, and the number of connections
does not grow with them.

Cancellation never desynchronises the connection: a caller cancelled after
writing leaves its :class:`_Pending` marked abandoned and the next reader
reads and drops those replies (the parser keeps partial input). A caller
cancelled during its write, a lost connection or bytes that are not RESP
break the connection: every queued caller gets :class:`StoreConnectionLost`.
"""

from __future__ import annotations

import select
from collections import deque
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from relayna.errors import StoreConnectionLost
from relayna.transport.resp._protocol import NEED_DATA, ReplyParser, encode_command
from relayna.transport.resp._url import RespParams

__all__ = ["IO_ERRORS", "RespConnection"]

READ_SIZE = 1 << 16
IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_poll = getattr(select, "poll", None)  # not on Windows: idle connections are then not checked


class _Pending:
    __slots__ = ("abandoned", "remaining", "replies", "turn")

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.replies: list[Any] = []
        self.turn: anyio.Event | None = None  # set: your replies are in, or read them
        self.abandoned = False


class RespConnection:
    """A connected, authenticated stream, its reply parser and its callers' queue."""

    def __init__(self, stream: anyio.abc.ByteStream, params: RespParams) -> None:
        self.stream = stream
        self.params = params
        self.parser = ReplyParser()
        # The idle check runs before every command: its socket is looked up and
        # its poll object made once.
        self._raw: Any = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        self._idle_poll: Any = None
        if self._raw is not None and _poll is not None and self._raw.fileno() >= 0:
            self._idle_poll = _poll()
            self._idle_poll.register(self._raw.fileno(), select.POLLIN)
        self.error: StoreConnectionLost | None = None
        self._send_lock = anyio.Lock()
        self._queue: deque[_Pending] = deque()
        self._reading = False

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def idle(self) -> bool:
        """Nothing in flight: no caller waits for a reply."""
        return not self._queue

    def fail(self, error: StoreConnectionLost) -> StoreConnectionLost:
        """Break the connection: every queued caller raises ``error``.

        Returns the error the connection failed with (the first one, when it
        had failed already), for the caller to raise.
        """
        if self.error is None:
            self.error = error
        for pending in self._queue:
            if pending.turn is not None:
                pending.turn.set()
        self._queue.clear()
        return self.error

    async def send(self, data: bytes) -> None:
        """Write ``data`` as is (pubsub, handshake); a failure breaks the connection."""
        try:
            await self.stream.send(data)
        except IO_ERRORS as exc:
            lost = StoreConnectionLost(f"Redis connection lost: {exc!r}", url=self.params.url)
            raise self.fail(lost) from None

    async def read_reply(self) -> Any:
        """The next reply (an :class:`ErrorReply` is returned, not raised).

        Raises:
            StoreConnectionLost: closed by the server, or not RESP.
        """
        parser = self.parser
        while True:
            try:
                reply = parser.next_reply()
            except StoreConnectionLost as exc:
                await self._break(exc)
                raise
            if reply is not NEED_DATA:
                return reply
            try:
                data = await self.stream.receive(READ_SIZE)
            except IO_ERRORS as exc:
                what = (
                    "closed the connection"
                    if isinstance(exc, anyio.EndOfStream)
                    else f"connection lost while reading: {exc!r}"
                )
                raise self.fail(StoreConnectionLost(f"Redis {what}", url=self.params.url)) from None
            parser.feed(data)

    async def roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one write and return one reply each, in order.

        Raises:
            StoreConnectionLost: the connection broke before every reply was read.
        """
        if self.error is not None:
            raise self.error
        data = b"".join([encode_command(c) for c in commands])
        pending = _Pending(len(commands))
        try:
            self._send_lock.acquire_nowait()
        except anyio.WouldBlock:
            await self._send_lock.acquire()
        try:
            # Nothing goes out on a connection that failed while we waited, and a
            # caller already cancelled leaves before writing (not mid-write).
            if self.error is not None:
                raise self.error
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._queue.append(pending)  # before the write: a reply may follow at once
            written = False
            try:
                await self.send(data)
                written = True
            finally:
                if not written and self.error is None:  # cancelled mid-write: unknown bytes sent
                    await self._break(
                        StoreConnectionLost("a write to Redis was cancelled", url=self.params.url)
                    )
        finally:
            self._send_lock.release()
        try:
            while pending.remaining:
                if self.error is not None:
                    raise self.error
                if self._reading:
                    pending.turn = anyio.Event()
                    await pending.turn.wait()
                    continue
                self._reading = True
                try:
                    await self._read_until(pending)
                finally:
                    self._reading = False
                self._pass_turn()
        except BaseException:
            pending.abandoned = True  # the next reader drops what is still due
            if not self._reading:
                self._pass_turn()
            raise
        return pending.replies

    async def _read_until(self, mine: _Pending) -> None:
        queue = self._queue
        while mine.remaining:
            reply = await self.read_reply()
            if self.error is not None:  # failed by a cancelled write while we read
                raise self.error
            head = queue[0]
            head.replies.append(reply)
            head.remaining -= 1
            if not head.remaining:
                queue.popleft()
                if head is not mine and head.turn is not None:
                    head.turn.set()

    def _pass_turn(self) -> None:
        for pending in self._queue:
            if not pending.abandoned and pending.turn is not None:
                pending.turn.set()
                return

    async def _break(self, error: StoreConnectionLost) -> None:
        """Fail every caller and close the stream now: after a partial write or
        bytes that are not RESP, nothing more may be sent or read on it."""
        self.fail(error)
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self.stream)

    def closed_by_peer(self) -> bool:
        """True when the server closed (or wrote unasked to) this idle connection."""
        if self.parser.buffered:
            return True
        if self._idle_poll is None:
            return False
        if self._raw.fileno() < 0:
            # Closed under us (asyncio closes the socket on EOF): its number may
            # already belong to another descriptor, so it is not polled.
            return True
        return bool(self._idle_poll.poll(0))  # readable while idle: EOF, reset or unasked bytes

    async def aclose(self) -> None:
        self.fail(StoreConnectionLost("the connection was closed", url=self.params.url))
        await anyio.aclose_forcefully(self.stream)
